//go:build tools

// Package tools pins crictl, which scripts/devcluster uses to stop and remove the real node's pods
// through the CRI on `down` (so the CNI plugin releases addresses, veths and netns as it should).
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
