package webfront

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"regexp"
	"strings"
	"time"
)

// State is what an app's supervisor says of it. The zero value is
// Running, so a route without a State callback is taken as up.
type State int

const (
	Running  State = iota
	Starting       // started and not answering yet: a page that reloads itself
	Stopped        // off: a page saying so and where to turn it on
	Failed         // it stopped by itself: a page saying so
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Starting:
		return "starting"
	case Stopped:
		return "stopped"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Route is one web app as the front reaches it.
type Route struct {
	// Name identifies the app (lower-case letters, digits, dashes); its
	// Title is what pages show ("Wiki"), Name if empty.
	Name, Title string
	// Prefix routes by path: "/wiki/" serves https://NODE/wiki/...; Host
	// routes by name: "wiki.node1.byzantium.mesh" serves that whole
	// site. A route has one or both; host routes are tried first.
	Prefix, Host string
	// Exactly one backend.
	HTTP    *HTTPBackend
	FastCGI *FastCGIBackend
	// Health is the path (within the app, "/" for its root) Probe asks;
	// "" means "/".
	Health string
	// State reports the app's state at the time of a request whose
	// backend does not answer, to choose the page; nil means Running.
	State  func() State
	Limits Limits
}

// HTTPBackend is an app speaking HTTP/1.1 (WebSockets included) on a
// unix socket or a loopback TCP port.
type HTTPBackend struct {
	// Socket is a unix socket's path as byzd sees it; Addr a loopback
	// "127.0.0.1:9000" or "[::1]:9000". One of the two.
	Socket, Addr string
	// KeepPrefix sends the path with the route's Prefix; by default it
	// is stripped (the app thinks it is at "/") and sent as
	// X-Forwarded-Prefix. Apps that know their own base path keep it.
	KeepPrefix bool
}

// FastCGIBackend is an app behind a FastCGI responder (php-fpm).
type FastCGIBackend struct {
	// Socket is the responder's unix socket as byzd sees it.
	Socket string
	// Root is the app's document root as the responder sees it
	// ("/usr/share/dokuwiki"): SCRIPT_FILENAME is always inside it.
	Root string
	// Index is the script for a path ending in "/" ("index.php" if
	// empty).
	Index string
	// FSRoot is the app's filesystem root as byzd sees it (its sandbox's
	// root; "/" when the responder runs unconfined). Static files are
	// served from FSRoot + Root when it is set, and not at all if not.
	FSRoot string
	// Static lists the file extensions served as static files (".css",
	// ".png"); empty means DefaultStatic.
	Static []string
	// Deny lists paths under Root that are never served, as script or
	// file ("conf/", "data/", "inc/"): a folder with a trailing slash,
	// or one file.
	Deny []string
}

// DefaultStatic are the extensions a FastCGI app's static files may
// have: styles, scripts, images and fonts, never text or data files
// that could be an app's stored pages or settings.
var DefaultStatic = []string{".css", ".js", ".png", ".gif", ".jpg", ".jpeg", ".svg", ".ico", ".webp", ".woff", ".woff2"}

// Limits bound what one app takes of byzd and what one client takes of
// an app. The zero value takes the defaults.
type Limits struct {
	// MaxBody is the largest request body (413 past it); 0 means 8 MiB.
	MaxBody int64
	// Concurrent caps the requests (WebSockets included) the app handles
	// at once; more wait their turn up to BackendTimeout. For a FastCGI
	// app it should match the pool's pm.max_children. 0 means 64 for
	// HTTP and 4 for FastCGI.
	Concurrent int
	// PerClient caps the requests one client (an IPv4 address, an IPv6
	// /64) has in the app at once: more wait in the client's own queue,
	// up to 4 × PerClient of them, and past that get 429. 0 means 16 for
	// HTTP, 2 for FastCGI (with Concurrent 4: one client holds half the
	// pool at most).
	PerClient int
	// BodyTimeout bounds reading a request's body; 0 means 60 s.
	BodyTimeout time.Duration
	// BackendTimeout bounds reaching the app and waiting for its headers
	// (and waiting for a turn); 0 means 60 s.
	BackendTimeout time.Duration
	// IdleTimeout closes a WebSocket or a streamed answer after this long
	// without a byte either way; 0 means 5 min.
	IdleTimeout time.Duration
}

func (l Limits) withDefaults(fastcgi bool) Limits {
	if l.MaxBody <= 0 {
		l.MaxBody = 8 << 20
	}
	if l.Concurrent <= 0 {
		l.Concurrent = 64
		if fastcgi {
			l.Concurrent = 4
		}
	}
	if l.PerClient <= 0 {
		l.PerClient = 16
		if fastcgi {
			l.PerClient = 2
		}
	}
	l.PerClient = min(l.PerClient, l.Concurrent)
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = 60 * time.Second
	}
	if l.BackendTimeout <= 0 {
		l.BackendTimeout = 60 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 5 * time.Minute
	}
	return l
}

// ErrRoute is wrapped by every error of a route that cannot be used.
var ErrRoute = errors.New("webfront: bad route")

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	// A prefix's segments are plain: what a browser never escapes.
	prefixRE = regexp.MustCompile(`^/([A-Za-z0-9._~-]+/)+$`)
	hostRE   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// check validates r, saying what is wrong with which field.
func (r *Route) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrRoute, r.Name, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(r.Name) {
		return fmt.Errorf("%w: name %q: use lower-case letters, digits and dashes", ErrRoute, r.Name)
	}
	if r.Prefix == "" && r.Host == "" {
		return bad("give a path prefix (\"/%s/\") or a host name", r.Name)
	}
	if r.Prefix != "" {
		if !prefixRE.MatchString(r.Prefix) || strings.Contains("/"+r.Prefix, "/./") || strings.Contains(r.Prefix, "/../") {
			return bad("prefix %q: a path like \"/%s/\" (starts and ends with a slash, plain segments)", r.Prefix, r.Name)
		}
	}
	if r.Host != "" && (len(r.Host) > 253 || !hostRE.MatchString(r.Host)) {
		return bad("host %q: a lower-case DNS name", r.Host)
	}
	if r.Health != "" && (!strings.HasPrefix(r.Health, "/") || strings.ContainsAny(r.Health, " \t\r\n")) {
		return bad("health path %q must start with a slash", r.Health)
	}
	switch {
	case (r.HTTP == nil) == (r.FastCGI == nil):
		return bad("give exactly one backend, HTTP or FastCGI")
	case r.HTTP != nil:
		b := r.HTTP
		if (b.Socket == "") == (b.Addr == "") {
			return bad("the HTTP backend needs a unix socket or a loopback address, one of the two")
		}
		if b.Socket != "" && !path.IsAbs(b.Socket) {
			return bad("socket %q must be an absolute path", b.Socket)
		}
		if b.Addr != "" {
			ap, err := netip.ParseAddrPort(b.Addr)
			if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
				// The front must never become a way into other hosts.
				return bad("address %q: only a loopback address and port (127.0.0.1:PORT, [::1]:PORT)", b.Addr)
			}
		}
	case r.FastCGI != nil:
		b := r.FastCGI
		if !path.IsAbs(b.Socket) {
			return bad("FastCGI socket %q must be an absolute path", b.Socket)
		}
		if !path.IsAbs(b.Root) || path.Clean(b.Root) != b.Root {
			return bad("FastCGI root %q must be a clean absolute path", b.Root)
		}
		if b.FSRoot != "" && (!path.IsAbs(b.FSRoot) || path.Clean(b.FSRoot) != b.FSRoot) {
			return bad("FastCGI filesystem root %q must be a clean absolute path", b.FSRoot)
		}
		if b.Index != "" && (strings.Contains(b.Index, "/") || !strings.HasSuffix(b.Index, ".php")) {
			return bad("index %q must be a .php file name", b.Index)
		}
		for _, e := range b.Static {
			if !strings.HasPrefix(e, ".") || e == ".php" || strings.Contains(e, "/") {
				return bad("static extension %q: like \".css\" (never .php)", e)
			}
		}
		for _, d := range b.Deny {
			if d == "" || strings.HasPrefix(d, "/") || strings.Contains(d, "..") {
				return bad("deny %q: a path under the root, like \"conf/\"", d)
			}
		}
	}
	return nil
}

// loopbackOnly is a dialer's Control refusing anything but loopback, a
// second guard behind check for TCP backends.
func loopbackOnly(network, address string) error {
	if network == "unix" {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return fmt.Errorf("webfront: refusing to dial %s: not loopback", address)
	}
	return nil
}
