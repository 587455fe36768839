package meshsim

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func needRoot(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces, veth)"
	} else if _, err := exec.LookPath("babeld"); err != nil {
		why = "needs babeld (ci/packages.txt)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs ip (iproute2)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func start(t *testing.T, n int, edges []Edge, opt Options) *Sim {
	t.Helper()
	needRoot(t)
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
