package main

// CAPM3's admission webhooks (cluster-api-provider-metal3 v1.13.2
// internal/webhooks/v1beta2) live in an internal package, so the ones below
// are re-expressed with the same rules, messages and field paths, on CAPM3's
// own public types (and their public Image.Validate / Metal3ClusterSpec.IsValid).
// They are registered at the paths upstream's kubebuilder markers name, which
// controller-runtime derives from the type. Not re-expressed (and so not
// served; the installer leaves their configuration entries out):
// Metal3Data, Metal3DataClaim, Metal3DataTemplate, Metal3RemediationTemplate.

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/metal3-io/cluster-api-provider-metal3/api/v1beta2"
)

// Metal3Remediation limits, as upstream's webhook package declares them.
const (
	minRemediationTimeoutSeconds = int32(100)
	minRemediationRetryLimit     = int32(1)
)

func setupCAPM3Webhooks(mgr ctrl.Manager) error {
	for _, setup := range []func() error{
		func() error {
			return ctrl.NewWebhookManagedBy(mgr, &infrav1.Metal3Cluster{}).WithValidator(metal3Cluster{}).WithDefaulter(metal3Cluster{}).Complete()
		},
		func() error {
			return ctrl.NewWebhookManagedBy(mgr, &infrav1.Metal3ClusterTemplate{}).WithValidator(newMetal3ClusterTemplate()).Complete()
		},
		func() error {
			return ctrl.NewWebhookManagedBy(mgr, &infrav1.Metal3Machine{}).WithValidator(newMetal3Machine()).Complete()
		},
		func() error {
			return ctrl.NewWebhookManagedBy(mgr, &infrav1.Metal3MachineTemplate{}).WithValidator(newMetal3MachineTemplate()).Complete()
		},
		func() error {
			return ctrl.NewWebhookManagedBy(mgr, &infrav1.Metal3Remediation{}).WithValidator(newMetal3Remediation()).Complete()
		},
	} {
		if err := setup(); err != nil {
			return err
		}
	}
	return nil
}

// onCreateAndUpdate turns one validation into the Validator interface: these
// webhooks check the new object on create and update, and nothing on delete.
type onCreateAndUpdate[T any] func(T) error

func (f onCreateAndUpdate[T]) ValidateCreate(_ context.Context, o T) (admission.Warnings, error) {
	return nil, f(o)
}
func (f onCreateAndUpdate[T]) ValidateUpdate(_ context.Context, _, o T) (admission.Warnings, error) {
	return nil, f(o)
}
func (f onCreateAndUpdate[T]) ValidateDelete(context.Context, T) (admission.Warnings, error) {
	return nil, nil
}

type metal3Cluster struct{}

func (metal3Cluster) Default(_ context.Context, m3c *infrav1.Metal3Cluster) error {
	if m3c.Spec.ControlPlaneEndpoint.Port == 0 {
		m3c.Spec.ControlPlaneEndpoint.Port = 6443
	}
	if m3c.Spec.CloudProviderEnabled == nil {
		m3c.Spec.CloudProviderEnabled = ptr.To(false)
	}
	return nil
}

func (metal3Cluster) validate(m3c *infrav1.Metal3Cluster) error {
	if m3c.Spec.ControlPlaneEndpoint.Host != "" {
		return nil
	}
	return apierrors.NewInvalid(infrav1.GroupVersion.WithKind("Metal3Cluster").GroupKind(), m3c.Name, field.ErrorList{
		field.Invalid(field.NewPath("spec", "controlPlaneEndpoint"), m3c.Spec.ControlPlaneEndpoint.Host, "is required"),
	})
}

func (w metal3Cluster) ValidateCreate(ctx context.Context, o *infrav1.Metal3Cluster) (admission.Warnings, error) {
	return onCreateAndUpdate[*infrav1.Metal3Cluster](w.validate).ValidateCreate(ctx, o)
}
func (w metal3Cluster) ValidateUpdate(ctx context.Context, old, o *infrav1.Metal3Cluster) (admission.Warnings, error) {
	return onCreateAndUpdate[*infrav1.Metal3Cluster](w.validate).ValidateUpdate(ctx, old, o)
}
func (metal3Cluster) ValidateDelete(context.Context, *infrav1.Metal3Cluster) (admission.Warnings, error) {
	return nil, nil
}

type metal3ClusterTemplate struct {
	onCreateAndUpdate[*infrav1.Metal3ClusterTemplate]
}

func newMetal3ClusterTemplate() metal3ClusterTemplate {
	return metal3ClusterTemplate{func(t *infrav1.Metal3ClusterTemplate) error { return t.Spec.Template.Spec.IsValid() }}
}

type metal3Machine struct {
	onCreateAndUpdate[*infrav1.Metal3Machine]
}

func newMetal3Machine() metal3Machine {
	return metal3Machine{func(m *infrav1.Metal3Machine) error {
		var errs field.ErrorList
		if m.Spec.CustomDeploy.Method == "" {
			errs = append(errs, m.Spec.Image.Validate(*field.NewPath("Spec", "Image"))...)
		}
		errs = append(errs, sameNamespaceSecret(m.Spec.UserData, m.Namespace, field.NewPath("spec", "userData"))...)
		errs = append(errs, sameNamespaceSecret(m.Spec.MetaData, m.Namespace, field.NewPath("spec", "metaData"))...)
		errs = append(errs, sameNamespaceSecret(m.Spec.NetworkData, m.Namespace, field.NewPath("spec", "networkData"))...)
		if len(errs) == 0 {
			return nil
		}
		return apierrors.NewInvalid(infrav1.GroupVersion.WithKind("Metal3Machine").GroupKind(), m.Name, errs)
	}}
}

func sameNamespaceSecret(ref *corev1.SecretReference, namespace string, path *field.Path) field.ErrorList {
	if ref != nil && ref.Namespace != "" && ref.Namespace != namespace {
		return field.ErrorList{field.Forbidden(path.Child("namespace"), "cross-namespace secret references are not allowed")}
	}
	return nil
}

type metal3MachineTemplate struct {
	onCreateAndUpdate[*infrav1.Metal3MachineTemplate]
}

func newMetal3MachineTemplate() metal3MachineTemplate {
	return metal3MachineTemplate{func(t *infrav1.Metal3MachineTemplate) error {
		var errs field.ErrorList
		if t.Spec.Template.Spec.CustomDeploy.Method == "" {
			errs = append(errs, t.Spec.Template.Spec.Image.Validate(*field.NewPath("Spec", "Template", "Spec", "Image"))...)
		}
		if len(errs) == 0 {
			return nil
		}
		return apierrors.NewInvalid(infrav1.GroupVersion.WithKind("Metal3MachineTemplate").GroupKind(), t.Name, errs)
	}}
}

type metal3Remediation struct {
	onCreateAndUpdate[*infrav1.Metal3Remediation]
}

func newMetal3Remediation() metal3Remediation {
	return metal3Remediation{func(r *infrav1.Metal3Remediation) error {
		s := r.Spec.Strategy
		if s == nil {
			return nil
		}
		var errs field.ErrorList
		if s.TimeoutSeconds != 0 && s.TimeoutSeconds < minRemediationTimeoutSeconds {
			errs = append(errs, field.Invalid(field.NewPath("spec", "strategy", "timeoutSeconds"), s.TimeoutSeconds, fmt.Sprintf("min duration is %d seconds", minRemediationTimeoutSeconds)))
		}
		if s.Type != infrav1.RebootRemediationStrategy {
			errs = append(errs, field.Invalid(field.NewPath("spec", "strategy", "type"), s.Type, "is only supported remediation strategy"))
		}
		if s.RetryLimit < minRemediationRetryLimit {
			errs = append(errs, field.Invalid(field.NewPath("spec", "strategy", "retryLimit"), s.RetryLimit, "is minimum retrylimit"))
		}
		if len(errs) == 0 {
			return nil
		}
		return apierrors.NewInvalid(infrav1.GroupVersion.WithKind("Metal3Remediation").GroupKind(), r.Name, errs)
	}}
}
