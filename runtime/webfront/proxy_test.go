package webfront

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestProxyHeaders: what a client may not say about itself is dropped
// and the front says it instead; hop-by-hop headers stop at the front
// both ways; byzd's cookies neither reach an app nor come back from
// one; an app that thinks it is at "/" has its redirects put under its
// prefix; an app under a path cannot widen its service worker's scope.
func TestProxyHeaders(t *testing.T) {
	var got atomic.Pointer[http.Request]
	sock := unixBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r)
		h := w.Header()
		h.Add("Set-Cookie", "app_session=1; Path=/; HttpOnly")
		h.Add("Set-Cookie", "__Host-byz_session=stolen; Path=/; Secure")
		h.Set("Location", "/login?next=%2F")
		h.Set("Service-Worker-Allowed", "/")
		h.Set("Connection", "X-Backend-Hop")
		h.Set("X-Backend-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		w.WriteHeader(http.StatusFound)
	}))
	log := &testLog{}
	f := &Front{Logf: log.logf, ReservedCookies: []string{"__Host-byz_session", "byz_lang"}}
	if err := f.Update([]Route{{Name: "chat", Prefix: "/chat/", HTTP: &HTTPBackend{Socket: sock}}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.StartTLS()
	defer srv.Close()
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("GET", srv.URL+"/chat/index.html?x=1", nil)
	req.Host = "node1.byzantium.mesh"
	for k, v := range map[string]string{
		"X-Forwarded-For":    "6.6.6.6",
		"X-Forwarded-Host":   "evil.example",
		"X-Forwarded-Proto":  "http",
		"X-Forwarded-Prefix": "/evil",
		"X-Forwarded-Port":   "1",
		"Forwarded":          "for=6.6.6.6",
		"X-Real-IP":          "6.6.6.6",
		"X-Proxy-Path":       "/evil",
		"X-Ingress-Path":     "/evil",
		"Connection":         "X-Client-Hop",
		"X-Client-Hop":       "1",
		"Cookie":             "__Host-byz_session=secret; app_session=1; byz_lang=es",
		"Accept-Encoding":    "gzip",
	} {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := got.Load()
	if r == nil {
		t.Fatal("the app saw nothing")
	}
	want := map[string]string{
		"X-Forwarded-For":    "127.0.0.1",
		"X-Forwarded-Host":   "node1.byzantium.mesh",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-Prefix": "/chat",
		"X-Forwarded-Port":   "",
		"Forwarded":          "",
		"X-Real-Ip":          "",
		"X-Proxy-Path":       "",
		"X-Ingress-Path":     "",
		"X-Client-Hop":       "",
		"Cookie":             "app_session=1",
		"Accept-Encoding":    "gzip",
	}
	for k, v := range want {
		if got := strings.Join(r.Header.Values(k), ","); got != v {
			t.Errorf("the app saw %s: %q, want %q", k, got, v)
		}
	}
	if r.Host != "node1.byzantium.mesh" || r.URL.Path != "/index.html" || r.URL.RawQuery != "x=1" {
		t.Errorf("the app saw host %q path %q query %q", r.Host, r.URL.Path, r.URL.RawQuery)
	}
	h := resp.Header
	if cs := h.Values("Set-Cookie"); len(cs) != 1 || !strings.HasPrefix(cs[0], "app_session=") {
		t.Errorf("Set-Cookie to the client: %q", cs)
	}
	if !log.has("refused a Set-Cookie for byzd's own cookie __Host-byz_session") {
		t.Errorf("the refused cookie is not logged: %s", log)
	}
	if h.Get("Location") != "/chat/login?next=%2F" {
		t.Errorf("Location %q", h.Get("Location"))
	}
	if h.Get("Service-Worker-Allowed") != "" || h.Get("X-Backend-Hop") != "" || h.Get("Keep-Alive") != "" {
		t.Errorf("headers that should stop at the front: %v", h)
	}
}

// TestStatePages: an app that does not answer gets the page its state
// calls for, in the client's language, as HTML for a browser and as
// JSON for a script; the status codes say whether to retry.
func TestStatePages(t *testing.T) {
	var state atomic.Int32
	f := &Front{}
	err := f.Update([]Route{{Name: "pad", Title: "Pad", Prefix: "/pad/",
		HTTP:  &HTTPBackend{Socket: "/nonexistent/pad.sock"},
		State: func() State { return State(state.Load()) }}})
	if err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	c := clientFrom("127.0.0.1")
	for _, tc := range []struct {
		state      State
		lang, want string
		status     int
		retry      string
	}{
		{Starting, "es-AR,es;q=0.9", "La aplicación Pad se está iniciando", 503, "5"},
		{Starting, "fr", "L&#39;application Pad démarre", 503, "5"},
		{Stopped, "en", "Pad is turned off", 503, ""},
		{Failed, "fr-CA", "L&#39;application Pad s&#39;est arrêtée", 503, ""},
		{Running, "de", "Pad is not answering", 502, "30"},
	} {
		state.Store(int32(tc.state))
		resp, body := get(t, c, "http://"+addr+"/pad/p/notes", "Accept", "text/html,application/xhtml+xml", "Accept-Language", tc.lang)
		if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retry ||
			!strings.Contains(body, tc.want) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%v %s: %d retry %q\n%s", tc.state, tc.lang, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if tc.state == Starting && !strings.Contains(body, `http-equiv="refresh"`) {
			t.Errorf("the starting page does not reload itself")
		}
		resp, body = get(t, c, "http://"+addr+"/pad/api/1/getText", "Accept", "application/json")
		var e ErrorBody
		if err := json.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != tc.status || e.App != "pad" || e.Status != tc.status {
			t.Errorf("%v JSON: %d %s (%v)", tc.state, resp.StatusCode, body, err)
		}
		if wantState := map[State]string{Starting: "starting", Stopped: "stopped", Failed: "failed"}[tc.state]; e.State != wantState {
			t.Errorf("%v JSON state %q", tc.state, e.State)
		}
	}
}

// TestCatalogs: every language has every key, with the same verbs.
func TestCatalogs(t *testing.T) {
	en := catalogs.Keys("en")
	for _, lang := range catalogs.Languages() {
		keys := catalogs.Keys(lang)
		if strings.Join(keys, ",") != strings.Join(en, ",") {
			t.Errorf("%s has keys %v, en has %v", lang, keys, en)
		}
		for _, k := range en {
			if strings.Count(catalogs.T(lang, k), "%s") != strings.Count(catalogs.T("en", k), "%s") {
				t.Errorf("%s %s: verbs differ from en", lang, k)
			}
		}
	}
	if len(catalogs.Languages()) < 3 {
		t.Errorf("languages %v", catalogs.Languages())
	}
}

// TestPages: every page in every language, as HTML and as JSON, says
// its words with nothing left unformatted and the status it stands for.
func TestPages(t *testing.T) {
	a := &app{name: "wiki", title: "Wiki", lim: Limits{}.withDefaults(false)}
	for _, p := range []page{pageStarting, pageStopped, pageFailed, pageDown, pageBroken, pageTimeout, pageBusy,
		pageTooMany, pageTooLarge, pageSlow, pageLength, pageBadPath, pageNotFound, pageMethod} {
		for _, lang := range catalogs.Languages() {
			for _, accept := range []string{"text/html", "application/json"} {
				r := httptest.NewRequest("GET", "/wiki/x", nil)
				r.Header.Set("Accept", accept)
				r.Header.Set("Accept-Language", lang)
				w := httptest.NewRecorder()
				a.writePage(w, r, p, "8 MiB")
				body := w.Body.String()
				if w.Code != p.status || strings.Contains(body, "%!") || strings.Contains(body, "[") && strings.Contains(body, p.key+".") {
					t.Errorf("%s %s %s: %d %s", p.key, lang, accept, w.Code, body)
				}
				if accept == "text/html" && !strings.Contains(body, `<html lang="`+lang+`">`) {
					t.Errorf("%s %s: not in %s: %s", p.key, lang, lang, body)
				}
			}
		}
	}
}

// TestBackendFailures: an app that never answers gets 504 after its
// backend timeout, one that hangs up or answers garbage 502; each
// leaves the front serving the next request.
func TestBackendFailures(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hang := unixBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	rawApp := func(answer string) string {
		dir := t.TempDir()
		ln, err := net.Listen("unix", dir+"/s")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					bufio.NewReader(c).ReadString('\n')
					io.WriteString(c, answer)
				}()
			}
		}()
		return dir + "/s"
	}
	good := echoBackend(t)
	log := &testLog{}
	f := &Front{Logf: log.logf}
	lim := Limits{BackendTimeout: 300 * time.Millisecond}
	err := f.Update([]Route{
		{Name: "hang", Prefix: "/hang/", HTTP: &HTTPBackend{Socket: hang}, Limits: lim},
		{Name: "hangup", Prefix: "/hangup/", HTTP: &HTTPBackend{Socket: rawApp("")}, Limits: lim},
		{Name: "garbage", Prefix: "/garbage/", HTTP: &HTTPBackend{Socket: rawApp("SMTP ready\r\n\r\n")}, Limits: lim},
		{Name: "good", Prefix: "/good/", HTTP: &HTTPBackend{Socket: good}},
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := frontServer(t, f, 0)
	c := clientFrom("127.0.0.1")
	for _, tc := range []struct {
		path   string
		status int
		text   string
	}{
		{"/hang/", 504, "took too long to answer"},
		{"/hangup/", 502, "sent a broken answer"},
		{"/garbage/", 502, "sent a broken answer"},
	} {
		resp, body := get(t, c, "http://"+addr+tc.path, "Accept", "text/html")
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.text) {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
		if resp, _ := get(t, c, "http://"+addr+"/good/"); resp.StatusCode != 200 {
			t.Errorf("after %s, a good app: %d", tc.path, resp.StatusCode)
		}
	}
	if !log.has("hang: GET /hang/") {
		t.Errorf("the timeout is not logged: %s", log)
	}
}

// TestProbe: the health path is asked of the backend itself.
func TestProbe(t *testing.T) {
	var hits atomic.Int32
	sock := unixBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/healthz" {
			w.WriteHeader(500)
		}
	}))
	f := &Front{}
	f.Update([]Route{
		{Name: "ok", Prefix: "/ok/", Health: "/healthz", HTTP: &HTTPBackend{Socket: sock}},
		{Name: "bad", Prefix: "/bad/", Health: "/other", HTTP: &HTTPBackend{Socket: sock}},
		{Name: "off", Prefix: "/off/", HTTP: &HTTPBackend{Socket: "/nonexistent.sock"}},
	})
	ctx := t.Context()
	if err := f.Probe(ctx, "ok"); err != nil {
		t.Error(err)
	}
	if err := f.Probe(ctx, "bad"); err == nil || !strings.Contains(err.Error(), "status 500") {
		t.Errorf("bad: %v", err)
	}
	if err := f.Probe(ctx, "off"); err == nil {
		t.Error("off: answered")
	}
	if err := f.Probe(ctx, "nobody"); err == nil {
		t.Error("an unknown app: answered")
	}
	if hits.Load() != 2 {
		t.Errorf("%d hits", hits.Load())
	}
}
