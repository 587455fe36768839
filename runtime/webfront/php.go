package webfront

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"byzantium/runtime/webfront/fcgi"
)

// fcgiApp is a route to a FastCGI responder (php-fpm): a path naming a
// .php script runs it, a path ending in "/" runs the folder's index, and
// anything else is a static file of the app's, if its extension is one
// the route serves.
type fcgiApp struct {
	a      *app
	b      *FastCGIBackend
	index  string
	static map[string]bool
}

func newFCGIApp(a *app) *fcgiApp {
	b := a.route.FastCGI
	p := &fcgiApp{a: a, b: b, index: b.Index, static: map[string]bool{}}
	if p.index == "" {
		p.index = "index.php"
	}
	exts := b.Static
	if len(exts) == 0 {
		exts = DefaultStatic
	}
	for _, e := range exts {
		p.static[strings.ToLower(e)] = true
	}
	return p
}

// target is what a path within a FastCGI app names.
type target struct {
	script   string // "doku.php", "lib/exe/css.php"; "" for a static file
	pathInfo string // what follows the script: "/start" of "doku.php/start"
	file     string // a static file: "lib/images/logo.png"
}

// resolve maps rel ("/doku.php/x", checked by appPath) to a script or a
// file. It refuses (false) paths the route denies and hidden files
// (".htaccess", ".git/"): never served, as script or file.
func (p *fcgiApp) resolve(rel string) (target, bool) {
	sub := strings.TrimPrefix(rel, "/")
	for _, d := range p.b.Deny {
		if strings.HasSuffix(d, "/") && strings.HasPrefix(sub+"/", d) || sub == d {
			return target{}, false
		}
	}
	segs := strings.Split(sub, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ".") {
			return target{}, false
		}
		// The first segment naming a .php file is the script, as
		// nginx's usual fastcgi_split_path_info "^(.+?\.php)(/.*)$": so
		// "evil.png/x.php" is a script named that (which does not
		// exist), never evil.png run as PHP.
		if strings.HasSuffix(s, ".php") {
			t := target{script: strings.Join(segs[:i+1], "/")}
			if i+1 < len(segs) {
				t.pathInfo = "/" + strings.Join(segs[i+1:], "/")
			}
			return t, true
		}
	}
	if sub == "" || strings.HasSuffix(sub, "/") {
		return target{script: sub + p.index}, true
	}
	return target{file: sub}, true
}

func (p *fcgiApp) serve(w http.ResponseWriter, r *http.Request, prefix string, t target, bw *bodyWatch) {
	a := p.a
	conn, err := (&net.Dialer{Timeout: min(a.lim.BackendTimeout, 10*time.Second)}).DialContext(r.Context(), "unix", p.b.Socket)
	if err != nil {
		if r.Context().Err() == nil {
			a.f.logf("webfront: %s: %v", a.name, err)
			a.unreachable(w, r)
		}
		return
	}
	dc := &deadlineConn{Conn: conn}
	// Until the headers are in: the body's time (if there is one), then
	// the script's.
	wait := a.lim.BackendTimeout
	if r.ContentLength > 0 {
		wait += a.lim.BodyTimeout
	}
	conn.SetDeadline(time.Now().Add(wait))
	stderr := &capped{max: 4 << 10}
	defer func() {
		if stderr.n > 0 {
			a.f.logf("webfront: %s: %s: stderr: %s", a.name, t.script, stderr)
		}
	}()
	var body io.Reader
	if r.ContentLength > 0 {
		body = r.Body
	}
	resp, err := fcgi.Do(r.Context(), dc, &fcgi.Request{Params: p.params(r, prefix, t), Body: body, Stderr: stderr})
	if err != nil {
		p.fail(w, r, t, bw, err)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		if !hopByHop(k) {
			h[k] = vs
		}
	}
	for _, k := range strings.Split(resp.Header.Get("Connection"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			h.Del(k)
		}
	}
	filterSetCookies(h, a.f.ReservedCookies, a)
	dc.idle.Store(int64(a.lim.IdleTimeout))
	conn.SetReadDeadline(time.Now().Add(a.lim.IdleTimeout))
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	// An event stream is flushed as it comes. Anything else is held
	// until its first 4 KiB (or its end) are in, so that an answer that
	// breaks early (most pages are smaller) still gets a 502 page rather
	// than a cut-off one, and then goes out as net/http's buffer fills:
	// a flush per record would cost a write and a chunk each.
	var rc *http.ResponseController
	held := 0
	if ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); strings.TrimSpace(strings.ToLower(ct)) == "text/event-stream" {
		rc = http.NewResponseController(w)
	} else {
		var rerr error
		for held < earlyBytes && rerr == nil {
			var n int
			n, rerr = resp.Body.Read(buf[held:earlyBytes])
			held += n
		}
		if rerr != nil && rerr != io.EOF {
			for k := range h {
				delete(h, k)
			}
			p.fail(w, r, t, bw, rerr)
			return
		}
	}
	w.WriteHeader(resp.StatusCode)
	if held > 0 {
		if _, err := w.Write(buf[:held]); err != nil {
			return
		}
	}
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client left
			}
			if rc != nil {
				rc.Flush()
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			// The headers are gone: the answer can only be cut short,
			// so that the client sees it is not whole.
			a.f.logf("webfront: %s: %s %s: the answer broke off: %v", a.name, r.Method, r.URL.Path, rerr)
			panic(http.ErrAbortHandler)
		}
	}
}

// earlyBytes of an answer are held before its headers are sent.
const earlyBytes = 4 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// fail answers for a request the app did not answer.
func (p *fcgiApp) fail(w http.ResponseWriter, r *http.Request, t target, bw *bodyWatch, err error) {
	a := p.a
	if pg, ok := bw.clientFault(); ok {
		if pg.key != "" {
			a.writePage(w, r, pg, byteSize(a.lim.MaxBody))
		}
		return
	}
	if r.Context().Err() != nil {
		return // the client left
	}
	a.f.logf("webfront: %s: %s %s (%s): %v", a.name, r.Method, r.URL.Path, t.script, err)
	switch {
	case errors.Is(err, fcgi.ErrOverloaded):
		a.writePage(w, r, pageBusy)
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.writePage(w, r, pageTimeout)
	default:
		a.writePage(w, r, pageBroken)
	}
}

// params are the CGI/1.1 meta-variables (RFC 3875 section 4.1) and the
// ones PHP applications read. SCRIPT_FILENAME is always Root joined
// with a path appPath and resolve checked: no "..", no empty or hidden
// segment, so it cannot leave Root.
func (p *fcgiApp) params(r *http.Request, prefix string, t target) []fcgi.Param {
	scriptName := strings.TrimSuffix(prefix, "/") + "/" + t.script
	host, port, _ := net.SplitHostPort(r.RemoteAddr)
	var ps []fcgi.Param
	add := func(name, value string) { ps = append(ps, fcgi.Param{Name: name, Value: value}) }
	add("GATEWAY_INTERFACE", "CGI/1.1")
	add("SERVER_SOFTWARE", "byzd")
	add("SERVER_PROTOCOL", r.Proto)
	add("REQUEST_METHOD", r.Method)
	add("REQUEST_URI", r.URL.RequestURI())
	add("QUERY_STRING", r.URL.RawQuery)
	add("SCRIPT_NAME", scriptName)
	add("SCRIPT_FILENAME", path.Join(p.b.Root, t.script))
	add("DOCUMENT_ROOT", p.b.Root)
	add("DOCUMENT_URI", scriptName+t.pathInfo)
	add("REMOTE_ADDR", host)
	add("REMOTE_PORT", port)
	add("SERVER_NAME", hostName(r))
	// net/http keeps Host out of r.Header; apps build their links on it.
	add("HTTP_HOST", r.Host)
	if t.pathInfo != "" {
		add("PATH_INFO", t.pathInfo)
		add("PATH_TRANSLATED", path.Join(p.b.Root, t.pathInfo))
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if h, p, err := net.SplitHostPort(la.String()); err == nil {
			add("SERVER_ADDR", h)
			add("SERVER_PORT", p)
		}
	}
	if r.TLS != nil {
		add("HTTPS", "on")
		add("REQUEST_SCHEME", "https")
	} else {
		add("REQUEST_SCHEME", "http")
	}
	if r.ContentLength > 0 {
		add("CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
		add("CONTENT_TYPE", r.Header.Get("Content-Type"))
	}
	hd := r.Header.Clone()
	stripCookies(hd, p.a.f.ReservedCookies)
	keys := make([]string, 0, len(hd))
	for k := range hd {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !cgiHeader(k) {
			continue
		}
		sep := ", "
		if k == "Cookie" {
			sep = "; "
		}
		add("HTTP_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_")), strings.Join(hd[k], sep))
	}
	return ps
}

// cgiHeader reports whether header k goes to the app as HTTP_*. Left
// out: the body's length and type (passed as CONTENT_*), hop-by-hop
// headers, Proxy (HTTP_PROXY would be read as a proxy setting:
// "httpoxy"), names with "_" (X-Forwarded_For and X-Forwarded-For would
// both become HTTP_X_FORWARDED_FOR), and the forwarding headers a client
// may not set: PHP gets the client's address as REMOTE_ADDR, and some
// apps trust X-Forwarded-For from private addresses, which mesh clients
// have.
func cgiHeader(k string) bool {
	switch {
	case k == "Content-Length", k == "Content-Type", k == "Proxy", hopByHop(k),
		strings.Contains(k, "_"), strings.HasPrefix(k, "X-Forwarded-"):
		return false
	}
	for _, d := range dropped {
		if k == d {
			return false
		}
	}
	return true
}

// hopByHop are the headers of one connection (RFC 9110 section 7.6.1).
func hopByHop(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func (p *fcgiApp) probe(ctx context.Context, health string) (int, error) {
	t, ok := p.resolve(health)
	if !ok || t.script == "" {
		return 0, errors.New("the health path is not a script")
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", p.b.Socket)
	if err != nil {
		return 0, err
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	prefix := p.a.route.Prefix
	if prefix == "" {
		prefix = "/"
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+strings.TrimSuffix(prefix, "/")+health, nil)
	if err != nil {
		conn.Close()
		return 0, err
	}
	r.RemoteAddr = "127.0.0.1:0"
	resp, err := fcgi.Do(ctx, conn, &fcgi.Request{Params: p.params(r, prefix, t)})
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// deadlineConn, once its idle is set, pushes the read deadline back
// before each read: an answer may stream for long, but not stall.
type deadlineConn struct {
	net.Conn
	idle atomic.Int64
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if d := time.Duration(c.idle.Load()); d > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(d))
	}
	return c.Conn.Read(p)
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	buf    []byte
	max, n int
}

func (c *capped) Write(p []byte) (int, error) {
	c.n += len(p)
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capped) String() string {
	s := strconv.Quote(strings.TrimRight(string(c.buf), "\n"))
	if more := c.n - len(c.buf); more > 0 {
		s += " (" + strconv.Itoa(more) + " bytes more not logged)"
	}
	return s
}
