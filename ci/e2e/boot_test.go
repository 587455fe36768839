package e2e_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/ci/qemu"
	"byzantium/runtime/auth"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/tlscert"
)

// bootTimeout bounds one boot to /healthz: TCG on a shared two-core
// machine, with OVMF and Secure Boot the slowest (about 11 s alone, much
// more when the machine is busy).
const bootTimeout = 180 * time.Second

var fingerprintLine = regexp.MustCompile(`byzd: TLS certificate sha256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})`)

// health is byzd's GET /healthz body: public, it is the status and
// whether the node joined a mesh ("joined" or "alone"). What it used to
// tell (name, version, modules, node id, persistence) is behind a login,
// in GET /api/v1/status (nodeStatus).
type health struct {
	Status string `json:"status"`
	Mesh   string `json:"mesh"`
}

// e2ePassword is the admin password the tests give a node from the VM
// host, as a credential, to read its status through the API.
const e2ePassword = "provisioned-by-the-host"

var (
	e2eHashOnce sync.Once
	e2eHash     string
)

// withCredential returns opts with the admin password's hash as a
// credential, unless opts has credentials of its own. The hash, made here
// once, spares byzd hashing at boot, which the boot benchmarks would count.
func withCredential(opts qemu.Options) qemu.Options {
	if opts.Credentials != nil {
		return opts
	}
	e2eHashOnce.Do(func() { e2eHash = auth.HashPassword(e2ePassword, auth.DefaultHash) })
	opts.Credentials = map[string]string{auth.CredPasswordHash: e2eHash}
	return opts
}

// nodeStatus logs in to the node at base (pinned to the certificate fp)
// with password and returns GET /api/v1/status.
func nodeStatus(ctx context.Context, t testing.TB, base, fp, password string) nodeapi.Status {
	t.Helper()
	n := &liveNode{base: base, fp: fp, c: pinnedClient(ctx, t, base, fp)}
	var st nodeapi.Status
	if code, body := call(t, n.c, "GET", base+"/api/v1/status", nil, n.login(t, password), &st); code != http.StatusOK {
		t.Fatalf("GET /api/v1/status: %d %s", code, body)
	}
	return st
}

// TestBootMatrix boots the test spec's outputs every way a node boots
// and asks each for /healthz over HTTPS. The boots run one after the
// other: each takes a core, and the machine has two.
func TestBootMatrix(t *testing.T) {
	img := cloudImages(t)
	t.Logf("cloud build: %v", img.buildTime.Round(time.Millisecond))
	for _, tc := range []struct {
		name   string
		opts   func() qemu.Options
		expect []string // console lines to see, in order, before byzd's
	}{
		// SeaBIOS → El Torito BIOS entry → isolinux.
		{"bios-cd", func() qemu.Options { return qemu.Options{ISO: img.iso} }, nil},
		// SeaBIOS → the ISO's isohybrid MBR → isolinux.
		{"bios-disk", func() qemu.Options { return qemu.Options{Disk: scratchCopy(t, img.iso)} }, nil},
		// SeaBIOS → the USB image's protective MBR (GRUB's boot.img) →
		// the core image in the BIOS boot partition → boot/grub/grub.cfg.
		// The image holds no other BIOS boot code, so a boot proves it.
		{"bios-usbimg-disk", func() qemu.Options { return qemu.Options{Disk: scratchCopy(t, img.usb)} }, nil},
		// OVMF → El Torito EFI image → shim → gcdx64 → grub.cfg.
		{"uefi-cd", func() qemu.Options { return qemu.Options{ISO: img.iso, UEFI: true} }, nil},
		// OVMF → the GPT's ESP → shim → grubx64 → EFI/debian/grub.cfg.
		{"uefi-disk", func() qemu.Options { return qemu.Options{Disk: scratchCopy(t, img.usb), UEFI: true} }, nil},
		// The same with Microsoft's keys enrolled and Secure Boot on:
		// the signed chain must hold up to the kernel and its modules.
		{"uefi-secureboot-disk", func() qemu.Options { return qemu.Options{Disk: scratchCopy(t, img.usb), SecureBoot: true} },
			[]string{"Secure boot enabled"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := bootToHealthz(t, tc.opts(), img.node, tc.expect...)
			t.Logf("%s: power-on to /healthz in %v", tc.name, d.Round(100*time.Millisecond))
		})
	}
}

// TestBootUSBStickGeneric boots the default node's USB image, built with
// the generic kernel (the cloud kernel has no usb-storage) and the spec's
// own console setting, as a usb-storage stick on an xHCI controller,
// under UEFI and under a BIOS; both pass its locked boot menus. Under the
// BIOS it also checks that setting: the serial console asks for the admin
// password and runs nothing typed before it (checkConsoleLogin).
func TestBootUSBStickGeneric(t *testing.T) {
	img := genericStockImages(t)
	t.Logf("generic build: %v", img.buildTime.Round(time.Millisecond))
	for _, tc := range []struct {
		name    string
		uefi    bool
		expect  []string
		console bool
	}{
		{"uefi", true, []string{"byz-init: media: /dev/sd"}, false},
		{"bios", false, []string{"byz-init: media: /dev/sd"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// bootToHealthzVM gives the node e2ePassword as a credential.
			opts := qemu.Options{Disk: scratchCopy(t, img.usb), DiskAs: qemu.USB, UEFI: tc.uefi}
			d, vm := bootToHealthzVM(t, opts, img.node, tc.expect...)
			t.Logf("usb-generic-%s: power-on to /healthz in %v", tc.name, d.Round(100*time.Millisecond))
			if tc.console {
				checkConsoleLogin(t, vm, img.node, e2ePassword)
			}
		})
	}
}

// checkConsoleLogin: on a node built with the default console setting
// (console: {shell: login}), what is typed on the serial port goes to a
// password prompt, not to a shell: a command is refused as a wrong
// password and never runs; the admin password opens a root shell.
func checkConsoleLogin(t *testing.T, vm *qemu.VM, node, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	// byz console asked when init started it, before byzd served: what
	// is typed now is the answer.
	if err := vm.Type("echo shell-$((40+2))\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "byz console: wrong password"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "byz console: "+node+": type the node's admin password"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type(password + "\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "byz console: password accepted"); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type("echo shell-$((40+3))\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, "shell-43"); err != nil {
		t.Fatal(err)
	}
	for _, l := range vm.Tail(400) {
		if strings.Contains(l, "shell-42") {
			t.Errorf("a command typed at the password prompt ran: %q", l)
		}
	}
}

// scratchCopy copies an image for one VM: QEMU attaches disks writable,
// and the next boot must see the image as built.
func scratchCopy(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := copySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// copySparse copies a file, leaving holes where src has zero blocks: the
// USB images are mostly free space.
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if !allZero(buf[:n]) {
				if _, werr := out.WriteAt(buf[:n], off); werr != nil {
					out.Close()
					return werr
				}
			}
			off += int64(n)
		}
		if err != nil {
			break
		}
	}
	if err := out.Truncate(st.Size()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// freePort returns a loopback TCP port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bootToHealthz boots opts with HTTPS and HTTP forwarded to loopback
// ports, waits for the expect lines and byzd's certificate fingerprint
// on the console, then polls /healthz until it answers. It checks the
// certificate against the fingerprint, the answer, the node's status
// through the API (logged in with the credential it boots with), and the
// HTTP redirect, and returns the time from QEMU's start to the first
// answer.
func bootToHealthz(t testing.TB, opts qemu.Options, node string, expect ...string) time.Duration {
	t.Helper()
	took, _ := bootToHealthzVM(t, opts, node, expect...)
	return took
}

// bootToHealthzVM is bootToHealthz, and returns the VM too, which runs
// until the test ends.
func bootToHealthzVM(t testing.TB, opts qemu.Options, node string, expect ...string) (time.Duration, *qemu.VM) {
	t.Helper()
	httpsPort, httpPort := freePort(t), freePort(t)
	opts.Forward = []string{fmt.Sprintf("%d:443", httpsPort), fmt.Sprintf("%d:80", httpPort)}
	opts = withCredential(opts)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	serial := filepath.Join(t.TempDir(), "serial.log")
	start := time.Now()
	vm := qemu.StartT(t, qemu.Config{Options: opts, SerialLog: serial})
	for _, e := range expect {
		if _, err := vm.Expect(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// byz-init loads the NIC's driver before it switches root (byzd's
	// DHCP needs it); byzd loads the other devices' drivers once it
	// serves (checked below).
	line, err := vm.Expect(ctx, "byz-init: coldplug: network drivers:")
	if err != nil {
		t.Fatal(err)
	}
	if m := loadedCount.FindStringSubmatch(line); m == nil || m[1] == "0" {
		t.Errorf("byz-init loaded no network driver: %q", line)
	}
	line, err = vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	m := fingerprintLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("cannot read the fingerprint in %q", line)
	}
	fp := m[1]
	// Asking before byzd listens costs a failed attempt and a pause.
	if _, err := vm.Expect(ctx, "byzd: serving"); err != nil {
		t.Fatal(err)
	}
	serving := time.Since(start)

	base := "https://127.0.0.1:" + strconv.Itoa(httpsPort)
	h := waitHealth(ctx, t, vm, base, fp)
	took := time.Since(start)
	t.Logf("power-on to byzd serving %v, to /healthz answering %v", serving.Round(10*time.Millisecond), took.Round(10*time.Millisecond))
	if h.Status != "ok" {
		t.Errorf("/healthz status %q, want ok", h.Status)
	}
	// Anyone may ask /healthz: it names nothing, and says only its status
	// and whether the node joined a mesh (one word); a login tells the
	// rest.
	var public map[string]any
	code, body := call(t, pinnedClient(ctx, t, base, fp), "GET", base+"/healthz", nil, nil, &public)
	if mesh := public["mesh"]; code != http.StatusOK || len(public) != 2 || public["status"] != "ok" || (mesh != "joined" && mesh != "alone") {
		t.Errorf("/healthz tells more than its status and the mesh's word: %d %s", code, body)
	}
	st := nodeStatus(ctx, t, base, fp, e2ePassword)
	if st.Node != node {
		t.Errorf("/api/v1/status node %q, want %q", st.Node, node)
	}
	if st.Version != "e2e" {
		t.Errorf("/api/v1/status version %q, want e2e (the byzd this test built)", st.Version)
	}
	if st.TLSFingerprint != fp {
		t.Errorf("/api/v1/status fingerprint %q, the console's %q", st.TLSFingerprint, fp)
	}
	for _, want := range []string{"busybox", "runtime"} {
		if !slices.Contains(st.Modules, want) {
			t.Errorf("/api/v1/status modules %q lack %s", st.Modules, want)
		}
	}
	checkRedirect(ctx, t, httpPort)
	line, err = vm.Expect(ctx, "byzd: coldplug: drivers for the machine's devices")
	if err != nil {
		t.Fatal(err)
	}
	if m := byzdLoaded.FindStringSubmatch(line); m == nil || m[1] == "0" {
		t.Errorf("byzd's coldplug loaded no driver: %q", line)
	}
	return took, vm
}

var (
	loadedCount = regexp.MustCompile(`network drivers: (\d+) modules loaded`)
	byzdLoaded  = regexp.MustCompile(` loaded=(\d+) `)
)

// waitHealth asks base for /healthz every 100 ms until it answers (the
// port forward may take a moment after byzd says it serves), failing t
// with the console's last lines when ctx ends first.
func waitHealth(ctx context.Context, t testing.TB, vm *qemu.VM, base, fp string) health {
	t.Helper()
	for {
		h, err := getHealth(ctx, base, fp)
		if err == nil {
			return h
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s/healthz: %v; the console said:\n  %s", base, err, strings.Join(vm.Tail(qemu.TailLines), "\n  "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// getHealth fetches /healthz, trusting exactly the certificate whose
// fingerprint byzd printed: a first handshake fails verification (the
// certificate is self-signed) and yields the certificate; if its
// fingerprint is the console's, it becomes the one root of a normal,
// verifying client.
func getHealth(ctx context.Context, base, fingerprint string) (health, error) {
	var h health
	cert, err := peerCertificate(ctx, strings.TrimPrefix(base, "https://"))
	if err != nil {
		return h, err
	}
	if got := tlscert.Fingerprint(cert.Raw); got != fingerprint {
		return h, fmt.Errorf("the node presents a certificate with fingerprint %s, but byzd printed %s", got, fingerprint)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	// Short: an attempt made just before byzd listens can hang at QEMU's
	// port forward, and a long wait there would be counted as boot time.
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		// "localhost" is among the certificate's names; the address it
		// is reached at (a forwarded loopback port) is not.
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
	}}
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/healthz", nil)
	if err != nil {
		return h, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("status %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return h, fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// peerCertificate returns the certificate the server at addr presents.
// The handshake verifies it against the system roots, which fails for a
// self-signed one; the error carries the certificate.
func peerCertificate(ctx context.Context, addr string) (*x509.Certificate, error) {
	d := tls.Dialer{Config: &tls.Config{ServerName: "localhost"}}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err == nil {
		// Trusted by the system roots: not the node's own certificate.
		cs := conn.(*tls.Conn).ConnectionState()
		conn.Close()
		return cs.PeerCertificates[0], nil
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) && len(ve.UnverifiedCertificates) > 0 {
		return ve.UnverifiedCertificates[0], nil
	}
	return nil, err
}

// checkRedirect asks byzd's plain HTTP port for /healthz and wants a
// permanent redirect to HTTPS; a POST there is refused (405), telling to
// use https://, rather than redirected.
func checkRedirect(ctx context.Context, t testing.TB, port int) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/healthz", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("HTTP :80: %v", err)
		return
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "https://") {
		t.Errorf("HTTP :80 /healthz: %s, Location %q; want 301 to https://", resp.Status, loc)
	}
	req, err = http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("http://127.0.0.1:%d/api/v1/login", port), strings.NewReader(`{"password":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = c.Do(req)
	if err != nil {
		t.Errorf("HTTP :80 POST: %v", err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Location") != "" || !strings.Contains(string(b), "use https://") {
		t.Errorf("HTTP :80 POST /api/v1/login: %s, Location %q, %q; want 405 saying to use https://", resp.Status, resp.Header.Get("Location"), b)
	}
}
