// Package daemon is byzd's front: the HTTP handlers of the JSON API and
// the panel's pages, and the wiring that starts the node's control
// daemon (Run) around them. Run brings up wired networking (netcfg),
// keeps the node's TLS certificate (tlscert), opens the admin's store
// (auth) and the module and service manager (service), and serves the
// panel and the API over HTTPS, the API again on a root-only unix socket,
// and only redirects on plain HTTP.
//
// The API's wire types, and the Go client byz uses, are in
// runtime/nodeapi: a handler here decodes and encodes those types and
// calls the package that owns the work: runtime/service for modules and
// services, runtime/auth for logins and tokens, runtime/changes and
// runtime/savedat for persistence, image/clone for clones, the mesh
// manager (runtime/mesh, behind the Mesh interface) for the mesh, whose
// settings' rules are runtime/mesh/meshcfg's. Code that does
// the work itself belongs with its owner, not here.
package daemon
