// Command ironflow-upstream-webhooks serves, for Ironflow's kube-apiserver, the
// webhooks upstream's controllers serve for their CRDs: CRD conversion between
// served versions and the defaulting/validating admission webhooks. Each one is
// upstream's own Go code at the release pinned in go.mod, registered the way
// upstream's main.go registers it; only the glue (which upstream keeps in
// internal packages) is re-expressed here, in contract.go and sidero.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/conversion"

	infrav1beta1 "github.com/metal3-io/cluster-api-provider-metal3/api/v1beta1"
	infrav1 "github.com/metal3-io/cluster-api-provider-metal3/api/v1beta2"
	ipamv1alpha1 "github.com/metal3-io/ip-address-manager/api/v1alpha1"
	addonsv1beta1 "sigs.k8s.io/cluster-api/api/addons/v1beta1"
	addonsv1 "sigs.k8s.io/cluster-api/api/addons/v1beta2"
	bootstrapv1beta1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta1"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	controlplanev1beta1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta1"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1beta1 "sigs.k8s.io/cluster-api/api/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ipamv1alpha1capi "sigs.k8s.io/cluster-api/api/ipam/v1alpha1"
	ipamv1beta1 "sigs.k8s.io/cluster-api/api/ipam/v1beta1"
	ipamv1 "sigs.k8s.io/cluster-api/api/ipam/v1beta2"
	runtimev1alpha1 "sigs.k8s.io/cluster-api/api/runtime/v1alpha1"
	runtimev1 "sigs.k8s.io/cluster-api/api/runtime/v1beta2"
	bootstrapwebhooks "sigs.k8s.io/cluster-api/bootstrap/kubeadm/webhooks"
	controlplanewebhooks "sigs.k8s.io/cluster-api/controlplane/kubeadm/webhooks"
	"sigs.k8s.io/cluster-api/feature"
	corewebhooks "sigs.k8s.io/cluster-api/webhooks"
)

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme,
		clusterv1beta1.AddToScheme, clusterv1.AddToScheme,
		bootstrapv1beta1.AddToScheme, bootstrapv1.AddToScheme,
		controlplanev1beta1.AddToScheme, controlplanev1.AddToScheme,
		addonsv1beta1.AddToScheme, addonsv1.AddToScheme,
		ipamv1alpha1capi.AddToScheme, ipamv1beta1.AddToScheme, ipamv1.AddToScheme,
		runtimev1alpha1.AddToScheme, runtimev1.AddToScheme,
		infrav1beta1.AddToScheme, infrav1.AddToScheme,
		ipamv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// noWorkloadClusters answers the Cluster webhook's one question about a
// workload cluster (are its MachinePools upgrading?): Ironflow's plane does
// not hold connections to workload clusters, so the webhook says so.
type noWorkloadClusters struct{}

func (noWorkloadClusters) GetReader(_ context.Context, key client.ObjectKey) (client.Reader, error) {
	return nil, fmt.Errorf("no connection to workload cluster %s from Ironflow's webhook: MachinePool upgrade checks are not supported yet", key)
}

func main() {
	// A flag set of our own: controller-runtime registers --kubeconfig on the global one.
	fs := flag.NewFlagSet("ironflow-upstream-webhooks", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the kube-apiserver these webhooks serve (required)")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 9443, "HTTPS port")
	certDir := fs.String("cert-dir", "", "folder with tls.crt and tls.key (required)")
	convertTo := fs.String("convert-to", "", "instead of serving: convert the JSON array of objects on stdin to this apiVersion with the same handler the server uses, print the JSON array (for tests)")
	gates := fs.String("feature-gates", "", "Cluster API feature gates, as its controllers take them (e.g. ClusterTopology=true)")
	_ = fs.Parse(os.Args[1:])
	ctrl.SetLogger(zap.New(zap.UseDevMode(false)))
	log := ctrl.Log.WithName("ironflow-upstream-webhooks")
	if *kubeconfig == "" || (*certDir == "" && *convertTo == "") {
		fmt.Fprintln(os.Stderr, "ironflow-upstream-webhooks: --kubeconfig and --cert-dir are required")
		os.Exit(2)
	}
	if *gates != "" {
		if err := feature.MutableGates.Set(*gates); err != nil {
			fmt.Fprintf(os.Stderr, "ironflow-upstream-webhooks: --feature-gates %q: %v\n", *gates, err)
			os.Exit(2)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ironflow-upstream-webhooks: kubeconfig %s: %v\n", *kubeconfig, err)
		os.Exit(2)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 newScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          webhook.NewServer(webhook.Options{Host: *host, Port: *port, CertDir: *certDir}),
	})
	if err != nil {
		log.Error(err, "cannot create manager")
		os.Exit(1)
	}

	// One /convert for every CRD: registered before upstream's setups, so
	// controller-runtime's builder finds it taken and does not add its own.
	// Kinds whose conversion is re-expressed (sidero.go) go there; every other
	// kind goes to controller-runtime's handler, which converts each kind in
	// the scheme through upstream's ConvertTo/ConvertFrom (Cluster API's and
	// CAPM3's api/v1beta1 packages).
	mgr.GetWebhookServer().Register("/convert", conversionDispatcher(conversion.NewWebhookHandler(mgr.GetScheme(), mgr.GetConverterRegistry())))

	// Down-converting a reference needs the apiVersion the referenced kind
	// serves under the Cluster API contract, read from its CRD's labels.
	apiVersionOf := func(gk schema.GroupKind) (string, error) {
		return contractAPIVersion(context.Background(), mgr.GetAPIReader(), gk)
	}
	clusterv1beta1.SetAPIVersionGetter(apiVersionOf)
	controlplanev1beta1.SetAPIVersionGetter(apiVersionOf)

	// The same registrations, in the same order, as the main.go of Cluster
	// API's core, kubeadm bootstrap and kubeadm control plane controllers.
	setups := []struct {
		name  string
		setup func(ctrl.Manager) error
	}{
		{"ClusterClass", (&corewebhooks.ClusterClass{Client: mgr.GetClient()}).SetupWebhookWithManager},
		{"Cluster", (&corewebhooks.Cluster{Client: mgr.GetClient(), ClusterCacheReader: noWorkloadClusters{}}).SetupWebhookWithManager},
		{"Machine", (&corewebhooks.Machine{}).SetupWebhookWithManager},
		{"MachineSet", (&corewebhooks.MachineSet{}).SetupWebhookWithManager},
		{"MachineDeployment", (&corewebhooks.MachineDeployment{}).SetupWebhookWithManager},
		{"MachineDrainRule", (&corewebhooks.MachineDrainRule{}).SetupWebhookWithManager},
		{"MachinePool", (&corewebhooks.MachinePool{}).SetupWebhookWithManager},
		{"ClusterResourceSet", (&corewebhooks.ClusterResourceSet{}).SetupWebhookWithManager},
		{"ClusterResourceSetBinding", (&corewebhooks.ClusterResourceSetBinding{}).SetupWebhookWithManager},
		{"MachineHealthCheck", (&corewebhooks.MachineHealthCheck{}).SetupWebhookWithManager},
		{"ExtensionConfig", (&corewebhooks.ExtensionConfig{}).SetupWebhookWithManager},
		{"IPAddress", (&corewebhooks.IPAddress{Client: mgr.GetAPIReader()}).SetupWebhookWithManager},
		{"IPAddressClaim", (&corewebhooks.IPAddressClaim{}).SetupWebhookWithManager},
		{"KubeadmConfig", (&bootstrapwebhooks.KubeadmConfig{}).SetupWebhookWithManager},
		{"KubeadmConfigTemplate", (&bootstrapwebhooks.KubeadmConfigTemplate{}).SetupWebhookWithManager},
		{"KubeadmControlPlane", (&controlplanewebhooks.KubeadmControlPlane{}).SetupWebhookWithManager},
		{"KubeadmControlPlane scale", (&controlplanewebhooks.ScaleValidator{Client: mgr.GetClient()}).SetupWebhookWithManager},
		{"KubeadmControlPlaneTemplate", (&controlplanewebhooks.KubeadmControlPlaneTemplate{}).SetupWebhookWithManager},
	}
	for _, s := range setups {
		if err := s.setup(mgr); err != nil {
			log.Error(err, "cannot set up webhook", "webhook", s.name)
			os.Exit(1)
		}
	}
	if err := setupCAPM3Webhooks(mgr); err != nil {
		log.Error(err, "cannot set up CAPM3 webhooks")
		os.Exit(1)
	}

	if *convertTo != "" {
		os.Exit(convertStdin(mgr.GetWebhookServer(), *convertTo))
	}
	mgr.GetWebhookServer().Register("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	log.Info("serving", "address", fmt.Sprintf("https://%s:%d", *host, *port), "featureGates", *gates)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil && !errors.Is(err, context.Canceled) {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
