package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in, want string // want: the target's String, or the error's text
	}{
		{"tcp:1.1.1.1:53", "1.1.1.1:53"},
		{"tcp:[2606:4700::1111]:53", "[2606:4700::1111]:53"},
		{"http://192.0.2.1/generate_204", "http://192.0.2.1/generate_204"},
		{"https://example.net/", "https://example.net/"},
		// The form is meshcfg's, one rule for the spec, the API and here.
		{"tcp:example.net:443", "error: gateway: check target: \"tcp:example.net:443\": want tcp:IP:PORT"},
		{"tcp:1.1.1.1", "error: gateway: check target: \"tcp:1.1.1.1\": want tcp:IP:PORT"},
		{"tcp:1.1.1.1:0", "error: gateway: check target: \"tcp:1.1.1.1:0\": want a port other than 0"},
		{"tcp:1.1.1.1:http", "error: gateway: check target: \"tcp:1.1.1.1:http\": want tcp:IP:PORT"},
		{"tcp::53", "error: gateway: check target: \"tcp::53\": want tcp:IP:PORT"},
		{"ftp://example.net/", "error: gateway: check target: \"ftp://example.net/\": want tcp:IP:PORT or an http"},
		{"1.1.1.1:53", "error: gateway: check target: \"1.1.1.1:53\""},
		{"http:///path", "error: gateway: check target: \"http:///path\": want"},
		{"tcp:" + strings.Repeat("a", 300) + ":53", "error: gateway: check target: \"tcp:aaaa"},
	} {
		tg, err := parseTarget(c.in)
		got := tg.String()
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("parseTarget(%.50q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := NewChecker(make([]string, 9), 0, 0); err == nil || !strings.Contains(err.Error(), "at most 8") {
		t.Errorf("NewChecker with 9 targets: %v", err)
	}
	c, err := NewChecker(nil, 0, 0)
	if err != nil || len(c.targets) != len(DefaultTargets) || c.timeout != DefaultCheckTimeout || c.fails != 2 {
		t.Errorf("NewChecker(nil) = %+v, %v; want the defaults", c, err)
	}
}

// TestHysteresis: two failures in a row withdraw, one success announces,
// a success between failures starts the count again.
func TestHysteresis(t *testing.T) {
	c := &Checker{fails: 2}
	steps := []struct {
		ok, want bool
	}{
		{false, false}, {true, true}, {false, true}, {true, true}, {false, true}, {false, false},
		{false, false}, {true, true},
	}
	for i, s := range steps {
		c.record(s.ok)
		if c.up != s.want {
			t.Fatalf("step %d (raw %v): up = %v, want %v", i, s.ok, c.up, s.want)
		}
	}
	c.Reset()
	if c.up || c.failRun != 0 {
		t.Errorf("after Reset: %+v", c)
	}
}

// TestProbe checks from a gw namespace whose uplink leads to "the Net"
// (198.51.100.1) and whose mesh interface leads to a client namespace.
// A target the gw reaches only through the mesh must not pass the check:
// the socket is bound to the uplink.
func TestProbe(t *testing.T) {
	w := newWorld(t)
	ip(t, "-n", w.gw, "route", "add", "default", "via", "198.51.100.1", "dev", w.uplink)
	_, _ = listen(t, w.inetNS, "198.51.100.1:8053")
	meshOnly, _ := listen(t, w.clientNS, "10.1.2.2:8053") // reachable from gw, but via the mesh
	closed := "198.51.100.1:8054"                         // nothing listens: refused

	var srv net.Listener
	if err := w.inetNS.do(func() (err error) { srv, err = net.Listen("tcp4", "198.51.100.1:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/generate_204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/portal", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/login", http.StatusFound) })
	go http.Serve(srv, mux)
	t.Cleanup(func() { srv.Close() })

	// The mesh-only target is reachable by an unbound socket.
	if err := connect(w.gwNS, meshOnly.Addr().String(), 2*time.Second); err != nil {
		t.Fatalf("gw cannot reach %s at all: %v", meshOnly.Addr(), err)
	}

	cases := []struct {
		name    string
		targets []string
		iface   string
		ok      bool
		verdict string
	}{
		{"tcp through the uplink", []string{"tcp:198.51.100.1:8053"}, w.uplink, true, "ok"},
		{"one of two answers", []string{"tcp:" + closed, "tcp:198.51.100.1:8053"}, w.uplink, true, "ok"},
		{"refused", []string{"tcp:" + closed}, w.uplink, false, "no answer from " + closed + " (refused)"},
		{"mesh route does not count", []string{"tcp:10.1.2.2:8053"}, w.uplink, false, "no answer from 10.1.2.2:8053 ("},
		{"http 204", []string{"http://198.51.100.1:8080/generate_204"}, w.uplink, true, "ok"},
		{"captive portal redirect", []string{"http://198.51.100.1:8080/portal"}, w.uplink, false,
			"no answer from http://198.51.100.1:8080/portal (HTTP 302)"},
		{"two failures named", []string{"tcp:" + closed, "http://198.51.100.1:8080/portal"}, w.uplink, false,
			"no answer from " + closed + " (refused), http://198.51.100.1:8080/portal (HTTP 302)"},
		{"no such interface", []string{"tcp:198.51.100.1:8053"}, "nosuch0", false, "no answer from 198.51.100.1:8053 (no such interface)"},
	}
	for _, c := range cases {
		ch, err := newChecker(c.targets, time.Second, 2, w.gwNS, false)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ok, verdict := ch.Probe(context.Background(), c.iface)
		t.Logf("%s: %v %q", c.name, ok, verdict)
		if ok != c.ok || !strings.HasPrefix(verdict, c.verdict) {
			t.Errorf("%s: Probe = %v, %q; want %v, %q", c.name, ok, verdict, c.ok, c.verdict)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: Probe took %v with a 1s timeout", c.name, d)
		}
	}
}

// TestProbeHost runs the check as byzd does, in the process's own
// namespace, bound to loopback: no root needed.
func TestProbeHost(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c, err := NewChecker([]string{"tcp:" + l.Addr().String()}, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		iface   string
		ok      bool
		verdict string
	}{
		{"lo", true, "ok"},
		{"nosuch0", false, "no answer from " + l.Addr().String() + " (no such interface)"},
	} {
		if ok, v := c.Probe(context.Background(), tc.iface); ok != tc.ok || v != tc.verdict {
			t.Errorf("Probe(%s) = %v, %q; want %v, %q", tc.iface, ok, v, tc.ok, tc.verdict)
		}
	}
	// Check's hysteresis over real probes: up at once, down after two.
	for i, want := range []bool{true, true, false} {
		iface := "lo"
		if i > 0 {
			iface = "nosuch0"
		}
		if up, _ := c.Check(context.Background(), iface); up != want {
			t.Errorf("Check %d on %s: up=%v, want %v", i, iface, up, want)
		}
	}
}

// FuzzParseTarget: no input panics, and what is accepted is a tcp:
// address with a port or an http(s) URL with a host, within bounds.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"tcp:1.1.1.1:53", "tcp:[::1]:53", "http://192.0.2.1/x", "https://h/", "tcp::", "http://", "tcp:a:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := parseTarget(s)
		if err != nil {
			return
		}
		if len(s) > maxTargetLen {
			t.Fatalf("accepted %d bytes", len(s))
		}
		if tg.tcp != "" {
			host, port, err := net.SplitHostPort(tg.tcp)
			if err != nil || host == "" || port == "" || port == "0" {
				t.Fatalf("accepted %q as tcp %q", s, tg.tcp)
			}
			return
		}
		if !strings.HasPrefix(tg.http, "http://") && !strings.HasPrefix(tg.http, "https://") {
			t.Fatalf("accepted %q as %q", s, tg.http)
		}
	})
}
