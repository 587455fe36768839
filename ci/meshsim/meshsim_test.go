package meshsim

import (
	"byzantium/ci/testenv"
	"byzantium/runtime/mesh/addr"
	"testing"
	"time"
)

func start(t *testing.T, n int, edges []Edge, opt Options) *Sim {
	t.Helper()
	testenv.RequireBabeld(t)
	opt.Logf = t.Logf
	s, err := Start(n, edges, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestLine: four nodes in a line (wired links) reach each other; cutting
// the middle link splits the mesh in two, and healing it joins it again.
func TestLine(t *testing.T) {
	s := start(t, 4, Line(4), Options{})
	d, err := s.Converge(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("line of 4, wired: every pair reaches the other %.1f s after start", d.Seconds())
	st := s.Status(0)
	if !st.Joined || st.Engine != "running" || len(st.Neighbours) != 1 {
		t.Errorf("node 0: joined %v engine %q neighbours %d: %s", st.Joined, st.Engine, len(st.Neighbours), st.Summary)
	}
	if mid := s.Status(1); len(mid.Neighbours) != 2 {
		t.Errorf("node 1 hears %d neighbours, want 2", len(mid.Neighbours))
	}

	cut := Edge{1, 2}
	if err := s.SetLink(cut, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for s.Reach(0, 3, false, 300*time.Millisecond) == nil {
		if time.Since(start) > 30*time.Second {
			t.Fatal("node 0 still reaches node 3 30 s after the cut")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.Reach(0, 1, false, time.Second); err != nil {
		t.Errorf("node 0 lost node 1 on its own side of the cut: %v", err)
	}
	if err := s.SetLink(cut, true); err != nil {
		t.Fatal(err)
	}
	d, err = s.Converge(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("line of 4: healed %.1f s after the link came back", d.Seconds())
}

// TestGridWireless: a 3×3 grid whose links babeld treats as radios.
func TestGridWireless(t *testing.T) {
	s := start(t, 9, Grid(3, 3), Options{Wireless: true})
	d, err := s.Converge(90 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grid of 9, wireless: converged in %.1f s", d.Seconds())
	if st := s.Status(4); len(st.Neighbours) != 4 || st.Interfaces[0].Kind != "wifi" {
		t.Errorf("centre node: %d neighbours, interfaces %+v", len(st.Neighbours), st.Interfaces)
	}
	// A cut in the grid is routed around.
	if err := s.SetLink(Edge{3, 4}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLink(Edge{4, 5}, false); err != nil {
		t.Fatal(err)
	}
	d, err = s.Converge(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grid of 9, wireless: routed around two cut links in %.1f s", d.Seconds())
	if _, _, starts := s.Nodes[4].Manager.EngineStarts(); starts != 1 {
		t.Errorf("babeld on the centre node started %d times; a cut link must not restart it", starts)
	}
}

// TestRandomGeometric: twelve nodes placed at random (seeded).
func TestRandomGeometric(t *testing.T) {
	edges := Geometric(12, 0.4, 14)
	s := start(t, 12, edges, Options{})
	d, err := s.Converge(90 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("random geometric graph, 12 nodes, %d links: converged in %.1f s", len(edges), d.Seconds())
}

// TestCollision: two nodes (0 and 2 of a line of 3) start on the same
// slot with different secrets; the younger claim (node 2) rolls again,
// node 0 keeps its slot, and every node reaches every other.
func TestCollision(t *testing.T) {
	older, younger := collidingIdentities(t)
	s := start(t, 3, Line(3), Options{Seed: map[int]addr.Identity{0: older, 2: younger}})
	deadline := time.Now().Add(60 * time.Second)
	for s.Nodes[2].Manager.Identity().Roll == 0 {
		if time.Now().After(deadline) {
			t.Fatal("node 2 did not roll again in 60 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	d, err := s.Converge(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collision resolved; full reachability %.1f s after the re-roll", d.Seconds())
	time.Sleep(5 * time.Second) // time for a second, wrong, re-roll to show
	a, b := s.Nodes[0].Manager.Identity(), s.Nodes[2].Manager.Identity()
	if a.Roll != 0 || a.Slot() != older.Slot() {
		t.Errorf("the older claim moved: %+v", a)
	}
	if b.Roll != 1 || b.Slot() == older.Slot() {
		t.Errorf("the younger claim: roll %d slot %v, want exactly one re-roll off %v", b.Roll, b.Slot(), older.Slot())
	}
	if st := s.Status(2); st.Addresses.Rolls != 1 {
		t.Errorf("status rolls %d", st.Addresses.Rolls)
	}
}

// collidingIdentities finds two secrets on one slot (about 65,000 tries).
func collidingIdentities(t *testing.T) (older, younger addr.Identity) {
	older.Secret[0] = 1
	older.Claimed = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	want := older.Slot()
	for i := uint32(0); ; i++ {
		younger.Secret[1], younger.Secret[2], younger.Secret[3], younger.Secret[4] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		if younger.Slot() == want {
			break
		}
		if i > 10_000_000 {
			t.Fatal("no colliding secret")
		}
	}
	younger.Claimed = time.Now().UTC().Truncate(time.Second)
	return older, younger
}

// TestHotplugAndUplink: two nodes start unlinked; a veth plugged in
// between them later joins the mesh by itself (the link watch), and a
// port carrying a default route is reported as the uplink, not meshed.
func TestHotplugAndUplink(t *testing.T) {
	s := start(t, 2, nil, Options{})
	ns0 := s.Nodes[0].NS
	for _, args := range [][]string{
		// A veth whose other end stays in the node (this host has no
		// dummy driver): up0 carries the default route, upx is a plain
		// port with nothing behind it.
		{"-n", ns0, "link", "add", "up0", "type", "veth", "peer", "name", "upx"},
		{"-n", ns0, "link", "set", "up0", "up"},
		{"-n", ns0, "link", "set", "upx", "up"},
		{"-n", ns0, "addr", "add", "192.168.9.2/24", "dev", "up0"},
		{"-n", ns0, "route", "add", "default", "via", "192.168.9.1", "dev", "up0"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	st := s.Status(0)
	if st.Joined || len(st.Interfaces) != 2 || st.Interfaces[0].Name != "up0" || st.Interfaces[0].Mode != "uplink" || st.Interfaces[0].Meshing || !st.Interfaces[1].Meshing {
		t.Fatalf("alone with an uplink: joined %v, interfaces %+v, %q", st.Joined, st.Interfaces, st.Summary)
	}
	t.Logf("node 0 alone: %s (engine %s: %s)", st.Summary, st.Engine, st.EngineError)
	if err := ip("link", "add", "m1", "netns", ns0, "type", "veth", "peer", "name", "m0", "netns", s.Nodes[1].NS); err != nil {
		t.Fatal(err)
	}
	ip("-n", ns0, "link", "set", "m1", "up")
	ip("-n", s.Nodes[1].NS, "link", "set", "m0", "up")
	s.Edges = append(s.Edges, Edge{0, 1})
	d, err := s.Converge(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a link plugged in later: both nodes reach each other %.1f s after", d.Seconds())
	st = s.Status(0)
	if !st.Joined || st.Engine != "running" {
		t.Errorf("after the plug: joined %v engine %q: %s", st.Joined, st.Engine, st.Summary)
	}
	for _, r := range st.Routes {
		if r.Prefix == "192.168.9.0/24" || r.Prefix == "0.0.0.0/0" {
			t.Errorf("the uplink leaked into the mesh: %+v", r)
		}
	}
	if got := s.Status(1); len(got.Routes) == 0 {
		t.Error("node 1 has no routes")
	} else {
		for _, r := range got.Routes {
			if r.Prefix == "192.168.9.0/24" || r.Prefix == "0.0.0.0/0" || r.Prefix == "192.168.9.2/32" {
				t.Errorf("node 1 learned the uplink's %s", r.Prefix)
			}
		}
	}
}
