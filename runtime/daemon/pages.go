package daemon

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"byzantium/runtime/auth"
	"byzantium/runtime/changes"
	"byzantium/runtime/i18n"
	"byzantium/runtime/nodeapi"
)

// page is what every template gets: the language and its messages, the
// node, the session's CSRF token for forms, and the page's own data.
type page struct {
	Lang     string
	Title    string // a message key
	Node     string
	Version  string
	Path     string
	CSRF     string
	LoggedIn bool
	Langs    []langLink
	Notice   string
	Error    string
	Data     any

	cat *i18n.Catalogs
}

type langLink struct {
	Code, Name, Href string
	Current          bool
}

// T translates a message key in the page's language.
func (p *page) T(key string, args ...any) string { return p.cat.T(p.Lang, key, args...) }

// lang picks the request's language: its cookie (the user's switch), then
// Accept-Language, then the node's default.
func (w *Web) lang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && w.cat.Has(c.Value) {
		return c.Value
	}
	if a := r.Header.Get("Accept-Language"); a != "" {
		return w.cat.Match(a)
	}
	if l := w.Settings.Get().Language; w.cat.Has(l) {
		return l
	}
	return "en"
}

func (w *Web) page(r *http.Request, title string) *page {
	p := &page{Lang: w.lang(r), Title: title, Node: w.Settings.Get().NodeName, Version: w.Version, Path: r.URL.Path, cat: w.cat}
	if id := w.authenticate(r); id != nil && id.session != nil {
		p.LoggedIn, p.CSRF = true, id.session.CSRF
	}
	for _, l := range w.cat.Languages() {
		p.Langs = append(p.Langs, langLink{Code: l, Name: w.cat.Name(l), Current: l == p.Lang,
			Href: "/lang?set=" + l + "&next=" + url.QueryEscape(r.URL.RequestURI())})
	}
	if n := r.URL.Query().Get("done"); notices[n] {
		p.Notice = n
	}
	return p
}

// notices are the message keys a redirect after a form may name in
// ?done=: anything else in the link is ignored, so a link made elsewhere
// cannot have the panel show its own words ("call this number").
var notices = map[string]bool{
	"setup.done": true, "settings.done": true, "settings.password.done": true, "tokens.revoked": true,
	"status.saved": true, "clone.started": true, "clone.cancelled": true,
	"modules.activated": true, "modules.deactivated": true, "modules.nextboot.done": true,
	"mesh.settings.done":   true,
	"services.enable.done": true, "services.disable.done": true, "services.restart.done": true,
}

func (w *Web) render(rw http.ResponseWriter, status int, name string, p *page) {
	t := w.pages[name]
	var buf bytes.Buffer
	if t == nil {
		http.Error(rw, "no template "+name, http.StatusInternalServerError)
		return
	}
	if err := t.Execute(&buf, p); err != nil {
		w.Log.Error("rendering a page", "page", name, "err", err)
		http.Error(rw, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Header().Set("Content-Language", p.Lang)
	rw.WriteHeader(status)
	rw.Write(buf.Bytes())
}

// done redirects after a successful form with a notice key, so a reload
// does not post again.
func done(rw http.ResponseWriter, r *http.Request, to, notice string) {
	http.Redirect(rw, r, to+"?done="+url.QueryEscape(notice), http.StatusSeeOther)
}

// safeNext keeps a redirect (after login, after the language switch) on
// this site: a path of its own, or "/". Browsers drop tabs and line
// breaks from a Location and read a backslash as a slash, so "/\t/evil"
// and "/\\evil" are "//evil", another host; encoded slashes and control
// bytes are refused too, since no page of the panel has them. What is
// kept is checked character by character, not by trying to parse it as
// a browser would.
func safeNext(next string) string {
	if len(next) > 1024 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "/"
		}
	}
	lower := strings.ToLower(next)
	for _, enc := range []string{"%2f", "%5c", "%0", "%1", "%7f"} {
		if strings.Contains(lower, enc) {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}

func (w *Web) setSessionCookie(rw http.ResponseWriter, s *auth.Session) {
	http.SetCookie(rw, &http.Cookie{Name: sessionCookie, Value: s.ID, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(auth.SessionTTL / time.Second)})
}

func (w *Web) loginPage(rw http.ResponseWriter, r *http.Request) {
	if !w.Auth.Claimed() {
		http.Redirect(rw, r, "/setup", http.StatusSeeOther)
		return
	}
	p := w.page(r, "login.title")
	p.Data = safeNext(r.URL.Query().Get("next"))
	w.render(rw, http.StatusOK, "login", p)
}

func (w *Web) loginPost(rw http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	s, err := w.Auth.Login(remote(r), r.PostFormValue("password"))
	if err != nil {
		// Not logged here: the auth store sums failures up (see its Log).
		p := w.page(r, "login.title")
		p.Data = next
		p.Error = w.loginError(p, err)
		status := http.StatusUnauthorized
		var slow *auth.SlowDown
		if errors.As(err, &slow) {
			status = http.StatusTooManyRequests
			rw.Header().Set("Retry-After", strconv.Itoa(seconds(slow.RetryAfter)))
		}
		w.render(rw, status, "login", p)
		return
	}
	w.Log.Info("panel login", "from", remote(r))
	w.setSessionCookie(rw, s)
	http.Redirect(rw, r, next, http.StatusSeeOther)
}

// seconds rounds a wait up to whole seconds, as Retry-After and the
// messages give it.
func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

func (w *Web) loginError(p *page, err error) string {
	var slow *auth.SlowDown
	switch {
	case errors.As(err, &slow):
		return p.T("login.slow", seconds(slow.RetryAfter))
	case errors.Is(err, auth.ErrNotClaimed):
		return p.T("login.unclaimed")
	default:
		return p.T("login.wrong")
	}
}

func (w *Web) logout(rw http.ResponseWriter, r *http.Request) {
	if sid := whoOf(r).sessionID(); sid != "" {
		w.Auth.Logout(sid)
	}
	http.SetCookie(rw, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(rw, r, "/login", http.StatusSeeOther)
}

func (w *Web) setupPage(rw http.ResponseWriter, r *http.Request) {
	if w.Auth.Claimed() {
		http.Redirect(rw, r, "/login", http.StatusSeeOther)
		return
	}
	w.render(rw, http.StatusOK, "setup", w.page(r, "setup.title"))
}

func (w *Web) setupPost(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "setup.title")
	pass := r.PostFormValue("password")
	if pass != r.PostFormValue("confirm") {
		p.Error = p.T("setup.mismatch")
		w.render(rw, http.StatusBadRequest, "setup", p)
		return
	}
	err := w.Auth.Claim(remote(r), r.PostFormValue("code"), pass)
	if err != nil {
		var slow *auth.SlowDown
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, auth.ErrClaimed):
			http.Redirect(rw, r, "/login", http.StatusSeeOther)
			return
		case errors.As(err, &slow):
			p.Error, status = p.T("login.slow", seconds(slow.RetryAfter)), http.StatusTooManyRequests
		case errors.Is(err, auth.ErrWeakPassword):
			p.Error = p.T("password.weak", auth.MinPassword)
		default:
			p.Error = p.T("setup.badcode")
		}
		w.render(rw, status, "setup", p)
		return
	}
	w.Log.Info("the node was claimed: an admin password is set", "from", remote(r))
	s, err := w.Auth.Login(remote(r), pass)
	if err == nil {
		w.setSessionCookie(rw, s)
	}
	done(rw, r, "/", "setup.done")
}

// setLang is the language switch: links, so it works without
// JavaScript; it changes the browser's cookie only.
func (w *Web) setLang(rw http.ResponseWriter, r *http.Request) {
	l := r.URL.Query().Get("set")
	if w.cat.Has(l) {
		http.SetCookie(rw, &http.Cookie{Name: langCookie, Value: l, Path: "/", Secure: true, SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
	}
	http.Redirect(rw, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
}

func (w *Web) statusPage(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "status.title")
	st := readStatus(w.Root)
	st.Node, st.Version, st.TLSFingerprint, st.NodeID = w.Settings.Get().NodeName, w.Version, w.Fingerprint, w.NodeID
	st.Modules, st.Services = w.moduleNames(), []nodeapi.ServiceInfo{}
	if w.Services != nil {
		st.Services = w.Services.Services()
	}
	mesh, running := w.meshStatus()
	p.Data = statusData{Status: st, Mesh: mesh, MeshRunning: running}
	w.render(rw, http.StatusOK, "status", p)
}

// statusData is the status page's: the API's status and the mesh's line.
type statusData struct {
	nodeapi.Status
	Mesh        nodeapi.Mesh
	MeshRunning bool
}

func (w *Web) settingsPage(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "settings.title")
	p.Data = w.Settings.Get()
	w.render(rw, http.StatusOK, "settings", p)
}

func (w *Web) settingsPost(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "settings.title")
	v := w.Settings.Get()
	p.Data = v
	switch r.PostFormValue("what") {
	case "node":
		v.NodeName = strings.TrimSpace(r.PostFormValue("node_name"))
	case "language":
		v.Language = r.PostFormValue("language")
		if !w.cat.Has(v.Language) {
			p.Error = p.T("settings.badlang")
			w.render(rw, http.StatusBadRequest, "settings", p)
			return
		}
	case "password":
		next := r.PostFormValue("new")
		if next != r.PostFormValue("confirm") {
			p.Error = p.T("setup.mismatch")
			w.render(rw, http.StatusBadRequest, "settings", p)
			return
		}
		if err := w.Auth.ChangePassword(remote(r), r.PostFormValue("current"), next, whoOf(r).sessionID()); err != nil {
			p.Error = w.passwordError(p, err)
			w.render(rw, http.StatusBadRequest, "settings", p)
			return
		}
		w.Log.Info("the admin password was changed", "from", remote(r))
		done(rw, r, "/settings", "settings.password.done")
		return
	default:
		p.Error = p.T("settings.unknown")
		w.render(rw, http.StatusBadRequest, "settings", p)
		return
	}
	if err := w.Settings.Set(v); err != nil {
		p.Error = p.T("settings.badname")
		w.render(rw, http.StatusBadRequest, "settings", p)
		return
	}
	w.Log.Info("settings changed", "node_name", v.NodeName, "language", v.Language)
	done(rw, r, "/settings", "settings.done")
}

func (w *Web) passwordError(p *page, err error) string {
	var slow *auth.SlowDown
	switch {
	case errors.As(err, &slow):
		return p.T("login.slow", seconds(slow.RetryAfter))
	case errors.Is(err, auth.ErrWeakPassword):
		return p.T("password.weak", auth.MinPassword)
	default:
		return p.T("settings.password.wrong")
	}
}

func (w *Web) tokensPage(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "tokens.title")
	p.Data = tokensData{Tokens: w.Auth.Tokens()}
	w.render(rw, http.StatusOK, "tokens", p)
}

type tokensData struct {
	Tokens []auth.Token
	Secret string // a new token's secret, shown once
}

func (w *Web) tokensPost(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "tokens.title")
	secret, t, err := w.Auth.NewToken(remote(r), r.PostFormValue("password"), r.PostFormValue("name"))
	if err != nil {
		status := http.StatusBadRequest
		var slow *auth.SlowDown
		switch {
		case errors.Is(err, auth.ErrBadTokenName):
			p.Error = p.T("tokens.badname")
		case errors.As(err, &slow):
			status = http.StatusTooManyRequests
			rw.Header().Set("Retry-After", strconv.Itoa(seconds(slow.RetryAfter)))
			p.Error = w.passwordError(p, err)
		default:
			p.Error = w.passwordError(p, err)
		}
		p.Data = tokensData{Tokens: w.Auth.Tokens()}
		w.render(rw, status, "tokens", p)
		return
	}
	w.Log.Info("API token made", "name", t.Name, "id", t.ID)
	p.Data = tokensData{Tokens: w.Auth.Tokens(), Secret: secret}
	w.render(rw, http.StatusOK, "tokens", p)
}

func (w *Web) tokenRevoke(rw http.ResponseWriter, r *http.Request) {
	if err := w.Auth.RevokeToken(r.PathValue("id")); err != nil {
		w.fail(rw, r, http.StatusNotFound, err)
		return
	}
	w.Log.Info("API token revoked", "id", r.PathValue("id"))
	done(rw, r, "/tokens", "tokens.revoked")
}

func (w *Web) logsPage(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "logs.title")
	lines := w.Ring.Lines()
	// Newest first: what just happened is what the user is after.
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	p.Data = lines
	w.render(rw, http.StatusOK, "logs", p)
}

func (w *Web) persistPost(rw http.ResponseWriter, r *http.Request) {
	if _, err := changes.SaveNode(w.Root); err != nil {
		w.fail(rw, r, http.StatusConflict, err)
		return
	}
	done(rw, r, "/", "status.saved")
}
