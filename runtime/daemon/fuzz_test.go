package daemon

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// FuzzHandlers drives the real router — body limits, origin checks,
// login, CSRF, then each route's form or JSON decoding — with fuzzed
// bodies, content types, queries and path values, as an anonymous
// caller, an API token, a logged-in browser (cookie and CSRF token) and
// the unix socket. Nothing may panic, and nothing may answer 5xx but the
// 503 of the absent service manager and the 500 of a clone whose byz
// cannot start. The handler is called directly, so a panic is not
// caught by net/http. Seeds: testdata/fuzz/FuzzHandlers.
func FuzzHandlers(f *testing.F) {
	tw := newTestWeb(f)
	const pass = "long enough pass"
	if err := tw.Auth.Claim("fixture", tw.Auth.SetupCode(), pass); err != nil {
		f.Fatal(err)
	}
	secret := tw.apiToken(f, "fuzz")
	local, err := tw.LocalHandler()
	if err != nil {
		f.Fatal(err)
	}
	routes := tw.routes()
	wildcard := regexp.MustCompile(`\{[^}$]+\}`)
	f.Fuzz(func(t *testing.T, route uint16, how uint8, ctype string, body []byte, query, seg string) {
		rt := routes[int(route)%len(routes)]
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.ReplaceAll(path, "{$}", "")
		if seg == "" {
			seg = "x"
		}
		path = wildcard.ReplaceAllString(path, url.PathEscape(seg))
		if query != "" {
			path += "?" + query
		}
		req, err := http.NewRequest(method, "https://node1"+path, bytes.NewReader(body))
		if err != nil {
			t.Skip() // not a URL a client could send
		}
		req.RemoteAddr = "192.0.2.9:4000"
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		h := tw.h
		switch how % 4 {
		case 1:
			req.Header.Set("Authorization", "Bearer "+secret)
		case 2:
			// A logged-in browser; a session the last input ended
			// (logout, password change) is replaced.
			s, err := tw.Auth.Login("fixture", pass)
			if err != nil {
				t.Skip() // the fuzzer changed the password
			}
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: s.ID})
			req.Header.Set("X-CSRF-Token", s.CSRF)
			req.Header.Set("Origin", "https://node1")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		case 3:
			if strings.HasPrefix(path, "/api/") {
				h = local
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable &&
			!(rec.Code == http.StatusInternalServerError && strings.Contains(rec.Body.String(), "/nonexistent/byz")) {
			t.Errorf("%s %s (%d bytes of %q): %d %s", method, path, len(body), ctype, rec.Code, firstLine(rec.Body.String()))
		}
	})
}
