// Command coredns is CoreDNS with only the plugins the dev cluster's DNS uses, so that it builds
// in a fraction of the time of the full distribution (no cloud DNS providers, no etcd).
// scripts/devcluster runs it on the real node's bridge address as the cluster DNS.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// The order in which plugins handle a query; it follows CoreDNS's own plugin.cfg.
func init() {
	dnsserver.Directives = []string{
		"reload", "bind", "ready", "health", "errors", "log", "loadbalance", "cache", "kubernetes",
		"loop", "forward",
	}
}

func main() {
	coremain.Run()
}
