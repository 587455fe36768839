package e2e_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
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
	"byzantium/runtime/daemon"
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
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}},
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
				var login daemon.LoginResult
				if code, body := call(t, c, "POST", base+"/api/v1/login", strings.NewReader(`{"password":"`+password+`"}`), nil, &login); code != http.StatusOK {
					t.Fatalf("API login: %d %s", code, body)
				}
				var st daemon.Status
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
				return strings.NewReader(v.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			}
			body, hdr := form("code", "wrong-codes", "password", "a good long password", "confirm", "a good long password")
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
