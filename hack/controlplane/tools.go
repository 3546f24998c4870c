//go:build tools

// Package tools pins the Kubernetes commands that scripts/devcluster builds.
// The build tag keeps this file out of every build; it only makes `go mod tidy`
// record the modules those commands need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
