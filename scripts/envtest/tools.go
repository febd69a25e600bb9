//go:build tools

// Package envtest pins the Kubernetes API server, controller manager and
// kubectl that Ironflow's tests and `npm start` run locally. Nothing here is
// Ironflow code: the build script (scripts/build-envtest.sh) compiles these
// upstream commands from the published modules because no kube-apiserver
// package exists on the machines this project runs on. The controller manager
// is what finishes namespace deletion and collects objects whose owner is gone.
package envtest

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
