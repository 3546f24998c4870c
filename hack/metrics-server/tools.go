//go:build tools

// Package tools pins metrics-server, which serves the resource metrics API the HPA reads.
package tools

import (
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
