package browser

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"html"
	"image/png"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// panel is a stand-in for the node's control panel: server-rendered pages
// with POST forms and no JavaScript, a session cookie, and English or German
// after the Accept-Language header.
type panel struct {
	mu        sync.Mutex
	enabled   map[string]bool
	languages []string // the Accept-Language of each request
}

var services = []string{"ssh", "http", "dns", "dhcp", "ntp", "mesh", "chat", "wiki", "files", "maps", "mail", "voip"}

var words = map[string]map[string]string{
	"en": {"signin": "Sign in", "password": "Password", "services": "Services", "on": "enabled", "off": "disabled", "enable": "Enable", "wrong": "Wrong password"},
	"de": {"signin": "Anmelden", "password": "Passwort", "services": "Dienste", "on": "an", "off": "aus", "enable": "Einschalten", "wrong": "Falsches Passwort"},
}

const password = "correct horse"

func (p *panel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.languages = append(p.languages, r.Header.Get("Accept-Language"))
	lang := "en"
	if strings.HasPrefix(r.Header.Get("Accept-Language"), "de") {
		lang = "de"
	}
	tr := words[lang]
	c, _ := r.Cookie("session")
	signedIn := c != nil && c.Value == "ok"
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		p.page(w, lang, http.StatusOK, tr["signin"], `<form method="post" action="/login">
<label>`+tr["password"]+` <input type="password" name="password" id="password"></label>
<button type="submit" id="login">`+tr["signin"]+`</button></form>`)
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		if r.PostFormValue("password") != password {
			p.page(w, lang, http.StatusForbidden, tr["signin"], `<p id="error">`+tr["wrong"]+`</p>`)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "ok", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/services", http.StatusSeeOther)
	case r.URL.Path == "/services" && signedIn && r.Method == http.MethodGet:
		var b strings.Builder
		b.WriteString("<ul>")
		for _, s := range services {
			state := tr["off"]
			if p.enabled[s] {
				state = tr["on"]
			}
			fmt.Fprintf(&b, `<li id="svc-%[1]s"><b>%[1]s</b>: <span class="state">%[2]s</span>
<form method="post" action="/services"><input type="hidden" name="service" value="%[1]s">
<button type="submit" name="action" value="enable" id="enable-%[1]s">%[3]s</button></form></li>`, s, state, tr["enable"])
		}
		b.WriteString("</ul>")
		p.page(w, lang, http.StatusOK, tr["services"], b.String())
	case r.URL.Path == "/services" && signedIn && r.Method == http.MethodPost:
		if r.PostFormValue("action") == "enable" && slices.Contains(services, r.PostFormValue("service")) {
			p.enabled[r.PostFormValue("service")] = true
		}
		http.Redirect(w, r, "/services", http.StatusSeeOther)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func (p *panel) page(w http.ResponseWriter, lang string, status int, title, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html><html lang="%s"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>%s</title>
<style>body{font-family:sans-serif;margin:1em;max-width:60em} li{padding:.8em 0;border-bottom:1px solid #ccc}
form{display:inline} button{font-size:1em;padding:.4em 1em}</style></head>
<body><h1>%s</h1>%s</body></html>`, lang, html.EscapeString(title), html.EscapeString(title), body)
}

// selfSigned makes a certificate like the node's: self-signed, for a name
// that the test does not use (it connects to 127.0.0.1), so only the pinned
// key can make Chromium accept it.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "node.byzantium.test"},
		DNSNames:     []string{"node.byzantium.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// logWriter sends a server's error log to the test's log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// pngSize returns the width and height of the PNG at path.
func pngSize(t *testing.T, path string) (int, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg.Width, cfg.Height
}

// TestPanel drives a stand-in for the control panel as a person would: sign
// in (wrongly first), enable a service, switch language, and keep
// screenshots at desktop and phone width. It also checks that Chromium
// accepts the pinned key only, and reaches nothing beyond loopback.
func TestPanel(t *testing.T) {
	p := &panel{enabled: map[string]bool{}}
	cert := selfSigned(t)
	srv := httptest.NewUnstartedServer(p)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	// Another self-signed server, with another key: it must not load.
	var impostorHits atomic.Int32
	impostor := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { impostorHits.Add(1) }))
	impostor.Config.ErrorLog = log.New(logWriter{t}, "impostor: ", 0) // shows Chromium's refusal
	impostor.StartTLS()
	defer impostor.Close()

	start := time.Now()
	b := New(t, Options{SPKIHashes: []string{SPKIHash(cert.Leaf)}})
	t.Logf("chromium started in %v", b.Started)

	if got := b.Navigate(srv.URL); got != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", got)
	}
	if got := b.Text("h1"); got != "Sign in" {
		t.Errorf("title = %q, want %q", got, "Sign in")
	}
	// localhost is loopback too, and the pin makes Chromium ignore the
	// name the certificate is for.
	if got := b.Navigate(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)); got != http.StatusOK {
		t.Errorf("the panel at localhost: status %d, want 200", got)
	}

	b.Navigate(srv.URL)
	b.SetField("#password", "wrong")
	if got := b.Click("#login"); got != http.StatusForbidden {
		t.Errorf("wrong password: status %d, want 403", got)
	}
	if got := b.Text("#error"); got != "Wrong password" {
		t.Errorf("wrong password: %q, want %q", got, "Wrong password")
	}

	b.Navigate(srv.URL)
	b.SetField("#password", password)
	if got := b.Click("#login"); got != http.StatusOK {
		t.Fatalf("sign in: status %d, want 200", got)
	}
	if got, want := b.URL(), srv.URL+"/services"; got != want {
		t.Fatalf("after sign-in the browser shows %s, want %s (POST, 303, GET with the cookie)", got, want)
	}
	if got := b.Text("#svc-mesh .state"); got != "disabled" {
		t.Errorf("mesh before enabling: %q, want disabled", got)
	}

	// The click sends the button's name and value, as for a person.
	b.Click("#enable-mesh")
	if got := b.Text("#svc-mesh .state"); got != "enabled" {
		t.Errorf("mesh after enabling: %q, want enabled", got)
	}
	p.mu.Lock()
	if !p.enabled["mesh"] || len(p.enabled) != 1 {
		t.Errorf("server's services after the click: %v, want mesh only", p.enabled)
	}
	p.mu.Unlock()

	desktop := b.Screenshot("services-en-desktop")

	b.SetLanguage("de-DE,de,en")
	b.Navigate(srv.URL + "/services")
	if got := b.Text("h1"); got != "Dienste" {
		t.Errorf("title in German = %q, want Dienste", got)
	}
	if got := b.Text("#svc-mesh .state"); got != "an" {
		t.Errorf("mesh in German = %q, want an", got)
	}
	p.mu.Lock()
	if got := p.languages[len(p.languages)-1]; got != "de-DE,de;q=0.9,en;q=0.8" {
		t.Errorf("server saw Accept-Language %q", got)
	}
	p.mu.Unlock()

	// On the phone too: a tap-sized button far down the page.
	b.SetViewport(Phone)
	b.Click("#enable-voip")
	if got := b.Text("#svc-voip .state"); got != "an" {
		t.Errorf("voip after enabling on the phone: %q, want an", got)
	}
	phone := b.Screenshot("services-de-phone")
	b.SetViewport(Desktop)

	for _, c := range []struct {
		path string
		v    Viewport
	}{{desktop, Desktop}, {phone, Phone}} {
		w, h := pngSize(t, c.path)
		wantW := int(float64(c.v.Width) * c.v.Scale)
		if w != wantW {
			t.Errorf("%s is %d px wide, want %d", c.path, w, wantW)
		}
		// A full-page shot: the twelve services are taller than the screen.
		if minH := int(float64(c.v.Height) * c.v.Scale); h <= minH {
			t.Errorf("%s is %d px high, want more than the screen's %d", c.path, h, minH)
		}
	}

	if _, err := b.TryNavigate(impostor.URL); err == nil || !strings.Contains(err.Error(), "ERR_CERT") {
		t.Errorf("a self-signed server with another key: err = %v, want a certificate error", err)
	}
	if n := impostorHits.Load(); n != 0 {
		t.Errorf("the impostor got %d requests", n)
	}

	// Beyond loopback, a plain HTTP page is the sink's refusal and an
	// HTTPS one fails (the sink refuses the tunnel). Chromium's own
	// background requests (updates, sign-in, connectivity checks) end
	// there too.
	if status, err := b.TryNavigate("http://panel.invalid/"); err != nil || status != http.StatusForbidden {
		t.Errorf("http://panel.invalid/: status %d, err %v; want the sink's 403", status, err)
	} else if got := b.Text("body"); !strings.Contains(got, "blocked") {
		t.Errorf("http://panel.invalid/ shows %q, want the sink's refusal", got)
	}
	if _, err := b.TryNavigate("https://panel.invalid/"); err == nil {
		t.Error("https://panel.invalid/ loaded")
	}
	for _, want := range []string{"GET http://panel.invalid/ ", "CONNECT panel.invalid:443 "} {
		if !slices.ContainsFunc(b.Blocked(), func(r string) bool { return strings.HasPrefix(r, want) }) {
			t.Errorf("blocked requests = %q, want %q…", b.Blocked(), want)
		}
	}
	t.Logf("blocked beyond loopback: %q", b.Blocked())
	t.Logf("the test took %v with chromium's start", time.Since(start))
}

func TestArtifactDir(t *testing.T) {
	root := t.TempDir()
	t.Setenv(ArtifactsEnv, root)
	stale := filepath.Join(root, "TestArtifactDir", "old.png")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := ArtifactDir(t)
	if want := filepath.Join(root, "TestArtifactDir"); dir != want {
		t.Errorf("ArtifactDir = %s, want %s", dir, want)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a screenshot of an earlier run survived: %v", err)
	}
}

func TestSafeName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"TestPanel", "TestPanel"},
		{"TestPanel/phone", "TestPanel_phone"},
		{"../../etc/passwd", ".._.._etc_passwd"},
		{"Dienste (de)", "Dienste__de_"},
	} {
		if got := safeName(c.in); got != c.want {
			t.Errorf("safeName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestHostsAndTyping: a name in Options.Hosts reaches the loopback server
// (another name still resolves to nothing), and Type's key presses reach
// a page's key listeners as typing, which Eval and WaitFor read back.
func TestHostsAndTyping(t *testing.T) {
	cert := selfSigned(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>pad</title><p id="host">%s</p><textarea id="t"></textarea><p id="keys">0</p>
<script>let n = 0; document.getElementById('t').addEventListener('keydown', () => { document.getElementById('keys').textContent = ++n })</script>`, r.Host)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	b := New(t, Options{SPKIHashes: []string{SPKIHash(cert.Leaf)}, Hosts: []string{"pad.node1.byzantium.mesh"}})
	if got := b.Navigate("https://pad.node1.byzantium.mesh:" + port + "/"); got != http.StatusOK {
		t.Fatalf("the mapped name: status %d", got)
	}
	if got := b.Text("#host"); got != "pad.node1.byzantium.mesh:"+port {
		t.Errorf("the server saw host %q", got)
	}
	if _, err := b.TryNavigate("https://wiki.node1.byzantium.mesh:" + port + "/"); err == nil {
		t.Error("a name not in Hosts loaded")
	}
	b.Navigate("https://pad.node1.byzantium.mesh:" + port + "/")
	Eval[bool](b, `(document.getElementById('t').focus(), true)`)
	b.Type("hello mesh")
	b.WaitFor("the typed text", `document.getElementById('t').value === 'hello mesh'`, 10*time.Second)
	if n := Eval[string](b, `document.getElementById('keys').textContent`); n != "10" {
		t.Errorf("key listeners saw %s key presses, want 10", n)
	}
}
