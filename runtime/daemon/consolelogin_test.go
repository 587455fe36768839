package daemon

import (
	"byzantium/runtime/nodeapi"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestConsoleLogin: the serial console's password check answers on the
// local socket alone, with the panel's rate limit: the first failures are
// free, then it must wait; a node without a password says so.
func TestConsoleLogin(t *testing.T) {
	tw := newTestWeb(t)
	now := time.Unix(1700000000, 0)
	tw.Auth.Now = func() time.Time { return now }
	h, err := tw.LocalHandler()
	if err != nil {
		t.Fatal(err)
	}
	local := httptest.NewServer(h)
	defer local.Close()
	try := func(password string) (int, nodeapi.ConsoleLoginAnswer, http.Header) {
		t.Helper()
		body, _ := json.Marshal(nodeapi.ConsoleLoginRequest{Password: password})
		r, err := http.Post(local.URL+nodeapi.ConsoleLoginPath, "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var a nodeapi.ConsoleLoginAnswer
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("%d %s: %v", r.StatusCode, b, err)
		}
		return r.StatusCode, a, r.Header
	}

	if code, a, _ := try("anything at all"); code != http.StatusConflict || !strings.Contains(a.Error, "no admin password yet") {
		t.Errorf("before setup: %d %+v", code, a)
	}
	tw.claim(t, "long enough pass")
	for i := 0; i < 3; i++ {
		if code, a, _ := try("not the password"); code != http.StatusUnauthorized || a.Error != "wrong password" {
			t.Errorf("failure %d: %d %+v", i+1, code, a)
		}
	}
	code, a, hdr := try("long enough pass")
	if code != http.StatusTooManyRequests || a.RetryAfterSeconds < 1 || hdr.Get("Retry-After") != strconv.Itoa(a.RetryAfterSeconds) {
		t.Errorf("after 3 failures, even the right password: %d %+v Retry-After %q", code, a, hdr.Get("Retry-After"))
	}
	now = now.Add(time.Duration(a.RetryAfterSeconds) * time.Second)
	if code, a, _ := try("long enough pass"); code != http.StatusOK || a.Error != "" {
		t.Errorf("the right password, after the wait: %d %+v", code, a)
	}

	// Over HTTPS, for a neighbour, the route does not exist.
	if r := tw.do(t, tw.client(), "POST", nodeapi.ConsoleLoginPath, strings.NewReader(`{"password":"long enough pass"}`),
		map[string]string{"Content-Type": "application/json"}); r.code == http.StatusOK {
		t.Errorf("POST %s over HTTPS: %d %s", nodeapi.ConsoleLoginPath, r.code, r.body)
	}
}
