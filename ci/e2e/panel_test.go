package e2e_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"byzantium/ci/qemu"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/tlscert"
)

// pinnedClient is an HTTPS client that trusts exactly the certificate
// whose fingerprint byzd printed, keeps cookies and does not follow
// redirects (tests look at them).
func pinnedClient(ctx context.Context, t testing.TB, base, fp string) *http.Client {
	t.Helper()
	cert, err := peerCertificate(ctx, strings.TrimPrefix(base, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tlscert.Fingerprint(cert.Raw); got != fp {
		t.Fatalf("the node presents a certificate with fingerprint %s, but byzd printed %s", got, fp)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	jar, _ := cookiejar.New(nil)
	return &http.Client{Timeout: 30 * time.Second, Jar: jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, MaxIdleConnsPerHost: 8},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// call makes one request and decodes a JSON answer into out (if given).
func call(t testing.TB, c *http.Client, method, u string, body io.Reader, hdr map[string]string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

var setupCodeLine = regexp.MustCompile(`claim it with setup code ([a-z0-9]{5}-[a-z0-9]{5})`)

// TestPanelLogin boots the test ISO twice. With a credential from the VM
// host (SMBIOS type 11) the node has an admin password at once: the API
// logs in with it and reports the node's status, and the panel sends an
// anonymous browser to its login page. Without one, the console shows a
// setup code, and the setup page claims the node with it (and not with a
// wrong one).
func TestPanelLogin(t *testing.T) {
	img := cloudImages(t)
	const password = "provisioned-by-the-host"
	for _, provisioned := range []bool{true, false} {
		t.Run(map[bool]string{true: "credential", false: "setup-code"}[provisioned], func(t *testing.T) {
			port := freePort(t)
			opts := qemu.Options{ISO: img.iso, Forward: []string{fmt.Sprintf("%d:443", port)}}
			if provisioned {
				opts.Credentials = map[string]string{"byz.admin-password": password}
			}
			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			defer cancel()
			vm := qemu.StartT(t, qemu.Config{Options: opts, SerialLog: filepath.Join(t.TempDir(), "serial.log")})
			var code string
			if provisioned {
				if _, err := vm.Expect(ctx, "byzd: admin password provisioned from a credential source=smbios"); err != nil {
					t.Fatal(err)
				}
			} else {
				line, err := vm.Expect(ctx, "claim it with setup code")
				if err != nil {
					t.Fatal(err)
				}
				code = setupCodeLine.FindStringSubmatch(line)[1]
			}
			line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
			if err != nil {
				t.Fatal(err)
			}
			fp := fingerprintLine.FindStringSubmatch(line)[1]
			base := "https://127.0.0.1:" + strconv.Itoa(port)
			waitHealth(ctx, t, vm, base, fp)
			c := pinnedClient(ctx, t, base, fp)

			if code, _ := call(t, c, "GET", base+"/api/v1/status", nil, nil, nil); code != http.StatusUnauthorized {
				t.Errorf("anonymous API status: %d", code)
			}
			if code, _ := call(t, c, "GET", base+"/settings", nil, nil, nil); code != http.StatusSeeOther {
				t.Errorf("anonymous panel page: %d", code)
			}
			if provisioned {
				var login nodeapi.LoginResult
				if code, body := call(t, c, "POST", base+"/api/v1/login", strings.NewReader(`{"password":"`+password+`"}`), nil, &login); code != http.StatusOK {
					t.Fatalf("API login: %d %s", code, body)
				}
				var st nodeapi.Status
				if code, body := call(t, c, "GET", base+"/api/v1/status", nil, map[string]string{"Authorization": "Bearer " + login.Token}, &st); code != http.StatusOK ||
					st.Node == "" || st.Memory.TotalBytes == 0 || st.Persistence == nil || st.Persistence.Mode != "ram" || len(st.Interfaces) == 0 {
					t.Errorf("API status: %d %s", code, body)
				}
				return
			}
			form := func(kv ...string) (io.Reader, map[string]string) {
				v := url.Values{}
				for i := 0; i+1 < len(kv); i += 2 {
					v.Set(kv[i], kv[i+1])
				}
				// The Origin a browser sends with the panel's form: the
				// setup form refuses requests that say nothing of where
				// they come from.
				return strings.NewReader(v.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": base}
			}
			body, hdr := form("code", code, "password", "a good long password", "confirm", "a good long password")
			delete(hdr, "Origin")
			if status, _ := call(t, c, "POST", base+"/setup", body, hdr, nil); status != http.StatusForbidden {
				t.Errorf("setup without an Origin (login CSRF): %d, want 403", status)
			}
			body, hdr = form("code", "wrong-codes", "password", "a good long password", "confirm", "a good long password")
			if status, _ := call(t, c, "POST", base+"/setup", body, hdr, nil); status != http.StatusBadRequest {
				t.Errorf("setup with a wrong code: %d", status)
			}
			body, hdr = form("code", code, "password", "a good long password", "confirm", "a good long password")
			if status, _ := call(t, c, "POST", base+"/setup", body, hdr, nil); status != http.StatusSeeOther {
				t.Fatalf("setup with the console's code: %d", status)
			}
			// The session cookie the setup set is logged in.
			if status, page := call(t, c, "GET", base+"/?done=setup.done", nil, nil, nil); status != http.StatusOK || !strings.Contains(page, "The node is set up") ||
				!strings.Contains(page, "Persistence is OFF") && !strings.Contains(page, "none (in memory)") {
				t.Errorf("the status page after setup: %d", status)
			}
			if _, err := vm.Expect(ctx, "byzd: the node was claimed"); err != nil {
				t.Error(err)
			}
		})
	}
}

// ircRegister connects to an IRC server, registers a nick, and returns
// the server's welcome line (numeric 001), or an error.
func ircRegister(addr, nick string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "NICK %s\r\nUSER %s 0 * :Byzantium test\r\n", nick, nick); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("no welcome: %w", err)
		}
		if f := strings.Fields(line); len(f) > 1 && f[1] == "001" {
			return strings.TrimSpace(line), nil
		}
		if strings.HasPrefix(line, "PING ") {
			fmt.Fprintf(c, "PONG %s\r\n", strings.TrimPrefix(strings.TrimSpace(line), "PING "))
		}
	}
}

// liveNode is a booted node the tests talk to over HTTPS.
type liveNode struct {
	vm   *qemu.VM
	base string // https://127.0.0.1:PORT
	fp   string // the certificate fingerprint byzd printed
	c    *http.Client
}

// bootNode starts a VM whose port 443 is forwarded from httpsPort, waits
// for byzd's certificate line and /healthz, and returns a client pinned
// to that certificate. A boot that falls back to RAM fails the test.
func bootNode(ctx context.Context, t testing.TB, opts qemu.Options, httpsPort int) *liveNode {
	t.Helper()
	// None of its callers expects the node to lose a store it was given.
	vm := startWithStore(t, opts)
	line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	n := &liveNode{vm: vm, base: "https://127.0.0.1:" + strconv.Itoa(httpsPort), fp: fingerprintLine.FindStringSubmatch(line)[1]}
	waitHealth(ctx, t, vm, n.base, n.fp)
	n.c = pinnedClient(ctx, t, n.base, n.fp)
	return n
}

// login logs in through the API and returns the header that carries the
// token.
func (n *liveNode) login(t testing.TB, password string) map[string]string {
	t.Helper()
	var login nodeapi.LoginResult
	if code, body := call(t, n.c, "POST", n.base+"/api/v1/login", strings.NewReader(`{"password":"`+password+`"}`), nil, &login); code != http.StatusOK {
		t.Fatalf("login: %d %s", code, body)
	}
	return map[string]string{"Authorization": "Bearer " + login.Token}
}

// post makes API POSTs that must succeed, in order.
func (n *liveNode) post(t testing.TB, auth map[string]string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if code, body := call(t, n.c, "POST", n.base+p, nil, auth, nil); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", p, code, body)
		}
	}
}

// TestServiceIRC: logged in with a provisioned credential, the API
// activates the optional ngircd module and enables its service; an IRC
// client on the host registers through a forwarded port; the service
// runs as its own uid with no capabilities and no_new_privs, in a root
// where the node's state and media are not, its /dev and data folder
// nodev and nosuid, weighted below byzd; the node's own byz CLI sees
// it over the local socket; deactivating the module stops it and closes
// the port.
func TestServiceIRC(t *testing.T) {
	img := cloudImages(t)
	const password = "provisioned-by-the-host"
	https, irc := freePort(t), freePort(t)
	opts := qemu.Options{ISO: img.iso, Forward: []string{fmt.Sprintf("%d:443", https), fmt.Sprintf("%d:6667", irc)},
		Credentials: map[string]string{"byz.admin-password": password}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
	defer cancel()
	n := bootNode(ctx, t, opts, https)
	vm, c, base := n.vm, n.c, n.base
	auth := n.login(t, password)
	ircAddr := fmt.Sprintf("127.0.0.1:%d", irc)

	var mods []nodeapi.ModuleInfo
	if code, body := call(t, c, "GET", base+"/api/v1/modules", nil, auth, &mods); code != http.StatusOK {
		t.Fatalf("modules: %d %s", code, body)
	}
	found := false
	for _, m := range mods {
		if m.Name == "ngircd" {
			found = m.Folder == "optional" && !m.Active && len(m.Services) == 1
		}
	}
	if !found {
		t.Fatalf("no inactive optional ngircd module among %+v", mods)
	}
	var si nodeapi.ServiceInfo
	if code, body := call(t, c, "POST", base+"/api/v1/services/ngircd/enable", nil, auth, nil); code != http.StatusConflict || !strings.Contains(body, "activate it first") {
		t.Errorf("enable before activation: %d %s", code, body)
	}
	var ch nodeapi.ModuleChange
	if code, body := call(t, c, "POST", base+"/api/v1/modules/ngircd/activate", nil, auth, &ch); code != http.StatusOK || strings.Join(ch.Activated, ",") != "ngircd" {
		t.Fatalf("activate: %d %s", code, body)
	}
	if code, body := call(t, c, "POST", base+"/api/v1/services/ngircd/enable", nil, auth, &si); code != http.StatusOK || !si.Enabled {
		t.Fatalf("enable: %d %s", code, body)
	}
	var welcome string
	var err error
	for end := time.Now().Add(60 * time.Second); ; {
		if welcome, err = ircRegister(ircAddr, "meshuser"); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no IRC welcome through the forwarded port: %v; the console said:\n%s", err, strings.Join(vm.Tail(30), "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(welcome, " 001 meshuser ") || !strings.Contains(welcome, ".irc.local") {
		t.Errorf("welcome %q", welcome)
	}
	t.Logf("IRC: %s", welcome)

	// The service as the node's kernel sees it.
	cmd := `p=$(pidof ngircd); grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs):' /proc/$p/status; ` +
		`echo varlib=$(ls /proc/$p/root/var/lib | tr '\n' ,) run=$(ls -A /proc/$p/root/run | wc -l) media=$(ls /proc/$p/root/run/byz 2>&1 | grep -c 'No such'); ` +
		`echo cg=$(cat /proc/$p/cgroup) mem=$(cat /sys/fs/cgroup/byz-services/ngircd/memory.max) pids=$(cat /sys/fs/cgroup/byz-services/ngircd/pids.max); echo checked-$((1+1))`
	if err := vm.Type(cmd + "\n"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t61000\t61000\t61000\t61000", "Gid:\t61000\t61000\t61000\t61000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "varlib=ngircd, run=0 media=1",
		"cg=0::/byz-services/ngircd mem=67108864 pids=4", "checked-2"} {
		if _, err := vm.Expect(ctx, want); err != nil {
			t.Fatalf("the service's confinement: %v", err)
		}
	}
	// Its mounts, as it sees them (nodev and nosuid where it writes), and
	// the CPU and I/O weights that keep byzd ahead of every service.
	cmd = `p=$(pidof ngircd); echo devopts=$(awk '$5=="/dev"{print $6}' /proc/$p/mountinfo) dataopts=$(awk '$5=="/var/lib/ngircd"{print $6}' /proc/$p/mountinfo); ` +
		`g=/sys/fs/cgroup; echo cpuw=$(cat $g/byzd/cpu.weight)/$(cat $g/byz-services/cpu.weight)/$(cat $g/byz-services/ngircd/cpu.weight) ` +
		`iow=$(cat $g/byzd/io.weight)/$(cat $g/byz-services/io.weight) byzd=$(cat /proc/$(pidof byzd)/cgroup); echo checked-$((2+2))`
	if err := vm.Type(cmd + "\n"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"devopts=rw,nosuid,nodev,noexec,relatime dataopts=rw,nosuid,nodev,relatime",
		"cpuw=1000/100/100 iow=default 1000/default 100 byzd=0::/byzd", "checked-4"} {
		if _, err := vm.Expect(ctx, want); err != nil {
			t.Fatalf("the service's mounts and weights: %v", err)
		}
	}
	// The node's own CLI, over the root-only socket.
	if err := vm.Type("byz node services\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := vm.Expect(ctx, "ngircd "); err != nil || !strings.Contains(line, "running") {
		t.Errorf("byz node services: %q %v", line, err)
	}

	if code, body := call(t, c, "POST", base+"/api/v1/modules/ngircd/deactivate", nil, auth, &ch); code != http.StatusOK || strings.Join(ch.Stopped, ",") != "ngircd" {
		t.Fatalf("deactivate: %d %s", code, body)
	}
	if _, err := ircRegister(ircAddr, "late"); err == nil {
		t.Error("IRC still answers after the module was deactivated")
	}
	var svcs []nodeapi.ServiceInfo
	if code, _ := call(t, c, "GET", base+"/api/v1/services", nil, auth, &svcs); code != http.StatusOK || len(svcs) != 1 || svcs[0].State != "stopped" || svcs[0].Enabled {
		t.Errorf("services after deactivation: %+v", svcs)
	}
}
