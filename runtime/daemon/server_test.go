package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestRedirectHandler(t *testing.T) {
	tests := []struct {
		method, host, uri, httpsPort string
		wantCode                     int
		want                         string
	}{
		{"GET", "node1", "/", "443", 301, "https://node1/"},
		{"GET", "node1:80", "/a/b?c=d", "443", 301, "https://node1/a/b?c=d"},
		{"HEAD", "192.0.2.10:80", "/x", "8443", 301, "https://192.0.2.10:8443/x"},
		{"GET", "[2001:db8::1]:80", "/", "443", 301, "https://[2001:db8::1]/"},
		{"GET", "[2001:db8::1]", "/", "8443", 301, "https://[2001:db8::1]:8443/"},
		{"POST", "node1", "/api/v1/x", "443", 405, ""},
		{"PUT", "node1:80", "/api/v1/settings", "8443", 405, ""},
		{"DELETE", "node1", "/api/v1/tokens/x", "443", 405, ""},
		{"OPTIONS", "node1", "/", "443", 405, ""},
		{"GET", "node1", "//evil.example/", "443", 301, "https://node1//evil.example/"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.host+tt.uri, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://"+tt.host+tt.uri, nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			RedirectHandler(tt.httpsPort).ServeHTTP(w, r)
			if w.Code != tt.wantCode || w.Header().Get("Location") != tt.want {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Header().Get("Location"), tt.wantCode, tt.want)
			}
			if tt.wantCode == http.StatusMethodNotAllowed && (!strings.Contains(w.Body.String(), "use https://node1") ||
				!strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") || w.Header().Get("Allow") != "GET, HEAD") {
				t.Errorf("refusal: %q, Content-Type %q, Allow %q", w.Body, w.Header().Get("Content-Type"), w.Header().Get("Allow"))
			}
		})
	}
}

// TestHealthzRoutes: /healthz answers GET and HEAD to anyone, with the
// security headers, and the body is the status alone.
func TestHealthzRoutes(t *testing.T) {
	tw := newTestWeb(t)
	for _, tt := range []struct {
		method string
		code   int
	}{{"GET", 200}, {"HEAD", 200}, {"POST", http.StatusMethodNotAllowed}} {
		w := httptest.NewRecorder()
		tw.h.ServeHTTP(w, httptest.NewRequest(tt.method, "https://n/healthz", nil))
		if w.Code != tt.code {
			t.Errorf("%s /healthz = %d, want %d", tt.method, w.Code, tt.code)
		}
		if w.Header().Get("Strict-Transport-Security") == "" {
			t.Errorf("%s /healthz: no HSTS header", tt.method)
		}
		if tt.method == "GET" && w.Body.String() != `{"status":"ok","mesh":"alone"}`+"\n" {
			t.Errorf("GET /healthz: %q, want the status and the mesh word alone", w.Body)
		}
	}
}

func TestLoadedModules(t *testing.T) {
	root := t.TempDir()
	writeManifests(t, root, map[string]string{
		"zz-tools.json": `{"name":"tools"}`,
		"base.json":     `{"name":"base","version":"1"}`,
		"broken.json":   `{"name":`,
		"README":        "not a manifest",
	})
	var logs bytes.Buffer
	got, err := LoadedModules(root, NewConsoleLogger(&logs, "byzd: ", nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"base", "tools"}; !slices.Equal(got, want) {
		t.Errorf("LoadedModules = %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), "byzd: WARN skipping module manifest file=") || !strings.Contains(logs.String(), "broken.json") {
		t.Errorf("bad manifest not logged:\n%s", logs.String())
	}
	if got, err := LoadedModules(t.TempDir(), nil); err != nil || len(got) != 0 {
		t.Errorf("no manifest directory: %q, %v; want none, no error", got, err)
	}
}

func TestConsoleLogger(t *testing.T) {
	var b bytes.Buffer
	log := NewConsoleLogger(&b, "byzd: ", nil).With("iface", "eth0")
	log.Info("DHCP lease", "addr", "192.0.2.10/24")
	log.Warn("renewal failed", "err", errors.New("i/o timeout"), slog.Group("g", "k", ""))
	log.Debug("hidden")
	want := "byzd: DHCP lease iface=eth0 addr=192.0.2.10/24\n" +
		"byzd: WARN renewal failed iface=eth0 err=\"i/o timeout\" g.k=\"\"\n"
	if b.String() != want {
		t.Errorf("log =\n%s\nwant\n%s", b.String(), want)
	}
}
