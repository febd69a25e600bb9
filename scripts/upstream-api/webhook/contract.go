package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sversion "k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"sigs.k8s.io/cluster-api/util/contract"
)

// contractAPIVersion answers what Cluster API's internal/contract.GetAPIVersion
// answers (that package is internal, so it is re-expressed here): the newest
// apiVersion a kind serves under the newest contract its CRD declares, read
// from the CRD's `cluster.x-k8s.io/<contract>` label ("v1beta1_v1beta2" lists
// versions), trying contract v1beta2 first, then v1beta1.
func contractAPIVersion(ctx context.Context, c client.Reader, gk schema.GroupKind) (string, error) {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	name := contract.CalculateCRDName(gk.Group, gk.Kind)
	if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return "", fmt.Errorf("failed to get apiVersion for kind %s: CustomResourceDefinition %s: %w", gk.Kind, name, err)
	}
	for _, contractVersion := range []string{"v1beta2", "v1beta1"} {
		supported := crd.GetLabels()["cluster.x-k8s.io/"+contractVersion]
		if supported == "" {
			continue
		}
		versions := strings.Split(supported, "_")
		sort.Slice(versions, func(i, j int) bool { return k8sversion.CompareKubeAwareVersionStrings(versions[i], versions[j]) < 0 })
		return schema.GroupVersion{Group: gk.Group, Version: versions[len(versions)-1]}.String(), nil
	}
	return "", fmt.Errorf("failed to get apiVersion for kind %s: CustomResourceDefinition %s has no cluster.x-k8s.io/v1beta2 or cluster.x-k8s.io/v1beta1 label naming the versions it serves under the Cluster API contract", gk.Kind, name)
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
