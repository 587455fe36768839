// Package webfront is byzd as the web front of a node's apps: an
// http.Handler that routes requests by path prefix ("/wiki/") or host
// name ("wiki.NODE.byzantium.mesh") to each app in its sandbox, as a
// reverse proxy to an HTTP backend (WebSockets included) or as the
// FastCGI client of a PHP app, with per-app body limits, deadlines and
// per-client fairness. An app that is off, starting or broken gets a
// clear page in the client's language (JSON for API clients), never a
// proxy's error. The routes change at runtime as apps start and stop.
package webfront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Logf is a printf-style logger.
type Logf func(format string, args ...any)

// Front routes requests to the apps; its zero value has no routes and
// hands everything to Fallback.
type Front struct {
	// Logf receives the apps' errors and stderr (the caller rate-limits);
	// nil discards them.
	Logf Logf
	// Fallback serves what no route claims (byzd's panel); nil answers
	// 404.
	Fallback http.Handler
	// ReservedCookies are byzd's own cookies (its session): they are
	// taken out of requests to apps and refused in apps' answers, so an
	// app on the panel's host name can neither read nor replace them.
	ReservedCookies []string

	mu    sync.Mutex // serializes Update
	table atomic.Pointer[table]
}

// table is one immutable set of routes.
type table struct {
	byHost   map[string]*app
	byPrefix []*app // longest prefix first
	byName   map[string]*app
}

// app is a route made ready to serve.
type app struct {
	f     *Front
	route Route
	name  string
	title string
	lim   Limits
	gate  *gate
	http  *httpApp
	fcgi  *fcgiApp
}

// Update replaces the routes. Every route is checked first: on an error
// nothing changes. Requests under way finish on the routes they
// started with; an app keeping its name and limits keeps its queues.
func (f *Front) Update(routes []Route) error {
	names, hosts, prefixes := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := range routes {
		r := &routes[i]
		if err := r.check(); err != nil {
			return err
		}
		if names[r.Name] {
			return fmt.Errorf("%w: two routes are named %q", ErrRoute, r.Name)
		}
		if r.Host != "" && hosts[r.Host] {
			return fmt.Errorf("%w %q: host %s is already another app's", ErrRoute, r.Name, r.Host)
		}
		if r.Prefix != "" && prefixes[r.Prefix] {
			return fmt.Errorf("%w %q: prefix %s is already another app's", ErrRoute, r.Name, r.Prefix)
		}
		names[r.Name], hosts[r.Host], prefixes[r.Prefix] = true, true, true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.table.Load()
	t := &table{byHost: map[string]*app{}, byName: map[string]*app{}}
	for _, r := range routes {
		a := &app{f: f, route: r, name: r.Name, title: r.Title}
		if a.title == "" {
			a.title = r.Name
		}
		a.lim = r.Limits.withDefaults(r.FastCGI != nil)
		if o := old.get(r.Name); o != nil && o.lim == a.lim {
			a.gate = o.gate
		} else {
			a.gate = newGate(a.lim.Concurrent, a.lim.PerClient)
		}
		if r.HTTP != nil {
			a.http = newHTTPApp(a)
		} else {
			a.fcgi = newFCGIApp(a)
		}
		t.byName[r.Name] = a
		if r.Host != "" {
			t.byHost[r.Host] = a
		}
		if r.Prefix != "" {
			t.byPrefix = append(t.byPrefix, a)
		}
	}
	sort.Slice(t.byPrefix, func(i, j int) bool { return len(t.byPrefix[i].route.Prefix) > len(t.byPrefix[j].route.Prefix) })
	f.table.Store(t)
	if old != nil {
		for _, a := range old.byName {
			if a.http != nil {
				a.http.closeIdle()
			}
		}
	}
	return nil
}

func (t *table) get(name string) *app {
	if t == nil {
		return nil
	}
	return t.byName[name]
}

// Routes returns the routes in use, sorted by name (for the panel's
// links).
func (f *Front) Routes() []Route {
	t := f.table.Load()
	if t == nil {
		return nil
	}
	var out []Route
	for _, a := range t.byName {
		out = append(out, a.route)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *Front) logf(format string, args ...any) {
	if f.Logf != nil {
		f.Logf(format, args...)
	}
}

// hostName is r's host without port or trailing dot, lower-cased.
func hostName(r *http.Request) string {
	h := r.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// match finds r's app and the prefix it is served under, or the URL to
// redirect to for a prefix without its trailing slash.
func (t *table) match(r *http.Request) (a *app, prefix, redirect string) {
	if t == nil {
		return nil, "", ""
	}
	if a := t.byHost[hostName(r)]; a != nil {
		return a, "/", ""
	}
	raw := r.URL.EscapedPath()
	for _, a := range t.byPrefix {
		p := a.route.Prefix
		if strings.HasPrefix(raw, p) {
			return a, p, ""
		}
		if raw == p[:len(p)-1] {
			u := url.URL{Path: p, RawQuery: r.URL.RawQuery}
			return a, p, u.String()
		}
	}
	return nil, "", ""
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, prefix, redirect := f.table.Load().match(r)
	if a == nil {
		if f.Fallback != nil {
			f.Fallback.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	if redirect != "" {
		code := http.StatusMovedPermanently
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			code = http.StatusPermanentRedirect
		}
		http.Redirect(w, r, redirect, code)
		return
	}
	rel, relRaw, err := appPath(r.URL, prefix)
	if err != nil {
		a.writePage(w, r, pageBadPath)
		return
	}
	a.serve(w, r, prefix, rel, relRaw)
}

// serve applies the app's limits and hands r to its backend.
func (a *app) serve(w http.ResponseWriter, r *http.Request, prefix, rel, relRaw string) {
	var t target
	if a.fcgi != nil {
		var ok bool
		if t, ok = a.fcgi.resolve(rel); !ok {
			a.writePage(w, r, pageNotFound)
			return
		}
		if t.script == "" {
			// Static files take no turn: they cost byzd a file read, and
			// the app's turns are its PHP workers.
			a.fcgi.serveStatic(w, r, t.file)
			return
		}
		if r.ContentLength < 0 {
			// PHP reads a body by CONTENT_LENGTH: a chunked body would
			// have to be held whole first. Browsers always send a length.
			a.writePage(w, r, pageLength)
			return
		}
	}
	if r.ContentLength > a.lim.MaxBody {
		a.writePage(w, r, pageTooLarge, byteSize(a.lim.MaxBody))
		return
	}
	var release func()
	{
		ctx, cancel := context.WithTimeout(r.Context(), a.lim.BackendTimeout)
		var err error
		release, err = a.gate.enter(ctx, sourceNet(r.RemoteAddr))
		cancel()
		switch {
		case errors.Is(err, errClientBusy):
			a.writePage(w, r, pageTooMany)
			return
		case err != nil:
			if r.Context().Err() == nil {
				a.writePage(w, r, pageBusy)
			}
			return
		}
	}
	release = sync.OnceFunc(release)
	defer release()

	bw := &bodyWatch{}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		// The server's read deadline covered the headers; the body gets
		// the app's. (net/http clears it when the body ends, to watch
		// for the client leaving.)
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.lim.BodyTimeout))
		bw.r = http.MaxBytesReader(w, r.Body, a.lim.MaxBody)
		r.Body = bw
	}
	if a.http != nil {
		a.http.serve(w, r, prefix, rel, relRaw, bw, release)
	} else {
		a.fcgi.serve(w, r, prefix, t, bw)
	}
}

// bodyWatch reads the request body and keeps its first error, so that
// a failure can be put on the client (too large, too slow) or the app.
// The transport may still read it in its own goroutine after answering.
type bodyWatch struct {
	r io.ReadCloser

	mu  sync.Mutex
	err error
}

func (b *bodyWatch) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *bodyWatch) Close() error { return b.r.Close() }

// clientFault is the page for a failure reading the client's body, if
// that is what failed.
func (b *bodyWatch) clientFault() (page, bool) {
	b.mu.Lock()
	berr := b.err
	b.mu.Unlock()
	if berr == nil {
		return page{}, false
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(berr, &tooLarge):
		return pageTooLarge, true
	case errors.Is(berr, os.ErrDeadlineExceeded):
		return pageSlow, true
	}
	return page{}, true // the client went away: nobody to answer
}

// state is the app's state as its supervisor reports it.
func (a *app) state() State {
	if a.route.State == nil {
		return Running
	}
	return a.route.State()
}

// unreachable answers for an app whose backend could not be reached:
// what its supervisor says, or that it does not answer.
func (a *app) unreachable(w http.ResponseWriter, r *http.Request) {
	switch a.state() {
	case Starting:
		a.writePage(w, r, pageStarting)
	case Stopped:
		a.writePage(w, r, pageStopped)
	case Failed:
		a.writePage(w, r, pageFailed)
	default:
		a.writePage(w, r, pageDown)
	}
}

// Probe asks the app's health path and returns nil if it answers with a
// status below 500: a supervisor calls it to see a starting app become
// ready.
func (f *Front) Probe(ctx context.Context, name string) error {
	a := f.table.Load().get(name)
	if a == nil {
		return fmt.Errorf("webfront: probe %s: no such app", name)
	}
	health := a.route.Health
	if health == "" {
		health = "/"
	}
	var status int
	var err error
	if a.http != nil {
		status, err = a.http.probe(ctx, health)
	} else {
		status, err = a.fcgi.probe(ctx, health)
	}
	if err != nil {
		return fmt.Errorf("webfront: probe %s %s: %w", name, health, err)
	}
	if status >= 500 {
		return fmt.Errorf("webfront: probe %s %s: status %d", name, health, status)
	}
	return nil
}
