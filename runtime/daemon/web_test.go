package daemon

import (
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"byzantium/overlays"
	"byzantium/runtime/auth"
	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

// testWeb is a panel on a TLS test server, with cheap password hashes.
type testWeb struct {
	*Web
	h   http.Handler // the HTTPS handler the server runs
	srv *httptest.Server
}

func newTestWeb(t testing.TB) *testWeb {
	t.Helper()
	state := t.TempDir()
	st, err := auth.Open(state + "/auth")
	if err != nil {
		t.Fatal(err)
	}
	st.SetHashParams(auth.HashParams{Time: 1, Memory: 64, Threads: 1})
	settings := OpenSettings(state, nodeapi.SettingsValues{NodeName: "node1", Language: "en"}, nil)
	log := slog.New(slog.DiscardHandler)
	ring := NewLogRing(50)
	root := t.TempDir()
	w := &Web{Auth: st, Log: ring.Tee(log), Ring: ring, Root: root, Version: "test", Settings: settings, Local: &Local{Root: root, Log: log},
		Cloner: &Cloner{Byz: "/nonexistent/byz", Log: log}, MeshSettings: OpenMeshSettings(state, meshcfg.Defaults(), nil)}
	h, err := w.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return &testWeb{Web: w, h: h, srv: srv}
}

// client returns a client with a cookie jar that does not follow
// redirects, so tests see them.
func (tw *testWeb) client() *http.Client {
	// A copy: Server.Client returns one shared client, and each browser
	// needs its own cookie jar.
	c := *tw.srv.Client()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

type resp struct {
	code int
	body string
	hdr  http.Header
}

func (tw *testWeb) do(t *testing.T, c *http.Client, method, path string, body io.Reader, hdr map[string]string) resp {
	t.Helper()
	req, err := http.NewRequest(method, tw.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	r, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, string(b), r.Header}
}

func form(kv ...string) (io.Reader, map[string]string) {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	// What a browser sends with the panel's own forms.
	return strings.NewReader(v.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
}

// apiToken makes an API token in the store and returns its secret (the
// one place the tests call the store for it).
func (tw *testWeb) apiToken(t testing.TB, name string) string {
	t.Helper()
	secret, _, err := tw.Auth.NewLocalToken(name)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// claim sets the admin password through the setup page and returns a
// logged-in client and its CSRF token.
func (tw *testWeb) claim(t *testing.T, password string) (*http.Client, string) {
	t.Helper()
	c := tw.client()
	body, hdr := form("code", tw.Auth.SetupCode(), "password", password, "confirm", password)
	if r := tw.do(t, c, "POST", "/setup", body, hdr); r.code != http.StatusSeeOther {
		t.Fatalf("setup: %d %s", r.code, r.body)
	}
	return c, tw.csrf(t, c)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (tw *testWeb) csrf(t *testing.T, c *http.Client) string {
	t.Helper()
	r := tw.do(t, c, "GET", "/settings", nil, nil)
	m := csrfField.FindStringSubmatch(r.body)
	if r.code != http.StatusOK || m == nil {
		t.Fatalf("no CSRF token on /settings: %d", r.code)
	}
	return m[1]
}

// concrete turns a route pattern into a request: the method and a path
// with its wildcards filled in.
func concrete(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.ReplaceAll(path, "{$}", "")
	path = regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
	return method, path
}

// TestRoutesNeedLogin walks the whole route table: every route that is
// not public refuses an anonymous request (the API with 401, the panel
// by sending the browser to the login page), and the public routes are
// exactly the ones meant to be.
func TestRoutesNeedLogin(t *testing.T) {
	tw := newTestWeb(t)
	c := tw.client()
	var public []string
	for _, rt := range tw.routes() {
		if rt.public {
			public = append(public, rt.pattern)
			continue
		}
		method, path := concrete(rt.pattern)
		r := tw.do(t, c, method, path, strings.NewReader("{}"), map[string]string{"Content-Type": "application/json"})
		if strings.HasPrefix(path, "/api/") {
			if r.code != http.StatusUnauthorized || !strings.Contains(r.body, "log in first") {
				t.Errorf("%s anonymous: %d %s", rt.pattern, r.code, r.body)
			}
		} else if loc := r.hdr.Get("Location"); r.code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("%s anonymous: %d to %q", rt.pattern, r.code, loc)
		}
		// A made-up token is no better than none.
		hdr := map[string]string{"Authorization": "Bearer byz_forged", "Content-Type": "application/json"}
		if r := tw.do(t, c, method, path, strings.NewReader("{}"), hdr); r.code != http.StatusUnauthorized && r.code != http.StatusSeeOther {
			t.Errorf("%s with a forged token: %d", rt.pattern, r.code)
		}
	}
	want := []string{"GET /healthz", "GET /login", "POST /login", "GET /setup", "POST /setup", "GET /lang", "GET /static/", "POST /api/v1/login", "GET /apps", "GET /api/v1/apps"}
	slices.Sort(public)
	slices.Sort(want)
	if !slices.Equal(public, want) {
		t.Errorf("public routes %v, want exactly %v", public, want)
	}
}

// TestSetupAndLogin: an unclaimed node sends the browser to the setup
// page, which wants the console's code; then login works, with a cookie
// that is Secure, HttpOnly and SameSite=Strict, and every answer carries
// HSTS.
func TestSetupAndLogin(t *testing.T) {
	tw := newTestWeb(t)
	c := tw.client()
	if r := tw.do(t, c, "GET", "/login", nil, nil); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/setup" {
		t.Errorf("login on an unclaimed node: %d %s", r.code, r.hdr.Get("Location"))
	}
	r := tw.do(t, c, "GET", "/setup", nil, nil)
	if r.code != http.StatusOK || !strings.Contains(r.body, `name="code"`) || !strings.HasPrefix(r.hdr.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("setup page: %d, HSTS %q", r.code, r.hdr.Get("Strict-Transport-Security"))
	}
	for _, tc := range []struct {
		fields []string
		want   string
	}{
		{[]string{"code", "wrong-code", "password", "long enough pass", "confirm", "long enough pass"}, "setup code is not right"},
		{[]string{"code", tw.Auth.SetupCode(), "password", "long enough pass", "confirm", "other"}, "two passwords differ"},
		{[]string{"code", tw.Auth.SetupCode(), "password", "short", "confirm", "short"}, "too short"},
	} {
		body, hdr := form(tc.fields...)
		if r := tw.do(t, c, "POST", "/setup", body, hdr); r.code != http.StatusBadRequest || !strings.Contains(r.body, tc.want) {
			t.Errorf("setup %v: %d, want %q", tc.fields, r.code, tc.want)
		}
	}
	tw.claim(t, "long enough pass")

	c2 := tw.client()
	body, hdr := form("password", "long enough pass", "next", "/logs")
	r = tw.do(t, c2, "POST", "/login", body, hdr)
	if r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/logs" {
		t.Fatalf("login: %d to %q", r.code, r.hdr.Get("Location"))
	}
	setCookie := r.hdr.Get("Set-Cookie")
	if !strings.HasPrefix(setCookie, "__Host-") || strings.Contains(setCookie, "Domain=") {
		t.Errorf("session cookie %q: want the __Host- prefix and no Domain", setCookie)
	}
	for _, attr := range []string{"Secure", "HttpOnly", "SameSite=Strict", "Path=/;"} {
		if !strings.Contains(setCookie, attr) {
			t.Errorf("session cookie %q lacks %s", setCookie, attr)
		}
	}
	body, hdr = form("password", "x", "next", "https://evil.example/")
	if r := tw.do(t, tw.client(), "POST", "/login", body, hdr); r.code != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong password") {
		t.Errorf("a wrong login: %d", r.code)
	}
	body, hdr = form("password", "long enough pass", "next", "//evil.example/")
	if r := tw.do(t, tw.client(), "POST", "/login", body, hdr); r.hdr.Get("Location") != "/" {
		t.Errorf("an off-site next= was followed: %q", r.hdr.Get("Location"))
	}
	if r := tw.do(t, c2, "GET", "/", nil, nil); r.code != http.StatusOK || !strings.Contains(r.body, "Persistence") {
		t.Errorf("status page: %d", r.code)
	}
}

// TestTokensPage: the panel makes a token only with the admin password,
// and shows its secret once.
func TestTokensPage(t *testing.T) {
	tw := newTestWeb(t)
	c, csrf := tw.claim(t, "long enough pass")
	if r := tw.do(t, c, "GET", "/tokens", nil, nil); r.code != http.StatusOK || !strings.Contains(r.body, `name="password" type="password"`) {
		t.Errorf("the tokens page asks no password: %d", r.code)
	}
	for _, tc := range []struct {
		fields []string
		code   int
		want   string
	}{
		{[]string{"csrf", csrf, "name", "laptop"}, http.StatusBadRequest, "password is wrong"},
		{[]string{"csrf", csrf, "name", "laptop", "password", "a guess"}, http.StatusBadRequest, "password is wrong"},
		{[]string{"csrf", csrf, "name", " ", "password", "long enough pass"}, http.StatusBadRequest, "at most 64 characters"},
		{[]string{"csrf", csrf, "name", "laptop", "password", "long enough pass"}, http.StatusOK, "byz_"},
	} {
		body, hdr := form(tc.fields...)
		if r := tw.do(t, c, "POST", "/tokens", body, hdr); r.code != tc.code || !strings.Contains(r.body, tc.want) {
			t.Errorf("POST /tokens %v: %d, want %d with %q", tc.fields, r.code, tc.code, tc.want)
		}
	}
	if n := len(tw.Auth.Tokens()); n != 1 {
		t.Errorf("%d tokens, want 1", n)
	}
}

// TestCSRF: a logged-in browser's state change needs the form's token,
// and a request another site makes is refused even with it.
func TestCSRF(t *testing.T) {
	tw := newTestWeb(t)
	c, csrf := tw.claim(t, "long enough pass")
	for _, tc := range []struct {
		name   string
		fields []string
		hdr    map[string]string
		want   int
	}{
		{"no token", []string{"what", "node", "node_name", "renamed"}, nil, http.StatusForbidden},
		{"a wrong token", []string{"csrf", "nope", "what", "node", "node_name", "renamed"}, nil, http.StatusForbidden},
		{"another site's origin", []string{"csrf", csrf, "what", "node", "node_name", "renamed"}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"marked cross-site", []string{"csrf", csrf, "what", "node", "node_name", "renamed"}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"the right token", []string{"csrf", csrf, "what", "node", "node_name", "renamed"}, map[string]string{"Origin": tw.srv.URL, "Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
	} {
		body, hdr := form(tc.fields...)
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		r := tw.do(t, c, "POST", "/settings", body, hdr)
		if r.code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, r.code, tc.want)
		}
		if renamed := tw.Settings.Get().NodeName == "renamed"; renamed != (tc.want == http.StatusSeeOther) {
			t.Errorf("%s: node name %q", tc.name, tw.Settings.Get().NodeName)
		}
	}
	// The API's JSON with the cookie needs the token too (as a header).
	r := tw.do(t, c, "PUT", "/api/v1/settings", strings.NewReader(`{"node_name":"again","language":"en"}`), map[string]string{"Content-Type": "application/json"})
	if r.code != http.StatusForbidden {
		t.Errorf("API PUT with the cookie and no token: %d", r.code)
	}
	r = tw.do(t, c, "PUT", "/api/v1/settings", strings.NewReader(`{"node_name":"again","language":"en"}`), map[string]string{"Content-Type": "application/json", "X-CSRF-Token": csrf})
	if r.code != http.StatusOK {
		t.Errorf("API PUT with the cookie and the token: %d %s", r.code, r.body)
	}
}

// TestLoginSlowed: after a few wrong passwords from one address the next
// attempt is refused with 429 and Retry-After, even with the right
// password.
func TestLoginSlowed(t *testing.T) {
	tw := newTestWeb(t)
	tw.claim(t, "long enough pass")
	c := tw.client()
	for i := 0; i < 3; i++ {
		if r := tw.do(t, c, "POST", "/api/v1/login", strings.NewReader(`{"password":"wrong"}`), nil); r.code != http.StatusUnauthorized {
			t.Fatalf("bad login %d: %d", i, r.code)
		}
	}
	r := tw.do(t, c, "POST", "/api/v1/login", strings.NewReader(`{"password":"long enough pass"}`), nil)
	if r.code != http.StatusTooManyRequests || r.hdr.Get("Retry-After") == "" {
		t.Errorf("the 4th login at once: %d, Retry-After %q", r.code, r.hdr.Get("Retry-After"))
	}
	body, hdr := form("password", "long enough pass")
	if r := tw.do(t, c, "POST", "/login", body, hdr); r.code != http.StatusTooManyRequests || !strings.Contains(r.body, "wait") {
		t.Errorf("the panel's login meanwhile: %d", r.code)
	}
}

// TestAPI drives the JSON API with a login token and an API token, and
// its bad inputs.
func TestAPI(t *testing.T) {
	tw := newTestWeb(t)
	tw.claim(t, "long enough pass")
	c := tw.client()
	var login nodeapi.LoginResult
	r := tw.do(t, c, "POST", "/api/v1/login", strings.NewReader(`{"password":"long enough pass"}`), nil)
	if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &login) != nil || login.Token == "" {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	bearer := map[string]string{"Authorization": "Bearer " + login.Token}
	var st nodeapi.Status
	if r := tw.do(t, c, "GET", "/api/v1/status", nil, bearer); r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &st) != nil || st.Node != "node1" || st.Memory.TotalBytes == 0 {
		t.Errorf("status: %d %s", r.code, r.body)
	}
	// A token outlives every session: making one takes the password.
	for _, body := range []string{`{"name":"ci"}`, `{"name":"ci","password":"a guess"}`} {
		if r := tw.do(t, c, "POST", "/api/v1/tokens", strings.NewReader(body), bearer); r.code != http.StatusForbidden || !strings.Contains(r.body, "wrong password") {
			t.Errorf("new token with %s: %d %s", body, r.code, r.body)
		}
	}
	if len(tw.Auth.Tokens()) != 0 {
		t.Fatal("a token was made without the password")
	}
	// Root on the node (the unix socket) needs none.
	local, err := tw.LocalHandler()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	local.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/tokens", strings.NewReader(`{"name":"root on the node"}`)))
	if rec.Code != http.StatusCreated || len(tw.Auth.Tokens()) != 1 {
		t.Fatalf("new token on the unix socket: %d %s", rec.Code, rec.Body)
	}
	var nt nodeapi.NewTokenResult
	r = tw.do(t, c, "POST", "/api/v1/tokens", strings.NewReader(`{"name":"ci","password":"long enough pass"}`), bearer)
	if r.code != http.StatusCreated || json.Unmarshal([]byte(r.body), &nt) != nil || !strings.HasPrefix(nt.Secret, "byz_") {
		t.Fatalf("new token: %d %s", r.code, r.body)
	}
	token := map[string]string{"Authorization": "Bearer " + nt.Secret}
	if r := tw.do(t, c, "GET", "/api/v1/tokens", nil, token); r.code != http.StatusOK || !strings.Contains(r.body, `"name":"ci"`) || !strings.Contains(r.body, `"name":"root on the node"`) ||
		strings.Contains(r.body, "hash") || strings.Contains(r.body, nt.Secret) {
		t.Errorf("token list: %d %s", r.code, r.body)
	}
	for _, tc := range []struct {
		method, path, body string
		want               int
		msg                string
	}{
		{"PUT", "/api/v1/settings", `{"node_name":`, http.StatusBadRequest, "the request body"},
		{"PUT", "/api/v1/settings", `{"node_name":"ok","colour":"red"}`, http.StatusBadRequest, "unknown field"},
		{"PUT", "/api/v1/settings", `{"node_name":"bad name!","language":"en"}`, http.StatusBadRequest, "node name"},
		{"PUT", "/api/v1/settings", `{"node_name":"ok","language":"de"}`, http.StatusBadRequest, "language"},
		{"POST", "/api/v1/settings/password", `{"current":"wrong","new":"whatever long"}`, http.StatusForbidden, "wrong password"},
		{"DELETE", "/api/v1/tokens/nope", ``, http.StatusNotFound, "no token"},
		{"POST", "/api/v1/persistence/save", ``, http.StatusConflict, "nothing to save"},
	} {
		r := tw.do(t, c, tc.method, tc.path, strings.NewReader(tc.body), token)
		if r.code != tc.want || !strings.Contains(r.body, tc.msg) {
			t.Errorf("%s %s %s: %d %s, want %d %q", tc.method, tc.path, tc.body, r.code, r.body, tc.want, tc.msg)
		}
	}
	if tw.Settings.Get().NodeName != "node1" {
		t.Errorf("a refused request changed the settings: %+v", tw.Settings.Get())
	}
	if r := tw.do(t, c, "DELETE", "/api/v1/tokens/"+nt.ID, nil, bearer); r.code != http.StatusNoContent {
		t.Errorf("revoke: %d", r.code)
	}
	if r := tw.do(t, c, "GET", "/api/v1/status", nil, token); r.code != http.StatusUnauthorized {
		t.Errorf("a revoked token works: %d", r.code)
	}
	if r := tw.do(t, c, "POST", "/api/v1/logout", nil, bearer); r.code != http.StatusNoContent {
		t.Errorf("logout: %d", r.code)
	}
	if r := tw.do(t, c, "GET", "/api/v1/status", nil, bearer); r.code != http.StatusUnauthorized {
		t.Errorf("a logged-out token works: %d", r.code)
	}
	var logged []nodeapi.LogLine
	if r := tw.do(t, c, "GET", "/api/v1/logs?last=50", nil, map[string]string{"Authorization": "Bearer " + login2(t, tw)}); r.code != http.StatusOK ||
		json.Unmarshal([]byte(r.body), &logged) != nil || !slices.ContainsFunc(logged, func(l nodeapi.LogLine) bool { return strings.Contains(l.Message, "API token revoked") }) {
		t.Errorf("the log does not show the revocation: %d %s", r.code, r.body)
	}
}

// templateKeys lists the message keys the templates use literally.
var templateKey = regexp.MustCompile(`\.T "([a-z0-9._]+)"`)

// TestCatalogs: the three languages have the same keys, every key a
// template uses exists, and every dynamic key family is complete.
func TestCatalogs(t *testing.T) {
	tw := newTestWeb(t)
	en := tw.cat.Keys("en")
	for _, l := range []string{"es", "fr"} {
		if got := tw.cat.Keys(l); !slices.Equal(got, en) {
			t.Errorf("%s's keys differ from en's", l)
		}
	}
	has := func(k string) bool { _, ok := slices.BinarySearch(en, k); return ok }
	files, _ := fs.Glob(webFS, "web/templates/*.html")
	for _, f := range files {
		b, _ := fs.ReadFile(webFS, f)
		for _, m := range templateKey.FindAllStringSubmatch(string(b), -1) {
			if !has(m[1]) {
				t.Errorf("%s uses %q, which no catalog has", f, m[1])
			}
		}
		if strings.Contains(string(b), ">") && regexp.MustCompile(`>\s*[A-Z][a-z]+ [a-z]+`).Match(b) {
			t.Errorf("%s seems to hold words rather than keys", f)
		}
	}
	for _, mode := range []string{"ram", "fresh", "savedat", "device", "dir", "exit", "unknown"} {
		for _, fam := range []string{"persistence.mode.", "persistence.help."} {
			if !has(fam + mode) {
				t.Errorf("no %s%s", fam, mode)
			}
		}
	}
	for _, fam := range []struct {
		prefix string
		values []string
	}{
		{"services.state.", []string{"stopped", "starting", "running", "backoff", "failed"}},
		{"services.health.", []string{"ok", "failing"}},
		{"modules.folder.", []string{"base", "modules", "optional"}},
		{"services.", []string{"enable.done", "disable.done", "restart.done"}},
		{"clone.state.", []string{"idle", "running", "done", "failed"}},
		{"clone.", []string{"started", "cancelled"}},
	} {
		for _, v := range fam.values {
			if !has(fam.prefix + v) {
				t.Errorf("no %s%s", fam.prefix, v)
			}
		}
	}
	for _, k := range []string{"status.storage.root", "status.storage.media", "setup.done", "settings.done", "settings.password.done", "tokens.revoked", "status.saved"} {
		if !has(k) {
			t.Errorf("no %s", k)
		}
	}
}

// TestLanguage: Accept-Language picks the page's language, and the
// switch's cookie wins over it.
func TestLanguage(t *testing.T) {
	tw := newTestWeb(t)
	tw.claim(t, "long enough pass")
	c := tw.client()
	for _, tc := range []struct{ accept, want string }{
		{"es-ES,es;q=0.9", "Iniciar sesión"},
		{"fr", "Connexion"},
		{"de", "Log in"},
	} {
		r := tw.do(t, c, "GET", "/login", nil, map[string]string{"Accept-Language": tc.accept})
		if !strings.Contains(r.body, "<h1>"+tc.want+"</h1>") {
			t.Errorf("Accept-Language %s: no %q", tc.accept, tc.want)
		}
	}
	if r := tw.do(t, c, "GET", "/lang?set=fr&next=/login", nil, nil); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/login" {
		t.Errorf("switch: %d %s", r.code, r.hdr.Get("Location"))
	}
	r := tw.do(t, c, "GET", "/login", nil, map[string]string{"Accept-Language": "es"})
	if !strings.Contains(r.body, "<h1>Connexion</h1>") || !strings.Contains(r.body, `<html lang="fr">`) {
		t.Errorf("after switching to French, with Accept-Language es: %s", r.body[:200])
	}
}

// TestPersistenceWarningOnPanel: a node that runs without the persistence
// it was asked for says so at the top of its status page, as /healthz
// does.
func TestPersistenceWarningOnPanel(t *testing.T) {
	tw := newTestWeb(t)
	writeFile(t, tw.Root+"/"+overlays.PersistenceJSON, `{"mode":"ram","store":"byzantium/changes/save.dat","encrypted":true,"warning":"the passphrase prompt was skipped"}`)
	c, _ := tw.claim(t, "long enough pass")
	r := tw.do(t, c, "GET", "/", nil, nil)
	for _, want := range []string{"Persistence is OFF", "the passphrase prompt was skipped", `role="alert"`, "byzantium/changes/save.dat"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the status page lacks %q", want)
		}
	}
}

// login2 logs in through the API and returns the token.
func login2(t *testing.T, tw *testWeb) string {
	t.Helper()
	var login nodeapi.LoginResult
	r := tw.do(t, tw.client(), "POST", "/api/v1/login", strings.NewReader(`{"password":"long enough pass"}`), nil)
	if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &login) != nil {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	return login.Token
}

// TestSafeNext: every redirect target that a browser could read as
// another host, or that smuggles one in encoded or behind control bytes,
// becomes "/"; the panel's own paths are kept.
func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/logs", "/logs"},
		{"/services/ngircd/logs?last=20", "/services/ngircd/logs?last=20"},
		{"/settings?done=settings.done", "/settings?done=settings.done"},
		{"", "/"},
		{"logs", "/"},
		{"//evil.example/", "/"},
		{"/\\evil.example/", "/"},
		{"\\\\evil.example", "/"},
		{"/\t/evil.example/", "/"},
		{"/\r/evil.example/", "/"},
		{"/\n/evil.example/", "/"},
		{"/\x00/evil.example/", "/"},
		{"/\x0b/evil.example/", "/"},
		{"/\x7f/evil.example/", "/"},
		{"/ /evil.example/", "/"},
		{"/\u00a0/evil.example/", "/"},
		{"/%09/evil.example/", "/"},
		{"/%0d%0a/evil.example/", "/"},
		{"/%2F/evil.example/", "/"},
		{"/%2f%2fevil.example/", "/"},
		{"/%5C/evil.example/", "/"},
		{"/%00", "/"},
		{"/%7F/evil.example/", "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"/https://evil.example", "/https://evil.example"}, // a path here, harmless
		{"///evil.example", "/"},
		{"/" + strings.Repeat("a", 1100), "/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNoOpenRedirect: the language switch and the login, given the
// review's next=/%09/evil.example/, send the browser to "/".
func TestNoOpenRedirect(t *testing.T) {
	tw := newTestWeb(t)
	tw.claim(t, "long enough pass")
	for _, next := range []string{"/%09/evil.example/", "/%5C/evil.example/", "%2F%2Fevil.example", "/%0A/evil.example"} {
		if r := tw.do(t, tw.client(), "GET", "/lang?set=fr&next="+next, nil, nil); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/" {
			t.Errorf("/lang next=%s: %d to %q", next, r.code, r.hdr.Get("Location"))
		}
		_, hdr := form()
		body := strings.NewReader("password=long+enough+pass&next=" + next)
		hdr["Origin"] = tw.srv.URL
		if r := tw.do(t, tw.client(), "POST", "/login", body, hdr); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/" {
			t.Errorf("login next=%s: %d to %q", next, r.code, r.hdr.Get("Location"))
		}
	}
}

// TestEveryRouteWithoutASession calls every route as an API token and
// as the unix socket: callers without a login session, which handlers
// must not take for granted (the panel's password form, sent with a
// token, dereferenced a nil session and panicked). The handler is called
// directly, so a panic fails the test instead of being caught by
// net/http. The password form then works with a token.
func TestEveryRouteWithoutASession(t *testing.T) {
	tw := newTestWeb(t)
	tw.claim(t, "long enough pass")
	secret := tw.apiToken(t, "walk")
	local, err := tw.LocalHandler()
	if err != nil {
		t.Fatal(err)
	}
	pw := "what=password&current=long+enough+pass&new=another+long+pass&confirm=another+long+pass"
	for _, rt := range tw.routes() {
		if rt.public {
			continue
		}
		method, path := concrete(rt.pattern)
		for _, via := range []string{"token", "socket"} {
			if via == "socket" && !strings.HasPrefix(path, "/api/") {
				continue
			}
			body, ctype := "{}", "application/json"
			if !strings.HasPrefix(path, "/api/") {
				body, ctype = pw, "application/x-www-form-urlencoded"
			}
			req := httptest.NewRequest(method, "https://node1"+path, strings.NewReader(body))
			req.Header.Set("Content-Type", ctype)
			h := local
			if via == "token" {
				req.Header.Set("Authorization", "Bearer "+secret)
				h = tw.h
			}
			rec := httptest.NewRecorder()
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%s via %s panicked: %v", rt.pattern, via, p)
					}
				}()
				h.ServeHTTP(rec, req)
			}()
			if rec.Code == http.StatusUnauthorized || rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
				t.Errorf("%s via %s: %d %s", rt.pattern, via, rec.Code, firstLine(rec.Body.String()))
			}
		}
	}
	if _, err := tw.Auth.Login("198.51.100.1", "another long pass"); err != nil {
		t.Errorf("the password form sent with a token did not change the password: %v", err)
	}
}

// TestLoginCSRF: the login and setup forms, which no cookie or CSRF token
// protects, take only requests a browser marks as the panel's own (Origin
// this panel, or Sec-Fetch-Site same-origin); Origin: null, another
// origin, http://, cross-site and requests saying nothing are refused and
// set no cookie. The JSON login and bearer-token calls, which set no
// cookie, work without those headers, as byz node and scripts send them.
func TestLoginCSRF(t *testing.T) {
	tw := newTestWeb(t)
	tw.claim(t, "long enough pass")
	self := tw.srv.URL
	host := strings.TrimPrefix(self, "https://")
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no Origin, no Sec-Fetch-Site", nil, http.StatusForbidden},
		{"Origin: null", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"Origin: null, no Sec-Fetch-Site", map[string]string{"Origin": "null", "Sec-Fetch-Site": ""}, http.StatusForbidden},
		{"another origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"this host over http", map[string]string{"Origin": "http://" + host}, http.StatusForbidden},
		{"this host, another port", map[string]string{"Origin": "https://127.0.0.1:1"}, http.StatusForbidden},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": self}, http.StatusForbidden},
		{"none (not from a page)", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusForbidden},
		{"same-origin with a foreign Origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"Origin this panel", map[string]string{"Origin": self}, http.StatusSeeOther},
		{"Sec-Fetch-Site same-origin", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
		{"Chromium's form", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": self}, http.StatusSeeOther},
	} {
		for _, path := range []string{"/login", "/setup"} {
			hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			for k, v := range tc.hdr {
				if v != "" {
					hdr[k] = v
				}
			}
			body := strings.NewReader(url.Values{"password": {"long enough pass"}, "code": {"x"}, "confirm": {"long enough pass"}}.Encode())
			r := tw.do(t, tw.client(), "POST", path, body, hdr)
			// (A claimed node sends an accepted setup form to /login.)
			if r.code != tc.want {
				t.Errorf("%s %s: %d, want %d", path, tc.name, r.code, tc.want)
			}
			if r.code == http.StatusForbidden && r.hdr.Get("Set-Cookie") != "" {
				t.Errorf("%s %s: refused, but set %q", path, tc.name, r.hdr.Get("Set-Cookie"))
			}
			if path == "/login" && (r.code == http.StatusSeeOther) != strings.HasPrefix(r.hdr.Get("Set-Cookie"), sessionCookie+"=") {
				t.Errorf("%s %s: %d with cookie %q", path, tc.name, r.code, r.hdr.Get("Set-Cookie"))
			}
		}
	}

	// The JSON API, as scripts call it: no Origin, no Sec-Fetch-Site,
	// no Content-Type, or curl -d's form type (docs/api.md's example).
	c := tw.client()
	var login nodeapi.LoginResult
	for _, hdr := range []map[string]string{nil, {"Content-Type": "application/x-www-form-urlencoded"}} {
		r := tw.do(t, c, "POST", "/api/v1/login", strings.NewReader(`{"password":"long enough pass"}`), hdr)
		if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &login) != nil || login.Token == "" || r.hdr.Get("Set-Cookie") != "" {
			t.Fatalf("JSON login without Origin (%v): %d %s", hdr, r.code, r.body)
		}
	}
	secret := tw.apiToken(t, "script")
	for _, bearer := range []string{login.Token, secret} {
		r := tw.do(t, c, "PUT", "/api/v1/settings", strings.NewReader(`{"node_name":"renamed","language":"en"}`),
			map[string]string{"Authorization": "Bearer " + bearer, "Content-Type": "application/json"})
		if r.code != http.StatusOK {
			t.Errorf("bearer PUT without Origin: %d %s", r.code, r.body)
		}
		// A browser page elsewhere that got hold of a token is still
		// marked as such.
		r = tw.do(t, c, "PUT", "/api/v1/settings", strings.NewReader(`{"node_name":"evil","language":"en"}`),
			map[string]string{"Authorization": "Bearer " + bearer, "Origin": "null"})
		if r.code != http.StatusForbidden {
			t.Errorf("bearer PUT with Origin: null: %d", r.code)
		}
	}
	if n := tw.Settings.Get().NodeName; n != "renamed" {
		t.Errorf("node name %q", n)
	}

	// A logged-in browser's form with the right CSRF token, but Origin:
	// null, is refused too.
	bc, csrf := tw.claimedLogin(t, "long enough pass")
	body, hdr := form("csrf", csrf, "what", "node", "node_name", "nulled")
	hdr["Origin"] = "null"
	delete(hdr, "Sec-Fetch-Site")
	if r := tw.do(t, bc, "POST", "/settings", body, hdr); r.code != http.StatusForbidden || tw.Settings.Get().NodeName == "nulled" {
		t.Errorf("a cookie form with Origin: null: %d", r.code)
	}
}

// claimedLogin logs a new browser in to a claimed node through the login
// form and returns it with its CSRF token.
func (tw *testWeb) claimedLogin(t *testing.T, password string) (*http.Client, string) {
	t.Helper()
	c := tw.client()
	body, hdr := form("password", password)
	if r := tw.do(t, c, "POST", "/login", body, hdr); r.code != http.StatusSeeOther {
		t.Fatalf("login: %d", r.code)
	}
	return c, tw.csrf(t, c)
}

// TestNotices: ?done= shows a notice only for the panel's own message
// keys; any other text in a link is not shown.
func TestNotices(t *testing.T) {
	tw := newTestWeb(t)
	c, _ := tw.claim(t, "long enough pass")
	if r := tw.do(t, c, "GET", "/settings?done=settings.done", nil, nil); !strings.Contains(r.body, `<p class="notice" role="status">Saved.</p>`) {
		t.Errorf("a known notice is not shown")
	}
	for _, text := range []string{"Your node is compromised: call +1 555 0100", "login.title", "settings.done "} {
		r := tw.do(t, c, "GET", "/settings?done="+url.QueryEscape(text), nil, nil)
		if r.code != http.StatusOK || strings.Contains(r.body, `class="notice"`) || strings.Contains(r.body, "Your node is compromised") {
			t.Errorf("?done=%q: %d, shown", text, r.code)
		}
	}
	// Every key a redirect uses is a notice the catalogs have.
	src, _ := filepath.Glob("*.go")
	call := regexp.MustCompile(`done\(rw, r, "[^"]*", "([^"]+)"\)`)
	found := 0
	for _, f := range src {
		b, _ := os.ReadFile(f)
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			found++
			if !notices[m[1]] {
				t.Errorf("%s redirects with notice %q, which is not in notices", f, m[1])
			}
		}
	}
	if found < 7 {
		t.Errorf("found only %d done() calls: the pattern is stale", found)
	}
	en := tw.cat.Keys("en")
	for k := range notices {
		if !slices.Contains(en, k) {
			t.Errorf("notice %q is not in the catalog", k)
		}
	}
}

// TestSecurityHeaders: the CSP lets forms post only to the panel and
// allows no <base>; referrers stay on the site.
func TestSecurityHeaders(t *testing.T) {
	tw := newTestWeb(t)
	r := tw.do(t, tw.client(), "GET", "/setup", nil, nil)
	csp := r.hdr.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	if rp := r.hdr.Get("Referrer-Policy"); rp != "same-origin" {
		t.Errorf("Referrer-Policy %q", rp)
	}
}
