//go:build tools

// Package envtest pins the Kubernetes API server and kubectl that Ironflow's
// tests and `npm start` run locally. Nothing here is Ironflow code: the build
// script (scripts/build-envtest.sh) compiles these upstream commands from the
// published modules because no kube-apiserver package exists on the machines
// this project runs on.
package envtest

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
