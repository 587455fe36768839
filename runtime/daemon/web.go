package daemon

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"byzantium/internal/bytesize"
	"byzantium/runtime/auth"
	"byzantium/runtime/i18n"
	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/service"
)

//go:embed web
var webFS embed.FS

// Cookie names. The session cookie is Secure, HttpOnly and
// SameSite=Strict, and its __Host- prefix makes browsers refuse it unless
// it is Secure, for the whole site and for this host alone: another node
// or a page on the network cannot plant one for the panel. The language
// cookie only holds a language code.
const (
	sessionCookie = "__Host-byz_session"
	langCookie    = "byz_lang"
)

// Web is the HTTPS panel and API: everything but /healthz needs a login
// except the login and setup pages, the language switch and the static
// files.
type Web struct {
	Auth    *auth.Store
	Log     *slog.Logger
	Ring    *LogRing
	Root    string
	Version string
	// Fingerprint is the TLS certificate's, NodeID the node's identity,
	// both shown in the status.
	Fingerprint, NodeID string
	Settings            *Settings
	Local               *Local // the persistence actions, shared with the unix socket
	// Services manages modules and services; nil answers 503.
	Services *service.Manager
	// Cloner runs byz clone for the API and the panel.
	Cloner *Cloner
	// Mesh is the mesh manager; nil: none runs (the Mesh page says so).
	// MeshSettings are the mesh's settings, which must be set.
	Mesh         Mesh
	MeshSettings *MeshSettings

	clones pendingClones // the panel's clone requests awaiting confirmation
	apps   *apps         // the web apps' front; nil without Services

	cat   *i18n.Catalogs
	pages map[string]*template.Template

	modsOnce sync.Once
	mods     []string
}

// route is one entry of the HTTPS router. Public routes answer without a
// login; TestRoutesNeedLogin walks this table and proves every other
// route refuses anonymous requests.
type route struct {
	pattern string
	public  bool
	handler http.HandlerFunc
}

// init loads the catalogs and templates; a broken embedded file is a
// programming error that the tests catch.
func (w *Web) init() error {
	if w.MeshSettings == nil {
		// Kept in memory alone: Set refuses, having no folder.
		w.MeshSettings = &MeshSettings{v: meshcfg.Defaults()}
	}
	var err error
	if w.cat, err = i18n.Load(webFS, "web/i18n", "en"); err != nil {
		return err
	}
	w.pages = map[string]*template.Template{}
	names, err := fs.Glob(webFS, "web/templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := filepath.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(webFS, "web/templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("daemon: template %s: %w", base, err)
		}
		w.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return nil
}

var templateFuncs = template.FuncMap{
	"bytes": func(n uint64) string { return bytesize.Format(int64(min(n, math.MaxInt64))) },
	"duration": func(sec int64) string {
		d := time.Duration(sec) * time.Second
		h := int(d.Hours())
		return fmt.Sprintf("%dd %02dh %02dm", h/24, h%24, int(d.Minutes())%60)
	},
	// u turns the API's signed and float counts into bytes's unsigned.
	"u": func(v any) uint64 {
		switch n := v.(type) {
		case int64:
			return uint64(max(n, 0))
		case float64:
			return uint64(max(n, 0))
		case int:
			return uint64(max(n, 0))
		}
		return 0
	},
	// list is a template's literal list of choices (the form's options).
	"list": func(s ...string) []string { return s },
	"secs": func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"percent": func(part, whole uint64) int {
		if whole == 0 {
			return 0
		}
		return int(part * 100 / whole)
	},
}

// Handler returns the HTTPS handler for the routes of the panel and API,
// behind the security headers.
func (w *Web) Handler() (http.Handler, error) {
	if err := w.init(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	for _, r := range w.routes() {
		h := r.handler
		if !r.public {
			h = w.requireLogin(h)
		}
		mux.Handle(r.pattern, w.sameOrigin(h, r.public && !strings.Contains(r.pattern, " /api/")))
	}
	return securityHeaders(limitBodies(mux)), nil
}

// who is the authenticated caller of a request.
type who struct {
	session *auth.Session // a browser session (cookie) or an API login (bearer)
	token   *auth.Token   // an API token
	cookie  bool          // authenticated by the cookie: state changes need the CSRF token
	local   bool          // the root-only unix socket
}

type whoKey struct{}

func whoOf(r *http.Request) *who {
	w, _ := r.Context().Value(whoKey{}).(*who)
	return w
}

// sessionID is the caller's login session, or "" for an API token, the
// unix socket or no caller at all: handlers ask this rather than reach
// into session, which a token leaves nil.
func (id *who) sessionID() string {
	if id == nil || id.session == nil {
		return ""
	}
	return id.session.ID
}

// authenticate finds the caller: an Authorization: Bearer API token or
// API session, or the session cookie.
func (w *Web) authenticate(r *http.Request) *who {
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil
		}
		if t, ok := w.Auth.CheckToken(secret); ok {
			return &who{token: &t}
		}
		if s := w.Auth.Session(secret); s != nil {
			return &who{session: s}
		}
		return nil
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s := w.Auth.Session(c.Value); s != nil {
			return &who{session: s, cookie: true}
		}
	}
	return nil
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// requireLogin refuses anonymous requests (401 for the API, a redirect
// to the login page for the panel) and, for a cookie session, state
// changes without the session's CSRF token.
func (w *Web) requireLogin(next http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		id := w.authenticate(r)
		if id == nil {
			if isAPI(r) {
				rw.Header().Set("WWW-Authenticate", `Bearer realm="byzantium"`)
				writeJSON(rw, http.StatusUnauthorized, nodeapi.ErrorBody{Error: "log in first: POST /api/v1/login, or send an API token as Authorization: Bearer"})
				return
			}
			http.Redirect(rw, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if id.cookie && r.Method != http.MethodGet && r.Method != http.MethodHead {
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(tok), []byte(id.session.CSRF)) != 1 {
				w.fail(rw, r, http.StatusForbidden, errors.New("this form has expired or did not come from this panel (CSRF check): reload the page and try again"))
				return
			}
		}
		next(rw, r.WithContext(context.WithValue(r.Context(), whoKey{}, id)))
	}
}

// sameOrigin refuses state changes that a browser marks as coming from
// another site: Sec-Fetch-Site cross-site or same-site, an Origin that is
// not this panel's, or Origin: null (sandboxed frames, data: URLs: never
// the panel, whose Referrer-Policy lets browsers send its real origin). It
// is a second line behind SameSite cookies and CSRF tokens.
//
// The public forms (login, setup) have neither a cookie nor a CSRF token
// to check, so there, with strict, a request must prove it comes from the
// panel: Origin this panel, or Sec-Fetch-Site same-origin. Every browser
// that can show the panel sends one of them with a form; without them a
// page elsewhere could log a visitor's browser in to an attacker's
// session (login CSRF). Scripts use the JSON API, which sets no cookie and
// takes requests with neither header, as do API calls with a bearer token.
func (w *Web) sameOrigin(next http.Handler, strict bool) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !fromThisPanel(r, strict) {
			w.fail(rw, r, http.StatusForbidden, errors.New("refused: this request came from another site, or from a page that does not say where it came from"))
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// fromThisPanel reads Sec-Fetch-Site and Origin as sameOrigin says. With
// strict, a request with neither is refused; without, it is let through
// (to the login check, the CSRF token or the bearer token).
func fromThisPanel(r *http.Request, strict bool) bool {
	site, origin := r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin")
	switch {
	case site != "" && site != "same-origin" && site != "none":
		return false
	case origin == "null":
		return false
	case origin != "":
		u, err := url.Parse(origin)
		return err == nil && u.Scheme == "https" && u.Host == r.Host && u.Path == "" && u.User == nil
	case site == "same-origin":
		return true
	}
	return !strict
}

// remote is the caller's address, the key of the login limiter.
func remote(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// fail answers an error: JSON for the API, a page for the panel.
func (w *Web) fail(rw http.ResponseWriter, r *http.Request, status int, err error) {
	var slow *auth.SlowDown
	if errors.As(err, &slow) {
		rw.Header().Set("Retry-After", fmt.Sprint(seconds(slow.RetryAfter)))
		status = http.StatusTooManyRequests
	}
	if isAPI(r) {
		writeJSON(rw, status, nodeapi.ErrorBody{Error: err.Error()})
		return
	}
	p := w.page(r, "error.title")
	p.Error = err.Error()
	w.render(rw, status, "error", p)
}

// staticFS is the panel's CSS (no scripts: the panel works without
// JavaScript).
func staticFS() (fs.FS, error) { return fs.Sub(webFS, "web/static") }

// LocalHandler serves the API on the root-only unix socket: every
// /api/v1 route, without a login (whoever can connect is root on the
// node: the socket's mode and the peer check say so), with the same
// bounds on bodies.
func (w *Web) LocalHandler() (http.Handler, error) {
	if w.cat == nil {
		if err := w.init(); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	for _, r := range w.routes() {
		if !strings.Contains(r.pattern, " /api/") || strings.HasSuffix(r.pattern, "/login") {
			continue
		}
		h := r.handler
		mux.HandleFunc(r.pattern, func(rw http.ResponseWriter, req *http.Request) {
			h(rw, req.WithContext(context.WithValue(req.Context(), whoKey{}, &who{local: true})))
		})
	}
	mux.HandleFunc("POST "+nodeapi.ConsoleLoginPath, w.consoleLogin) // the socket's alone
	return limitBodies(mux), nil
}
