//go:build tools

// Package tools pins the Kubernetes commands that scripts/devcluster builds
// (the control plane, and kubelet + kube-proxy for the real node).
// The build tag keeps this file out of every build; it only makes `go mod tidy`
// record the modules those commands need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
