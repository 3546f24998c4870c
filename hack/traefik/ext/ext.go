// Package ext stands in for Traefik's extension point of the same path. Traefik's repository keeps it
// as a nested module (pkg/config/dynamic/ext) that its own go.mod replaces with a local directory, so
// it is not part of the published v3 module and a build from the module proxy must provide it. Traefik
// embeds these (empty) structs in its dynamic configuration; nothing else uses them.
package ext

// HTTP is embedded in Traefik's dynamic.HTTP.
type HTTP struct{}

// Router is embedded in Traefik's dynamic.Router.
type Router struct{}
