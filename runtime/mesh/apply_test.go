package mesh

import (
	"byzantium/ci/testenv"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"byzantium/runtime/mesh/babel"
	"byzantium/runtime/mesh/batadv"
	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

// idleEngine stands in for batman-adv (absent from this host's kernel):
// with it, Apply accepts the protocols that use it.
type idleEngine struct{}

func (idleEngine) Start(context.Context, []nodeapi.MeshInterface, nodeapi.MeshSettings) error {
	return nil
}
func (idleEngine) Stop() error          { return nil }
func (idleEngine) Status(*nodeapi.Mesh) {}

// Iface is one of the test's mesh ports: under "both" babeld runs over
// the cloud's soft interface, here a veth that exists.
func (idleEngine) Iface() string                             { return "m1" }
func (idleEngine) SetHardwareAddr(net.HardwareAddr)          {}
func (idleEngine) SetGateway(bool, uint32, uint32) error     { return nil }
func (idleEngine) Gateways() ([]batadv.Gateway, error)       { return nil, nil }
func (idleEngine) GlobalTT() ([]batadv.TTEntry, error)       { return nil, nil }
func (idleEngine) Originators() ([]batadv.Originator, error) { return nil, nil }

// TestApplyRestartRule pins which settings restart babeld, with the
// real babeld in a network namespace of its own (two veth ends in it,
// m1 and m2, as mesh ports). What babeld's configuration holds, the
// protocol and the key, restarts it with a new router id (every route
// through the node flaps across the mesh for seconds); sharing, the
// Internet check and an uplink that is not a mesh port do not; naming a
// mesh port as the uplink changes the mesh interfaces and does. A restart
// is seen as the supervisor's start count and as the router id babeld
// gives in its socket's header.
func TestApplyRestartRule(t *testing.T) {
	testenv.RequireBabeld(t)
	ns := fmt.Sprintf("byzapply-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "link", "add", "m1", "type", "veth", "peer", "name", "m2")
	ip("-n", ns, "link", "set", "m1", "up")
	ip("-n", ns, "link", "set", "m2", "up")
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	dir := t.TempDir()
	m, err := New(Options{
		StateDir: filepath.Join(dir, "state"),
		RunDir:   filepath.Join(dir, "run"),
		Logf:     t.Logf,
		Launch: func(_ context.Context, argv []string) (*exec.Cmd, error) {
			return exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...), nil
		},
		System:   &System{NS: h},
		Wireless: func(string) bool { return false },
		Batman:   idleEngine{},
	}, meshcfg.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// running waits for babeld to run (the starts-th start) and reads
	// the router id it answers with.
	running := func(starts int) babel.RouterID {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			state, lastErr, n := m.EngineStarts()
			if n > starts {
				t.Fatalf("babeld started %d times, want %d", n, starts)
			}
			if state == babel.StateRunning && n == starts {
				c, err := babel.Dial(ctx, filepath.Join(dir, "run", "babeld.sock"))
				if err == nil {
					c.Close()
					return c.Header.MyID
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("babeld: %s (%s) after %d starts, want running after %d", state, lastErr, n, starts)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	id := running(1)
	starts := 1

	steps := []struct {
		name    string
		change  func(s *nodeapi.MeshSettings)
		restart bool
	}{
		{"share off", func(s *nodeapi.MeshSettings) { s.Share = nodeapi.ShareOff }, false},
		{"share on", func(s *nodeapi.MeshSettings) { s.Share = nodeapi.ShareOn }, false},
		{"Internet check", func(s *nodeapi.MeshSettings) { s.Check = []string{"tcp:192.0.2.1:443"} }, false},
		{"uplink not a mesh port", func(s *nodeapi.MeshSettings) { s.Uplink = "up9" }, false},
		{"uplink a mesh port", func(s *nodeapi.MeshSettings) { s.Uplink = "m2" }, true},
		{"key set", func(s *nodeapi.MeshSettings) { s.Key = "correct horse battery staple" }, true},
		{"key kept", func(s *nodeapi.MeshSettings) { s.Key, s.KeepKey = "", true }, false},
		{"key changed", func(s *nodeapi.MeshSettings) { s.Key = "another horse" }, true},
		{"protocol both", func(s *nodeapi.MeshSettings) { s.Protocol = nodeapi.MeshBoth }, true},
		{"protocol babel", func(s *nodeapi.MeshSettings) { s.Protocol = nodeapi.MeshBabel }, true},
		{"key removed", func(s *nodeapi.MeshSettings) { s.Key = "" }, true},
	}
	cur := meshcfg.Defaults()
	for _, st := range steps {
		next := cur
		st.change(&next)
		if err := m.Apply(next); err != nil {
			t.Fatalf("%s: Apply: %v", st.name, err)
		}
		if next.KeepKey {
			next.Key, next.KeepKey = cur.Key, false
		}
		cur = next
		if st.restart {
			starts++
			nid := running(starts)
			if nid == id {
				t.Errorf("%s: babeld restarted with the same router id %s", st.name, id)
			}
			id = nid
		} else {
			// The interfaces are re-read 300 ms after Apply and every
			// 2 s: a wrong restart shows within 2.5 s.
			time.Sleep(2500 * time.Millisecond)
			if nid := running(starts); nid != id {
				t.Errorf("%s: babeld's router id changed from %s to %s", st.name, id, nid)
			}
		}
		s := m.Status()
		if s.Gateway.Share != cur.Share || s.Keyed != (cur.Key != "") || s.Protocol != cur.Protocol {
			t.Errorf("%s: status share %q keyed %v protocol %q, want %q %v %q", st.name, s.Gateway.Share, s.Keyed, s.Protocol, cur.Share, cur.Key != "", cur.Protocol)
		}
		t.Logf("%s: %d starts, router id %s", st.name, starts, id)
	}
}
