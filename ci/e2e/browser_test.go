package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"byzantium/ci/browser"
	"byzantium/ci/qemu"
)

// panelLayout is what every page of the panel holds to at 360 and at 1280
// px: the rules of runtime/daemon's TestPanelLayout, which renders every
// page on the host with made-up data (setup included, which a node with a
// provisioned password never shows); here the data is a node's own.
var panelLayout = browser.LayoutRules{MinChars: 8, MaxHeightPerLine: 70}

// checkLayout measures the page b shows at phone and desktop width and
// fails the test for each way it breaks panelLayout; b ends at back.
func checkLayout(t *testing.T, b *browser.Browser, name string, back browser.Viewport) {
	t.Helper()
	for _, v := range []struct {
		name string
		vp   browser.Viewport
	}{{"360", browser.Phone}, {"1280", browser.Desktop}} {
		b.SetViewport(v.vp)
		l := b.Layout()
		t.Logf("layout %s at %s px: %.0f px tall, %d lines of content (%.0f px a line), %.0f px wide",
			name, v.name, l.Height, l.Lines(), l.HeightPerLine(), l.ScrollWidth)
		for _, p := range l.Check(panelLayout) {
			t.Errorf("layout %s at %s px: %s", name, v.name, p)
		}
	}
	b.SetViewport(back)
}

// TestPanelBrowser has Debian's Chromium drive the panel of a booted
// node, pinning the node's own certificate: at phone width it logs in,
// activates the IRC module, enables its service, visits every other page
// and switches to Spanish; at desktop width, in a browser that asks for
// French, it logs in and reads the status and services pages. Every page
// is laid out without sideways scrolling, cramped values or runaway
// height at 360 and at 1280 px (checkLayout). Screenshots of each step
// are kept (out/test-artifacts/TestPanelBrowser, or $BYZ_ARTIFACTS).
func TestPanelBrowser(t *testing.T) {
	img := cloudImages(t)
	const password = "provisioned-by-the-host"
	port := freePort(t)
	opts := qemu.Options{ISO: img.iso, Forward: []string{fmt.Sprintf("%d:443", port)},
		Credentials: map[string]string{"byz.admin-password": password}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
	defer cancel()
	vm := qemu.StartT(t, qemu.Config{Options: opts, SerialLog: filepath.Join(t.TempDir(), "serial.log")})
	line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprintLine.FindStringSubmatch(line)[1]
	base := "https://localhost:" + strconv.Itoa(port)
	waitHealth(ctx, t, vm, "https://127.0.0.1:"+strconv.Itoa(port), fp)
	cert, err := peerCertificate(ctx, "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	pin := browser.SPKIHash(cert)

	// Every page works without JavaScript: there is none to run.
	c := pinnedClient(ctx, t, "https://127.0.0.1:"+strconv.Itoa(port), fp)
	for _, p := range []string{"/login", "/static/panel.css"} {
		if code, body := call(t, c, "GET", "https://127.0.0.1:"+strconv.Itoa(port)+p, nil, nil, nil); code != http.StatusOK || strings.Contains(body, "<script") {
			t.Errorf("GET %s: %d, or it carries a script", p, code)
		}
	}

	// One folder for both browsers' screenshots (ArtifactDir empties it).
	shots := browser.ArtifactDir(t)
	phone := browser.New(t, browser.Options{Viewport: browser.Phone, SPKIHashes: []string{pin}, Language: "en-US,en", ArtifactDir: shots})
	text := func(b *browser.Browser, sel, want string) {
		t.Helper()
		if got := b.Text(sel); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q (at %s)", sel, got, want, b.URL())
		}
	}
	if code := phone.Navigate(base + "/"); code != http.StatusOK || !strings.Contains(phone.URL(), "/login") {
		t.Fatalf("an anonymous browser at /: %d at %s", code, phone.URL())
	}
	text(phone, "h1", "Log in")
	phone.Screenshot("phone-1-login")
	checkLayout(t, phone, "login", browser.Phone)
	phone.SetField("#password", "not the password")
	if code := phone.Click(`form[action="/login"] button`); code != http.StatusUnauthorized {
		t.Errorf("a wrong password: %d", code)
	}
	text(phone, ".error", "Wrong password")
	phone.SetField("#password", password)
	phone.Click(`form[action="/login"] button`)
	text(phone, "h1", "Status")
	text(phone, "#persistence", "none (in memory)")
	phone.Screenshot("phone-2-status")
	checkLayout(t, phone, "status", browser.Phone)

	phone.Navigate(base + "/modules")
	phone.Click(`#mod-ngircd form[action="/modules/ngircd/activate"] button`)
	text(phone, ".notice", "The module was activated")
	phone.Screenshot("phone-3-modules")
	checkLayout(t, phone, "modules", browser.Phone)

	phone.Navigate(base + "/services")
	phone.Click(`#svc-ngircd form[action="/services/ngircd/enable"] button`)
	text(phone, ".notice", "enabled and started")
	for end := time.Now().Add(60 * time.Second); !strings.Contains(phone.Text("#svc-ngircd .state"), "running"); {
		if time.Now().After(end) {
			t.Fatalf("ngircd is %q in the panel", phone.Text("#svc-ngircd .state"))
		}
		time.Sleep(time.Second)
		phone.Navigate(base + "/services")
	}
	phone.Screenshot("phone-4-services")
	checkLayout(t, phone, "services", browser.Phone)

	// The other pages, as the node shows them.
	for i, p := range []struct{ path, name, h1 string }{
		{"/services/ngircd/logs", "service-output", "Service output"},
		{"/clone", "clone", "Clone this node"},
		{"/mesh", "mesh", "Mesh"},
		{"/settings", "settings", "Settings"},
		{"/tokens", "tokens", "API tokens"},
		{"/logs", "log", "Log"},
	} {
		if code := phone.Navigate(base + p.path); code != http.StatusOK {
			t.Errorf("GET %s: %d", p.path, code)
			continue
		}
		text(phone, "h1", p.h1)
		phone.Screenshot(fmt.Sprintf("phone-%d-%s", 5+i, p.name))
		checkLayout(t, phone, p.name, browser.Phone)
	}

	phone.Navigate(base + "/services")
	phone.Click(`footer a[hreflang="es"]`)
	text(phone, "h1", "Servicios")
	text(phone, "#svc-ngircd .state", "en marcha")
	phone.Screenshot("phone-10-services-es")
	checkLayout(t, phone, "services (es)", browser.Phone)

	desktop := browser.New(t, browser.Options{Viewport: browser.Desktop, SPKIHashes: []string{pin}, Language: "fr-FR,fr", ArtifactDir: shots})
	desktop.Navigate(base + "/login")
	text(desktop, "h1", "Connexion")
	desktop.SetField("#password", password)
	desktop.Click(`form[action="/login"] button`)
	text(desktop, "h1", "État")
	desktop.Screenshot("desktop-1-status-fr")
	checkLayout(t, desktop, "status (fr)", browser.Desktop)
	desktop.Navigate(base + "/services")
	text(desktop, "#svc-ngircd .state", "en marche")
	desktop.Screenshot("desktop-2-services-fr")
	checkLayout(t, desktop, "services (fr)", browser.Desktop)
	desktop.Navigate(base + "/modules")
	desktop.Screenshot("desktop-3-modules-fr")
	checkLayout(t, desktop, "modules (fr)", browser.Desktop)
	if blocked := phone.Blocked(); len(blocked) > 0 {
		t.Logf("requests Chromium tried beyond loopback (refused): %v", blocked)
	}
}
