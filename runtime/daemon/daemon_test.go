package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/runtime/auth"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/tlscert"
)

// syncBuffer is a log sink the test reads while the daemon writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is one daemon started by startDaemon.
type running struct {
	https, http string // host:port
	log         *syncBuffer
	stop        func() error
}

// startDaemon runs Run on loopback ports chosen by the kernel and returns
// once both listeners are open; opts change the configuration.
func startDaemon(t *testing.T, stateDir, rootDir string, opts ...func(*Config)) *running {
	t.Helper()
	r := &running{log: &syncBuffer{}}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := Config{
		StateDir: stateDir, RootDir: rootDir, NodeName: "node1", Version: "1.2.3",
		HTTPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Socket: filepath.Join(stateDir, "byzd.sock"),
		Logger: NewConsoleLogger(r.log, "byzd: ", nil),
		Ready: func(https, http net.Addr) {
			r.https, r.http = https.String(), http.String()
			close(ready)
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	go func() { done <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v\nlog:\n%s", err, r.log)
	}
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				stopErr = fmt.Errorf("Run did not return 10s after cancel")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { r.stop() })
	return r
}

var fingerprintLine = regexp.MustCompile(`(?m)^byzd: TLS certificate sha256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})$`)

func (r *running) fingerprint(t *testing.T) string {
	t.Helper()
	m := fingerprintLine.FindStringSubmatch(r.log.String())
	if m == nil {
		t.Fatalf("no fingerprint line in the log:\n%s", r.log)
	}
	return m[1]
}

// client trusts only the certificate in stateDir and dials the daemon
// whatever host name the URL carries, so SAN checks see that name.
func client(t *testing.T, stateDir, addr string, maxVersion uint16) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(stateDir, "tls", tlscert.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("cert.pem holds no certificate")
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: maxVersion},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func writeManifests(t *testing.T, root string, files map[string]string) {
	t.Helper()
	dir := filepath.Join(root, "usr/share/byzantium/modules")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// nodeID reads the node's identity from its state folder.
func nodeID(t *testing.T, state string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestHealthz: /healthz answers over TLS at every name the certificate
// covers, with the security headers, and tells nothing about the node.
func TestHealthz(t *testing.T) {
	state, root := t.TempDir(), t.TempDir()
	writeManifests(t, root, map[string]string{
		"base.json":   `{"name":"base","version":"1"}`,
		"ngircd.json": `{"name":"ngircd","depends":["base"]}`,
	})
	d := startDaemon(t, state, root)
	fp := d.fingerprint(t)

	// Every name the certificate must cover, reached over TLS with that
	// certificate as the only root.
	for _, host := range []string{"127.0.0.1", "localhost", "node1", "node1.local"} {
		t.Run(host, func(t *testing.T) {
			resp, err := client(t, state, d.https, 0).Get("https://" + host + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := tlscert.Fingerprint(resp.TLS.PeerCertificates[0].Raw); got != fp {
				t.Errorf("served certificate %s, logged %s", got, fp)
			}
			for k, want := range map[string]string{
				"Content-Type":              "application/json",
				"Strict-Transport-Security": "max-age=63072000",
				"X-Content-Type-Options":    "nosniff",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			// Public: nothing that tells this node from another.
			if string(body) != `{"status":"ok","mesh":"alone"}`+"\n" {
				t.Errorf("healthz = %s, want the status and the mesh word alone", body)
			}
			for _, secret := range []string{"node1", "1.2.3", "ngircd", nodeID(t, state), fp} {
				if strings.Contains(string(body), secret) {
					t.Errorf("healthz tells anyone %q: %s", secret, body)
				}
			}
		})
	}
	// What it used to tell is behind a login: the HTTPS API refuses an
	// anonymous caller, the root-only socket (and a logged-in caller)
	// gets it.
	resp, err := client(t, state, d.https, 0).Get("https://localhost/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous /api/v1/status: %s", resp.Status)
	}
	var st nodeapi.Status
	sock := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(state, "byzd.sock"))
	}}}
	resp, err = sock.Get("http://byzd/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Node != "node1" || st.Version != "1.2.3" || st.NodeID != nodeID(t, state) || st.TLSFingerprint != fp || !slices.Equal(st.Modules, []string{"base", "ngircd"}) {
		t.Errorf("/api/v1/status on the socket: %+v", st)
	}
	if err := d.stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	if !strings.Contains(d.log.String(), "byzd: shutting down\n") {
		t.Errorf("no shutdown line in the log:\n%s", d.log)
	}
}

// TestFailedLoginsSummed: 1000 wrong passwords through the API of a
// running daemon add at most two lines to its log (the serial console on
// a node): the first failure at once, the rest summed up once a minute.
// The handlers used to log every one at WARN.
func TestFailedLoginsSummed(t *testing.T) {
	state, root := t.TempDir(), t.TempDir()
	cred := filepath.Join(root, auth.CredentialsDir, auth.CredPasswordHash)
	if err := os.MkdirAll(filepath.Dir(cred), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cred, []byte(auth.HashPassword("long enough pass", auth.HashParams{Time: 1, Memory: 64, Threads: 1})), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, state, root)
	d.fingerprint(t) // the daemon is up and has logged its start
	c := client(t, state, d.https, 0)
	before := strings.Count(d.log.String(), "\n")
	for i := 0; i < 1000; i++ {
		resp, err := c.Post("https://localhost/api/v1/login", "application/json", strings.NewReader(`{"password":"a guess"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("wrong password %d: %d", i, resp.StatusCode)
		}
	}
	log := d.log.String()
	if added := strings.Count(log, "\n") - before; added < 1 || added > 2 || !strings.Contains(log, "failed login") {
		t.Errorf("1000 failed logins added %d lines to the log, want 1 or 2 (the first at once):\n%s", added, log)
	}
}

// TestCertificateAcrossRestarts: the same certificate after a restart, a
// new one (with a warning) after the key is damaged.
func TestCertificateAcrossRestarts(t *testing.T) {
	state := t.TempDir()
	first := startDaemon(t, state, t.TempDir())
	fp1 := first.fingerprint(t)
	first.stop()

	second := startDaemon(t, state, t.TempDir())
	if fp2 := second.fingerprint(t); fp2 != fp1 {
		t.Errorf("after restart fingerprint %s, want %s", fp2, fp1)
	}
	second.stop()

	if err := os.WriteFile(filepath.Join(state, "tls", tlscert.KeyFile), []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	third := startDaemon(t, state, t.TempDir())
	if fp3 := third.fingerprint(t); fp3 == fp1 {
		t.Error("damaged key: certificate reused, want a new one")
	}
	if !strings.Contains(third.log.String(), "byzd: WARN TLS certificate unusable") {
		t.Errorf("damaged key: no warning in the log:\n%s", third.log)
	}
	resp, err := client(t, state, third.https, 0).Get("https://localhost/healthz")
	if err != nil {
		t.Fatalf("new certificate does not verify: %v", err)
	}
	resp.Body.Close()
}

// TestTLSVersions: 1.0 and 1.1 are refused at the handshake.
func TestTLSVersions(t *testing.T) {
	state := t.TempDir()
	d := startDaemon(t, state, t.TempDir())
	tests := []struct {
		name    string
		max     uint16
		wantErr bool
	}{
		{"TLS 1.0", tls.VersionTLS10, true},
		{"TLS 1.1", tls.VersionTLS11, true},
		{"TLS 1.2", tls.VersionTLS12, false},
		{"TLS 1.3", tls.VersionTLS13, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client(t, state, d.https, tt.max).Get("https://localhost/healthz")
			if err == nil {
				resp.Body.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("GET with MaxVersion %s: err = %v, want error %v", tt.name, err, tt.wantErr)
			}
		})
	}
}

// TestTLS12Suites: a real TLS 1.2 client offering only CBC suites (or
// static RSA key exchange) fails the handshake; each suite byzd keeps
// (ECDHE with an AEAD) that fits its key works. Every suite Go knows is
// tried alone.
func TestTLS12Suites(t *testing.T) {
	state := t.TempDir()
	d := startDaemon(t, state, t.TempDir())
	var all []*tls.CipherSuite
	all = append(all, tls.CipherSuites()...)
	all = append(all, tls.InsecureCipherSuites()...)
	worked := 0
	var cbc []uint16
	for _, cs := range all {
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		if strings.Contains(cs.Name, "_CBC_") {
			cbc = append(cbc, cs.ID)
		}
		conn, err := tls.Dial("tcp", d.https, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}})
		if err == nil {
			conn.Close()
			worked++
		}
		kept := slices.Contains(tls12Suites, cs.ID)
		if err == nil && !kept {
			t.Errorf("%s: the handshake succeeded", cs.Name)
		}
		if err != nil && kept && (strings.Contains(cs.Name, "ECDSA") == strings.Contains(d.keyType(t), "ECDSA")) {
			t.Errorf("%s: %v", cs.Name, err)
		}
	}
	if worked == 0 {
		t.Error("no TLS 1.2 suite works")
	}
	if len(cbc) < 4 {
		t.Fatalf("only %d CBC suites to try", len(cbc))
	}
	conn, err := tls.Dial("tcp", d.https, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: cbc})
	if err == nil {
		t.Errorf("a client offering only the %d CBC suites got %s", len(cbc), tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
		conn.Close()
	}
}

// keyType names the certificate's public key algorithm ("ECDSA", "RSA").
func (r *running) keyType(t *testing.T) string {
	t.Helper()
	conn, err := tls.Dial("tcp", r.https, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm.String()
}

// TestHTTPRedirect checks the exact Location the live HTTP listener sends.
func TestHTTPRedirect(t *testing.T) {
	state := t.TempDir()
	d := startDaemon(t, state, t.TempDir())
	_, port, _ := net.SplitHostPort(d.https)
	resp, err := client(t, state, d.http, 0).Get("http://node1.local:80/status?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://node1.local:" + port + "/status?x=1"
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Errorf("redirect = %d %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// TestColdplugRunsWhileServing: Config.Coldplug runs once the listeners
// serve, beside them: a request made from inside it is answered.
func TestColdplugRunsWhileServing(t *testing.T) {
	var plain string
	ready := make(chan struct{})
	result := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			StateDir: t.TempDir(), RootDir: t.TempDir(), HTTPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Socket: "-",
			Ready: func(_, http net.Addr) { plain = http.String(); close(ready) },
			Coldplug: func(*slog.Logger) {
				<-ready
				c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				resp, err := c.Get("http://" + plain + "/healthz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusMovedPermanently && resp.StatusCode != http.StatusPermanentRedirect {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				result <- err
			},
		})
	}()
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("a request from inside Coldplug: %v", err)
		}
	case err := <-done:
		t.Fatalf("Run returned before Coldplug ran: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Coldplug was not called")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestReadPersistence(t *testing.T) {
	root := t.TempDir()
	if p := ReadPersistence(root); p != nil {
		t.Errorf("no report: %+v, want nil", p)
	}
	for _, d := range []string{"run/byzantium", "run/byz/rw"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	report := `{"mode":"ram","store":"byzantium/changes/save.dat","encrypted":true,"warning":"wrong passphrase"}`
	if err := os.WriteFile(filepath.Join(root, "run/byzantium/persistence.json"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	p := ReadPersistence(root)
	if p == nil || p.Mode != "ram" || !p.Encrypted || p.Warning != "wrong passphrase" || p.SizeBytes == 0 || p.FreeBytes > p.SizeBytes {
		t.Errorf("ReadPersistence = %+v", p)
	}
}
