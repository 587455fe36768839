// Package nodeapi is byzd's API as its clients see it: the JSON bodies
// of every route (docs/api.md), the socket and route constants that both
// sides name, and Client, the Go client byz uses. runtime/daemon encodes
// these types and serves them; the byz command decodes them. Besides the
// standard library it imports only the leaves overlays (the persistence
// report) and tlscert (fingerprints), so a client links none of the
// daemon.
package nodeapi

// DefaultSocket is the root-only unix socket where byzd serves the API to
// the node's own byz command.
const DefaultSocket = "/run/byzd.sock"

// ConsoleLoginPath checks the admin password for the serial console's
// login (byz console, which the image's inittab runs on ttyS0 when the
// spec's console shell is "login"). It is served on the root-only unix
// socket alone, never over HTTPS: whoever reaches the socket is root
// already, and the route only says yes or no.
const ConsoleLoginPath = "/api/v1/console/login"
