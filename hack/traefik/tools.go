//go:build tools

// Package tools pins Traefik, the Ingress controller the real node runs.
package tools

import (
	_ "github.com/traefik/traefik/v3/cmd/traefik"
)
