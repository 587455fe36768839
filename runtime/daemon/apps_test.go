package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"byzantium/ci/servicetest"
	"byzantium/modules/manifest"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/sandbox"
	"byzantium/runtime/service"
)

func TestMain(m *testing.M) {
	// The services' sandboxes start as this test binary (Manager.Self).
	if len(os.Args) > 1 && os.Args[1] == sandbox.Arg {
		sandbox.Main()
	}
	os.Exit(m.Run())
}

// TestWebApps: byzd as the front of a web app that a module declares, on
// a fake node with the real manager and sandbox. The app's name routes
// to it and nowhere else; off, it gets the front's page; the node's start
// page and the API list it once it is on, with its name under the node's;
// the panel's cookie never reaches it; the panel stays on the node's own
// name.
func TestWebApps(t *testing.T) {
	n := servicetest.NewNode(t)
	port := freeTCPPort(t)
	notes := manifest.Service{Name: "notes", Command: []string{"/bin/busybox", "sh", "-c",
		"mkdir -p /var/lib/notes/www/cgi-bin && echo 'water at the school' > /var/lib/notes/www/index.html && " +
			"printf '#!/bin/busybox sh\\necho Content-Type: text/plain\\necho\\necho \"cookie=$HTTP_COOKIE\"\\n' > /var/lib/notes/www/cgi-bin/env && " +
			"chmod +x /var/lib/notes/www/cgi-bin/env && exec /bin/busybox httpd -f -p 127.0.0.1:" + fmt.Sprint(port) + " -h /var/lib/notes/www"},
		Limits: manifest.Limits{Processes: 8},
		Web:    &manifest.Web{Title: "Notes", Addr: fmt.Sprintf("127.0.0.1:%d", port), Publish: true}}
	n.Module(t, "optional", "020-notes.xzm", manifest.Manifest{Name: "notes", Services: []manifest.Service{notes}}, map[string]string{})

	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	self, _ := os.Executable()
	m := &service.Manager{Root: n.Root, StateDir: n.State, Self: self, Node: func() string { return "node1" }, Log: log}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		m.Wait()
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	tw := newTestWeb(t)
	tw.Services = m
	tw.apps = newApps(m, tw.h, func() string { return tw.Settings.Get().NodeName }, log)
	srv := httptest.NewTLSServer(tw.apps.front)
	defer srv.Close()
	go tw.apps.watch(ctx)

	get := func(host, path string, cookie *http.Cookie) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		req.Header.Set("Accept", "text/html")
		if cookie != nil {
			req.AddCookie(cookie)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	listed := func() []nodeapi.WebApp {
		t.Helper()
		_, body := get("node1", nodeapi.AppsPath, nil)
		var list []nodeapi.WebApp
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("%s: %v: %s", nodeapi.AppsPath, err, body)
		}
		return list
	}
	const host = "notes.node1." + nodeapi.AppDomain

	// Off: the front's page, not a proxy error; not on the start page.
	if code, body := get(host, "/", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "Notes") {
		t.Errorf("the app while off: %d %.300s", code, body)
	}
	if l := listed(); len(l) != 0 {
		t.Errorf("published apps while off: %+v", l)
	}
	if apps := tw.apps.infos(false); len(apps) != 1 || apps[0].State != "off" || apps[0].URL != "https://"+host+"/" {
		t.Errorf("every app while off: %+v", apps)
	}

	if _, err := m.Activate("notes"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Enable("notes"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(host, "/", nil)
		if code == http.StatusOK && strings.TrimSpace(body) == "water at the school" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app never answered through the front: %d %.300s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		l := listed()
		if len(l) == 1 && l[0].State == "running" && l[0].Title == "Notes" && l[0].Host == host && l[0].MemoryBytes == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the start page's list: %+v", l)
		}
	}
	if _, body := get("node1", "/apps", nil); !strings.Contains(body, `href="https://`+host+`/"`) {
		t.Errorf("the start page has no link to the app:\n%.2000s", body)
	}
	// The panel's session cookie stays with the panel; the app's own do
	// not.
	code, body := get(host, "/cgi-bin/env", &http.Cookie{Name: sessionCookie, Value: "secret-session"})
	if code != http.StatusOK || strings.Contains(body, "secret-session") {
		t.Errorf("the app saw the panel's cookie: %d %q", code, body)
	}
	// The app's name reaches the app alone: the panel is not on it, and
	// the panel is still on the node's name.
	if code, body := get(host, "/healthz", nil); code != http.StatusNotFound || strings.Contains(body, `"status"`) {
		t.Errorf("the panel's /healthz on the app's name: %d %q", code, body)
	}
	if code, body := get("node1", "/healthz", nil); code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("the panel on the node's name: %d %q", code, body)
	}
	// The services list says which service is a web app.
	var found bool
	for _, s := range tw.services() {
		if s.Name == "notes" {
			found = s.Web != nil && s.Web.Host == host && s.Web.State == "running"
		}
	}
	if !found {
		t.Errorf("the services list does not show the web app: %+v", tw.services())
	}

	// Renamed, the node serves the app under its new name only.
	s := tw.Settings.Get()
	s.NodeName = "node2"
	if err := tw.Settings.Set(s); err != nil {
		t.Fatal(err)
	}
	newHost := "notes.node2." + nodeapi.AppDomain
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if code, body := get(newHost, "/", nil); code == http.StatusOK && strings.Contains(body, "water") {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the app is not served under the node's new name")
		}
	}
	if code, body := get(host, "/", nil); code == http.StatusOK && strings.Contains(body, "water") {
		t.Errorf("the app is still served under the node's old name")
	}

	// Disabled, its name gets the front's page again.
	if _, err := m.Disable("notes"); err != nil {
		t.Fatal(err)
	}
	if code, body := get(newHost, "/", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "Notes") {
		t.Errorf("the app after it was disabled: %d %.300s", code, body)
	}
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
