package webfront

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// httpApp is a route to an HTTP backend, through httputil.ReverseProxy:
// it removes hop-by-hop headers, passes 1xx answers and trailers, and
// hands an Upgrade (WebSocket) over to a two-way copy once the backend
// switches protocols.
type httpApp struct {
	a    *app
	tr   *http.Transport
	rp   *httputil.ReverseProxy
	base *url.URL
}

// infoKey carries a request's reqInfo through ReverseProxy's hooks.
type infoKey struct{}

type reqInfo struct {
	path                string // as the client asked, for the log
	prefix, rel, relRaw string
	body                *bodyWatch
}

func newHTTPApp(a *app) *httpApp {
	b := a.route.HTTP
	network, addr, host := "tcp", b.Addr, b.Addr
	if b.Socket != "" {
		network, addr, host = "unix", b.Socket, "localhost"
	}
	d := &net.Dialer{Timeout: min(a.lim.BackendTimeout, 10*time.Second),
		Control: func(network, address string, _ syscall.RawConn) error { return loopbackOnly(network, address) }}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		ResponseHeaderTimeout:  a.lim.BackendTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// The client's Accept-Encoding goes through as it is, and the
		// answer comes back as the app encoded it.
		DisableCompression: true,
	}
	h := &httpApp{a: a, tr: tr, base: &url.URL{Scheme: "http", Host: host}}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      tr,
		ModifyResponse: h.modify,
		ErrorHandler:   h.fail,
		ErrorLog:       log.New(logWriter{a}, "", 0),
	}
	return h
}

func (h *httpApp) closeIdle() { h.tr.CloseIdleConnections() }

// strips reports whether the app is sent paths without its prefix.
func (h *httpApp) strips(prefix string) bool { return prefix != "/" && !h.a.route.HTTP.KeepPrefix }

// serve proxies r; upgraded gives the request's turn back once it
// became a WebSocket: an open chat would otherwise hold a turn for
// hours, and a few dozen idle browser tabs would keep everyone else
// waiting. WebSockets are bounded by byzd's connection caps instead
// (per source network and in all), and by the idle timeout.
func (h *httpApp) serve(w http.ResponseWriter, r *http.Request, prefix, rel, relRaw string, bw *bodyWatch, upgraded func()) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	act := &activity{idle: h.a.lim.IdleTimeout, cancel: cancel}
	defer act.stop()
	ctx = context.WithValue(ctx, infoKey{}, &reqInfo{path: r.URL.Path, prefix: prefix, rel: rel, relRaw: relRaw, body: bw})
	h.rp.ServeHTTP(&idleRW{ResponseWriter: w, act: act, upgraded: upgraded}, r.WithContext(ctx))
}

// dropped are request headers a client may not set: the X-Forwarded-*
// family and the other names apps read a proxy's word from (Etherpad
// honours X-Proxy-Path without being told to trust a proxy). Forwarded
// and X-Forwarded-For/Host/Proto are also removed by ReverseProxy's
// Rewrite mode.
var dropped = []string{"Forwarded", "X-Real-Ip", "X-Proxy-Path", "X-Ingress-Path", "X-Client-Ip", "True-Client-Ip"}

func (h *httpApp) rewrite(pr *httputil.ProxyRequest) {
	info := pr.In.Context().Value(infoKey{}).(*reqInfo)
	pr.SetURL(h.base)
	u := pr.Out.URL
	if h.strips(info.prefix) {
		u.Path, u.RawPath = info.rel, info.relRaw
	} else {
		u.Path, u.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
	}
	// The app sees the name the client asked for, as it would without
	// a proxy: it builds its links from it.
	pr.Out.Host = pr.In.Host
	hd := pr.Out.Header
	for k := range hd {
		if strings.HasPrefix(k, "X-Forwarded-") {
			delete(hd, k)
		}
	}
	for _, k := range dropped {
		hd.Del(k)
	}
	pr.SetXForwarded()
	if h.strips(info.prefix) {
		hd.Set("X-Forwarded-Prefix", strings.TrimSuffix(info.prefix, "/"))
	}
	stripCookies(hd, h.a.f.ReservedCookies)
}

func (h *httpApp) modify(res *http.Response) error {
	info := res.Request.Context().Value(infoKey{}).(*reqInfo)
	filterSetCookies(res.Header, h.a.f.ReservedCookies, h.a)
	if info.prefix != "/" {
		// An app under a path must not widen its service worker's scope
		// to the rest of the site (the panel, other apps).
		res.Header.Del("Service-Worker-Allowed")
	}
	if h.strips(info.prefix) {
		// An app that thinks it is at "/" redirects to "/login": that is
		// "/chat/login" here. Paths already under the prefix are left
		// alone (the app used X-Forwarded-Prefix).
		if loc := res.Header.Get("Location"); strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") &&
			!strings.HasPrefix(loc, info.prefix) {
			res.Header.Set("Location", strings.TrimSuffix(info.prefix, "/")+loc)
		}
	}
	return nil
}

// fail answers for a request the backend did not answer.
func (h *httpApp) fail(w http.ResponseWriter, r *http.Request, err error) {
	info := r.Context().Value(infoKey{}).(*reqInfo)
	if p, ok := info.body.clientFault(); ok {
		if p.key != "" {
			h.a.writePage(w, r, p, byteSize(h.a.lim.MaxBody))
		}
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client left, or the stream went idle
	}
	h.a.f.logf("webfront: %s: %s %s: %v", h.a.name, r.Method, info.path, err)
	var ne net.Error
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		h.a.unreachable(w, r)
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		h.a.writePage(w, r, pageTimeout)
	default:
		h.a.writePage(w, r, pageBroken)
	}
}

func (h *httpApp) probe(ctx context.Context, health string) (int, error) {
	u := *h.base
	u.Path = health
	if h.a.route.Prefix != "" && h.a.route.HTTP.KeepPrefix {
		u.Path = strings.TrimSuffix(h.a.route.Prefix, "/") + health
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	res, err := h.tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return res.StatusCode, nil
}

// stripCookies takes byzd's own cookies out of a request to an app.
func stripCookies(h http.Header, reserved []string) {
	if len(reserved) == 0 {
		return
	}
	var keep []string
	for _, line := range h.Values("Cookie") {
		for _, c := range strings.Split(line, ";") {
			c = strings.TrimSpace(c)
			name, _, _ := strings.Cut(c, "=")
			if c != "" && !isReserved(name, reserved) {
				keep = append(keep, c)
			}
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

// filterSetCookies refuses an app's cookies that would replace byzd's.
func filterSetCookies(h http.Header, reserved []string, a *app) {
	vs := h.Values("Set-Cookie")
	if len(vs) == 0 || len(reserved) == 0 {
		return
	}
	var keep []string
	for _, v := range vs {
		name, _, _ := strings.Cut(v, "=")
		if isReserved(strings.TrimSpace(name), reserved) {
			a.f.logf("webfront: %s: refused a Set-Cookie for byzd's own cookie %s", a.name, strings.TrimSpace(name))
			continue
		}
		keep = append(keep, v)
	}
	h["Set-Cookie"] = keep
	if len(keep) == 0 {
		h.Del("Set-Cookie")
	}
}

func isReserved(name string, reserved []string) bool {
	for _, r := range reserved {
		// Browsers match cookie names exactly; a case variant is another
		// cookie, but no app needs one.
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

// logWriter turns ReverseProxy's log lines into the front's Logf.
type logWriter struct{ a *app }

func (l logWriter) Write(p []byte) (int, error) {
	l.a.f.logf("webfront: %s: %s", l.a.name, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// activity ends a request that streams nothing either way for idle: an
// answer streamed without end, or a WebSocket. It is armed by the first
// byte of the answer; until then the backend's header timeout applies.
type activity struct {
	idle   time.Duration
	cancel context.CancelFunc
	last   atomic.Int64 // unix nanoseconds
	armed  atomic.Bool

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func (a *activity) touch() {
	a.last.Store(time.Now().UnixNano())
	if a.armed.Load() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.armed.Load() && !a.stopped {
		a.timer = time.AfterFunc(a.idle, a.check)
		a.armed.Store(true)
	}
}

func (a *activity) check() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	if since := time.Duration(time.Now().UnixNano() - a.last.Load()); since < a.idle {
		a.timer.Reset(a.idle - since)
		return
	}
	a.cancel()
}

func (a *activity) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	if a.timer != nil {
		a.timer.Stop()
	}
}

// idleRW notes the answer's activity and, for a protocol switch, hands
// ReverseProxy the client's connection without the server's deadlines
// (a WebSocket outlives any request timeout) and with its activity
// noted.
type idleRW struct {
	http.ResponseWriter
	act      *activity
	upgraded func()
}

func (w *idleRW) WriteHeader(code int) {
	if code >= 200 {
		w.act.touch()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *idleRW) Write(p []byte) (int, error) {
	w.act.touch()
	return w.ResponseWriter.Write(p)
}

func (w *idleRW) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *idleRW) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http clears them today, but documents that a hijacker must.
	c.SetDeadline(time.Time{})
	w.act.touch()
	if w.upgraded != nil {
		w.upgraded()
	}
	return &activeConn{Conn: c, act: w.act}, brw, nil
}

// activeConn notes each byte either way.
type activeConn struct {
	net.Conn
	act *activity
}

func (c *activeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.act.touch()
	}
	return n, err
}

func (c *activeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.act.touch()
	}
	return n, err
}
