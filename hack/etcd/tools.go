//go:build tools

// Package tools pins etcd: its server module root is the etcd main package, and
// `go install` refuses it because its go.mod carries replace directives.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
