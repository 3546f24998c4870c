//go:build tools

// Package tools pins kube-router, whose network policy controller (alone: --run-firewall, no
// routing, no service proxy) enforces NetworkPolicy on the real node with iptables and ipset.
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
