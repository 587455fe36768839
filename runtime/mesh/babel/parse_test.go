package babel

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// replay serves a capture on one end of a pipe, as babeld would: header
// first, then the lines after the client's request.
func replay(t *testing.T, name string) *Client {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	hdrEnd := strings.Index(text, "\nok\n") + 4
	srv, cli := net.Pipe()
	go func() {
		defer srv.Close()
		srv.Write([]byte(text[:hdrEnd]))
		bufio.NewReader(srv).ReadString('\n')
		srv.Write([]byte(text[hdrEnd:]))
	}()
	c, err := NewClient(cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDumpGateway(t *testing.T) {
	c := replay(t, "dump-gateway.txt")
	if c.Header.Version != "babeld-1.12.1" || c.Header.MyID.String() != "6a:00:00:01:de:ad:be:e1" {
		t.Fatalf("header %+v", c.Header)
	}
	s, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Interfaces) != 1 || !s.Interfaces["ab0"].Up {
		t.Errorf("interfaces %+v", s.Interfaces)
	}
	ns := s.NeighbourList()
	if len(ns) != 1 || ns[0].Address != netip.MustParseAddr("fe80::bcf1:4dff:fe58:f577") || ns[0].Cost != 96 || ns[0].Reach != 0xf800 {
		t.Fatalf("neighbours %+v", ns)
	}
	rs := s.RouteList()
	if len(rs) != 10 {
		t.Fatalf("%d routes, want 10", len(rs))
	}
	var def4, def6 bool
	for _, r := range rs {
		if r.Prefix.Bits() == 0 {
			if r.RouterID.String() != "6a:00:00:03:de:ad:be:e3" || r.Metric != 192 || !r.Installed || r.Interface != "ab0" {
				t.Errorf("default route %+v", r)
			}
			if r.Prefix.Addr().Is4() {
				def4 = true
			} else {
				def6 = true
			}
		}
		if strings.HasPrefix(r.Prefix.String(), "10.99.") || strings.HasPrefix(r.Prefix.String(), "192.0.2.") {
			t.Errorf("refused route in the dump: %v", r.Prefix)
		}
	}
	if !def4 || !def6 {
		t.Errorf("default routes: v4 %v v6 %v", def4, def6)
	}
	xs := s.XRouteList()
	if len(xs) != 4 || xs[0].Prefix.String() != "10.9.1.0/24" {
		t.Errorf("xroutes %+v", xs)
	}
}

func TestDumpBadKey(t *testing.T) {
	s, err := replay(t, "dump-badkey.txt").Dump()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Neighbours) != 0 || len(s.Routes) != 0 || len(s.XRoutes) != 4 {
		t.Errorf("bad key: %d neighbours, %d routes, %d xroutes", len(s.Neighbours), len(s.Routes), len(s.XRoutes))
	}
}

// TestMonitorCaptures folds the monitor captures and checks the end
// state babeld was in.
func TestMonitorCaptures(t *testing.T) {
	tests := []struct {
		file       string
		neighbours int
		reachable  int // routes with a metric below infinity at the end
	}{
		// bc0 came back: b's and c's 8 routes are all reachable again.
		{"monitor-linkdown.txt", 1, 8},
		// the silent cut: the neighbour is flushed, the routes retracted.
		{"monitor-wireless-silentcut.txt", 0, 0},
	}
	for _, tt := range tests {
		c := replay(t, tt.file)
		var s State
		syncs := 0
		err := c.Monitor(t.Context(), func(ev Event, synced bool) {
			if ev.Kind == 0 {
				syncs++
				return
			}
			if err := s.Apply(ev); err != nil {
				t.Fatal(err)
			}
		})
		if err == nil || syncs != 1 {
			t.Fatalf("%s: Monitor = %v after %d syncs, want an EOF after one", tt.file, err, syncs)
		}
		reach := 0
		for _, r := range s.Routes {
			if r.Reachable() {
				reach++
			}
		}
		if len(s.Neighbours) != tt.neighbours || reach != tt.reachable {
			t.Errorf("%s: %d neighbours, %d reachable routes; want %d, %d", tt.file, len(s.Neighbours), reach, tt.neighbours, tt.reachable)
		}
	}
}

func TestParseLineRefuses(t *testing.T) {
	good := "add route 55cc8ea3d710 prefix ::/0 from ::/0 installed yes id 6a:00:00:03:de:ad:be:e3 metric 192 refmetric 96 via fe80::1 if ab0"
	if _, err := ParseLine(good); err != nil {
		t.Fatalf("good line: %v", err)
	}
	for _, bad := range []string{
		"",
		"ok",
		"remove route 55 prefix ::/0",
		strings.Replace(good, "metric 192", "metric 70000", 1),
		strings.Replace(good, "metric 192", "metric -1", 1),
		strings.Replace(good, "if ab0", "if a/b", 1),
		strings.Replace(good, "prefix ::/0", "prefix ::/129", 1),
		strings.Replace(good, "55cc8ea3d710", "zz", 1),
		strings.Replace(good, "installed yes", "installed maybe", 1),
		strings.Replace(good, "via fe80::1", "via fe80::1 via fe80::2", 1),
		good + " " + strings.Repeat("x", 600),
		"add neighbour 1 address fe80::1 if e reach 12345 ureach 0000 rxcost 1 txcost 1 cost 1",
		"add interface e up maybe",
	} {
		if _, err := ParseLine(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseLine(%.60q) err = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestStateLimit(t *testing.T) {
	var s State
	for i := 0; i < MaxNeighbours+5; i++ {
		n := &Neighbour{Handle: string(rune('a'+i%26)) + strings.Repeat("0", i/26%10), Interface: "e"}
		n.Handle = strings.Repeat("f", 1) + itoa(i)
		err := s.Apply(Event{Kind: Add, Neighbour: n})
		if i >= MaxNeighbours && !errors.Is(err, ErrLimit) {
			t.Fatalf("entry %d: %v, want ErrLimit", i, err)
		}
	}
	if len(s.Neighbours) != MaxNeighbours || !s.Truncated {
		t.Errorf("%d neighbours kept, truncated %v", len(s.Neighbours), s.Truncated)
	}
	// A change to a known entry and a flush still work at the limit.
	if err := s.Apply(Event{Kind: Change, Neighbour: &Neighbour{Handle: "f0", Cost: 7}}); err != nil || s.Neighbours["f0"].Cost != 7 {
		t.Errorf("change at the limit: %v", err)
	}
	s.Apply(Event{Kind: Flush, Neighbour: &Neighbour{Handle: "f0"}})
	if _, ok := s.Neighbours["f0"]; ok {
		t.Error("flush kept the entry")
	}
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}

func TestClientRefusesLongLine(t *testing.T) {
	srv, cli := net.Pipe()
	go func() {
		srv.Write([]byte("BABEL 1.0\nok\n"))
		bufio.NewReader(srv).ReadString('\n')
		srv.Write([]byte(strings.Repeat("a", 2000) + "\n"))
		srv.Close()
	}()
	c, err := NewClient(cli)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dump(); !errors.Is(err, ErrSyntax) {
		t.Errorf("Dump of an over-long line: %v", err)
	}
	srv2, cli2 := net.Pipe()
	go func() { srv2.Write([]byte("HTTP/1.0 200 OK\n")); srv2.Close() }()
	if _, err := NewClient(cli2); !errors.Is(err, ErrSyntax) {
		t.Errorf("a socket that is not babeld's: %v", err)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, name := range []string{"dump-gateway.txt", "monitor-linkdown.txt", "monitor-wireless-silentcut.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n")[:30] {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := ParseLine(line)
		if err != nil {
			return
		}
		var s State
		if err := s.Apply(ev); err != nil {
			t.Fatalf("a parsed event did not apply: %v", err)
		}
		if ev.Route != nil && (ev.Route.Metric > Infinity || !ev.Route.Prefix.IsValid()) {
			t.Fatalf("route out of range: %+v", ev.Route)
		}
		if len(line) > MaxLine {
			t.Fatalf("accepted a %d-byte line", len(line))
		}
	})
}
