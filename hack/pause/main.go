// Command pause is the pod sandbox's process: it holds the pod's namespaces open and exits on
// SIGTERM/SIGINT. No registry is reachable from the dev cluster, so registry.k8s.io/pause cannot
// be pulled; scripts/images builds this into the sandbox image instead. As PID 1 of a pod with a
// shared process namespace it also reaps orphaned children, as the upstream pause does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
