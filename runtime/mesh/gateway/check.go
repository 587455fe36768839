package gateway

import (
	"byzantium/runtime/mesh/meshcfg"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultTargets are the Internet check's targets when the spec names none:
// two public anycast DNS resolvers of different operators, by address (a
// check must not depend on DNS working) on TCP 53 (a connection that
// completes is an answer from the Net; UDP would need a query).
var DefaultTargets = []string{"tcp:1.1.1.1:53", "tcp:9.9.9.9:53"}

// DefaultTargets6 are the IPv6 check's targets when the targets name no
// IPv6 one: the same two resolvers' IPv6 anycast addresses on TCP 53, for
// the same reasons. The IPv6 way out is checked on its own (an uplink may
// give working IPv4 and broken IPv6, or the reverse): an IPv4 target
// answering says nothing about IPv6.
var DefaultTargets6 = []string{"tcp:[2606:4700:4700::1111]:53", "tcp:[2620:fe::fe]:53"}

// Bounds on what a spec or the API may configure (meshcfg's).
const (
	maxTargets   = meshcfg.MaxChecks
	maxTargetLen = meshcfg.MaxCheckTarget
)

// DefaultCheckTimeout bounds each target's try.
const DefaultCheckTimeout = 3 * time.Second

// target is one parsed check target.
type target struct {
	raw  string
	tcp  string // "host:port" for tcp: targets
	http string // the URL for http(s) targets
	ipv6 bool   // an IPv6 literal: the IPv6 check's
}

// String is the target as a verdict names it: the address of a tcp:
// target, the URL of an HTTP one.
func (t target) String() string {
	if t.tcp != "" {
		return t.tcp
	}
	return t.http
}

func parseTarget(s string) (target, error) {
	t, err := meshcfg.ParseCheckTarget(s)
	if err != nil {
		return target{}, fmt.Errorf("gateway: check target: %w", err)
	}
	tg := target{raw: s, tcp: t.TCP, http: t.URL}
	var host string
	if h, _, err := net.SplitHostPort(t.TCP); err == nil {
		host = h
	} else if u, err := url.Parse(t.URL); err == nil { // parsed once already
		host = u.Hostname()
	}
	// A name (an http URL's host) is IPv4's: the check of a family must
	// not pass on an answer of the other, and a name says neither.
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		tg.ipv6 = true
	}
	return tg, nil
}

// SplitTargets sorts check targets by family: IPv6 literals (tcp:[…]:P,
// http://[…]/) go to the IPv6 check, everything else (IPv4 literals and
// names) to the IPv4 check. A family given no target gets its defaults
// (DefaultTargets, DefaultTargets6), so that naming a local IPv4 server
// does not leave IPv6 unchecked, nor the reverse. Bad targets are refused.
func SplitTargets(targets []string) (v4, v6 []string, err error) {
	if len(targets) > maxTargets {
		return nil, nil, fmt.Errorf("gateway: %d check targets, at most %d", len(targets), maxTargets)
	}
	for _, s := range targets {
		t, err := parseTarget(s)
		if err != nil {
			return nil, nil, err
		}
		if t.ipv6 {
			v6 = append(v6, s)
		} else {
			v4 = append(v4, s)
		}
	}
	if len(v4) == 0 {
		v4 = DefaultTargets
	}
	if len(v6) == 0 {
		v6 = DefaultTargets6
	}
	return v4, v6, nil
}

// Checker tells whether the Internet answers through an uplink. Each
// target is tried at once, each within Timeout, from a socket bound to the
// uplink (SO_BINDTODEVICE): a default route learned from the mesh, perhaps
// through another gateway, cannot make this node's check pass. The verdict
// is ok when at least one target answers.
//
// Check adds hysteresis to the raw verdict: fails consecutive failures
// (2 by default) withdraw, one success announces. Withdrawing makes every node in the
// mesh re-route and drops their connections through this gateway, so one
// lost SYN on a busy uplink must not do it; announcing again after one
// success is safe because an answer through the uplink is strong evidence,
// and the mesh should get its way out back as soon as it exists.
//
// An http(s) target counts only when it answers 2xx: redirects are not
// followed. Check and Reset are for one goroutine (Run's); Probe may run
// concurrently.
type Checker struct {
	targets []target
	timeout time.Duration
	fails   int
	ns      *netNS
	network string // "tcp4" or "tcp6": the family checked

	up      bool // the verdict after hysteresis
	failRun int  // consecutive raw failures
}

// NewChecker parses targets ("tcp:IP:PORT", "http://…", "https://…")
// and makes the IPv4 check of those that are IPv4's (SplitTargets; none
// means DefaultTargets). timeout 0 means DefaultCheckTimeout, fails below
// 1 means 2.
func NewChecker(targets []string, timeout time.Duration, fails int) (*Checker, error) {
	v4, _, err := SplitTargets(targets)
	if err != nil {
		return nil, err
	}
	return newChecker(v4, timeout, fails, &netNS{h: -1}, false)
}

// NewChecker6 is NewChecker for the IPv6 check: the IPv6 literals among
// targets, or DefaultTargets6.
func NewChecker6(targets []string, timeout time.Duration, fails int) (*Checker, error) {
	_, v6, err := SplitTargets(targets)
	if err != nil {
		return nil, err
	}
	return newChecker(v6, timeout, fails, &netNS{h: -1}, true)
}

// newCheckers makes the IPv4 and the IPv6 check of targets.
func newCheckers(targets []string, timeout time.Duration, fails int, ns *netNS) (c4, c6 *Checker, err error) {
	v4, v6, err := SplitTargets(targets)
	if err != nil {
		return nil, nil, err
	}
	if c4, err = newChecker(v4, timeout, fails, ns, false); err != nil {
		return nil, nil, err
	}
	if c6, err = newChecker(v6, timeout, fails, ns, true); err != nil {
		return nil, nil, err
	}
	return c4, c6, nil
}

// newChecker makes the check of one family from targets SplitTargets
// gave for it.
func newChecker(targets []string, timeout time.Duration, fails int, ns *netNS, ipv6 bool) (*Checker, error) {
	if len(targets) > maxTargets {
		return nil, fmt.Errorf("gateway: %d check targets, at most %d", len(targets), maxTargets)
	}
	c := &Checker{timeout: timeout, fails: fails, ns: ns, network: "tcp4"}
	if ipv6 {
		c.network = "tcp6"
	}
	if c.timeout <= 0 {
		c.timeout = DefaultCheckTimeout
	}
	if c.fails < 1 {
		c.fails = 2
	}
	for _, s := range targets {
		t, err := parseTarget(s)
		if err != nil {
			return nil, err
		}
		if t.ipv6 != ipv6 {
			return nil, fmt.Errorf("gateway: check target %s is not of the family checked (%s)", t, c.network)
		}
		c.targets = append(c.targets, t)
	}
	return c, nil
}

// Probe tries every target once through iface and returns "ok" or why not
// ("no answer from 1.1.1.1:53 (timeout), 9.9.9.9:53 (refused)"). It takes
// at most the Checker's timeout.
func (c *Checker) Probe(ctx context.Context, iface string) (ok bool, verdict string) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	errs := make([]error, len(c.targets))
	done := make(chan int, len(c.targets))
	for i, t := range c.targets {
		go func() {
			errs[i] = c.try(ctx, iface, t)
			done <- i
		}()
	}
	// The first answer ends the others (cancel), but Probe still waits
	// for them: none may outlive it and touch a closed namespace handle.
	ok = false
	for range c.targets {
		if i := <-done; errs[i] == nil && !ok {
			ok = true
			cancel()
		}
	}
	if ok {
		return true, "ok"
	}
	parts := make([]string, len(c.targets))
	for i, t := range c.targets {
		parts[i] = t.String() + " (" + short(errs[i]) + ")"
	}
	return false, "no answer from " + strings.Join(parts, ", ")
}

// Check probes and applies the hysteresis: up is whether the uplink
// counts as working, verdict the probe's own.
func (c *Checker) Check(ctx context.Context, iface string) (up bool, verdict string) {
	ok, verdict := c.Probe(ctx, iface)
	c.record(ok)
	if !ok && c.up {
		verdict += fmt.Sprintf("; still up until %d more check(s) fail", c.fails-c.failRun)
	}
	return c.up, verdict
}

// record feeds one raw result into the hysteresis.
func (c *Checker) record(ok bool) {
	if ok {
		c.up, c.failRun = true, 0
		return
	}
	c.failRun++
	if c.failRun >= c.fails {
		c.up = false
	}
}

// Reset forgets the history: after the uplink changed or went away, the
// next success announces and failures start counting from zero.
func (c *Checker) Reset() { c.up, c.failRun = false, 0 }

func (c *Checker) try(ctx context.Context, iface string, t target) error {
	if t.tcp != "" {
		conn, err := c.dial(ctx, iface, c.network, t.tcp)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	client := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return c.dial(ctx, iface, c.network, addr)
			},
			DisableKeepAlives: true,
			Proxy:             nil, // the check is about this uplink, not a proxy
			// What answers is the Net or a portal in the way: bounded.
			MaxResponseHeaderBytes: 16 << 10,
		},
		// A captive portal answers with a redirect to its login page:
		// that is not the Net answering, so redirects are not followed
		// and only a 2xx counts.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.http, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// dial connects from a socket bound to iface, in the gateway's namespace.
// Names are resolved through iface too. Only network's family is tried
// (tcp4 or tcp6): each family's check decides that family's default
// route alone. FallbackDelay -1 keeps the dial on
// this goroutine (no Happy Eyeballs goroutines), which netNS.do needs.
func (c *Checker) dial(ctx context.Context, iface, network, addr string) (net.Conn, error) {
	// An HTTP transport may dial on with a context of its own after the
	// request ended: the timeout bounds every dial whatever it is given.
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	bind := func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), iface) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("binding to %s: %w", iface, serr)
		}
		return nil
	}
	d := &net.Dialer{Control: bind, FallbackDelay: -1}
	d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := c.ns.do(func() (err error) {
			conn, err = (&net.Dialer{Control: bind}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}}
	var conn net.Conn
	err := c.ns.do(func() (err error) {
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// short names a failure in a few words for the panel.
func short(err error) string {
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENODEV):
		return "no such interface"
	case errors.As(err, &dnsErr):
		return "name not resolved"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}
