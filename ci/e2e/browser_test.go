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

// TestPanelBrowser has Debian's Chromium drive the panel of a booted
// node, pinning the node's own certificate: at phone width it logs in,
// activates the IRC module, enables its service and switches to Spanish;
// at desktop width, in a browser that asks for French, it logs in and
// reads the status and services pages. Screenshots of each step are kept
// (out/test-artifacts/TestPanelBrowser, or $BYZ_ARTIFACTS).
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

	phone.Navigate(base + "/modules")
	phone.Click(`#mod-ngircd form[action="/modules/ngircd/activate"] button`)
	text(phone, ".notice", "The module was activated")
	phone.Screenshot("phone-3-modules")

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

	phone.Click(`footer a[hreflang="es"]`)
	text(phone, "h1", "Servicios")
	text(phone, "#svc-ngircd .state", "en marcha")
	phone.Screenshot("phone-5-services-es")

	desktop := browser.New(t, browser.Options{Viewport: browser.Desktop, SPKIHashes: []string{pin}, Language: "fr-FR,fr", ArtifactDir: shots})
	desktop.Navigate(base + "/login")
	text(desktop, "h1", "Connexion")
	desktop.SetField("#password", password)
	desktop.Click(`form[action="/login"] button`)
	text(desktop, "h1", "État")
	desktop.Screenshot("desktop-1-status-fr")
	desktop.Navigate(base + "/services")
	text(desktop, "#svc-ngircd .state", "en marche")
	desktop.Screenshot("desktop-2-services-fr")
	desktop.Navigate(base + "/modules")
	desktop.Screenshot("desktop-3-modules-fr")
	if blocked := phone.Blocked(); len(blocked) > 0 {
		t.Logf("requests Chromium tried beyond loopback (refused): %v", blocked)
	}
}
