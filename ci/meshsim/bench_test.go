package meshsim

import (
	"byzantium/ci/testenv"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkConvergence starts grids of 10, 50 and 100 nodes (wired
// links) and reports the time until every node reaches every other over
// IPv4 and IPv6 (every kernel has babeld's route to every other node's
// two addresses, then a sample of pairs connect), babeld's resident
// memory per node, the managers' heap per node (Go heap in use after
// convergence, less before, over N), when every manager's view has
// every route too (s-views), and how many times a manager's
// monitor connection ended (babeld cut it off) per node.
// Run: go test -run XXX -bench Convergence -benchtime 1x ./ci/meshsim
func BenchmarkConvergence(b *testing.B) {
	for _, g := range []struct{ w, h int }{{5, 2}, {10, 5}, {10, 10}} {
		n := g.w * g.h
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			testenv.RequireBabeld(b)
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				// Monitor connections babeld cut off (it stalls 100 ms on
				// a client that does not read, then shuts it down).
				var cutoffs atomic.Int64
				logf := func(f string, a ...any) {
					if strings.Contains(fmt.Sprintf(f, a...), "babeld socket:") {
						cutoffs.Add(1)
					}
				}
				s, err := Start(n, Grid(g.w, g.h), Options{Logf: logf})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				d, err := s.Converge(180 * time.Second)
				if err != nil {
					s.Close()
					b.Fatal(err)
				}
				for !s.ViewsComplete() {
					if time.Since(start) > 180*time.Second {
						s.Close()
						b.Fatalf("the managers' views lack routes the kernels have, %v after start", time.Since(start))
					}
					time.Sleep(250 * time.Millisecond)
				}
				views := time.Since(start)
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				var rss int64
				for j := range s.Nodes {
					rss += s.BabeldRSS(j)
				}
				heap := (int64(after.HeapInuse) - int64(before.HeapInuse)) / int64(n)
				b.ReportMetric(d.Seconds(), "s-converge")
				b.ReportMetric(s.RoutesAt.Seconds(), "s-routes")
				b.ReportMetric(float64(rss)/float64(n)/1024, "KiB-babeld/node")
				b.ReportMetric(float64(heap)/1024, "KiB-heap/node")
				b.ReportMetric(float64(cutoffs.Load())/float64(n), "reconnects/node")
				b.ReportMetric(views.Seconds(), "s-views")
				b.Logf("%d nodes (%dx%d grid): every route in every kernel in %.1f s, %d probed pairs reached in %.1f s; babeld RSS %.0f KiB/node; manager heap %.0f KiB/node; every manager's view complete in %.1f s, %d monitor reconnections",
					n, g.w, g.h, s.RoutesAt.Seconds(), len(s.ProbePairs()), d.Seconds(), float64(rss)/float64(n)/1024, float64(heap)/1024, views.Seconds(), cutoffs.Load())
				s.Close()
			}
		})
	}
}

// BenchmarkGatewayLoss measures, on a line of three nodes whose links
// babeld takes for wired ports and then for radios (its hello interval
// and link-death timing differ), how long node 0 keeps a default route
// through node 2, the gateway, once the gateway goes: withdrawn (its
// uplink lost: the route leaves table 200, as runtime/mesh/gateway does)
// and silent (its babeld stopped dead, no retraction, the link still up).
// The goal is 30 s for each.
// Run: go test -run XXX -bench GatewayLoss -benchtime 1x ./ci/meshsim
func BenchmarkGatewayLoss(b *testing.B) {
	for _, wireless := range []bool{false, true} {
		b.Run(fmt.Sprintf("wireless=%v", wireless), func(b *testing.B) {
			testenv.RequireBabeld(b)
			for i := 0; i < b.N; i++ {
				s, err := Start(3, Line(3), Options{Wireless: wireless})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Converge(60 * time.Second); err != nil {
					s.Close()
					b.Fatal(err)
				}
				gw, far := s.Nodes[2], s.Nodes[0]
				announce := []string{"-n", gw.NS, "route", "replace", "unreachable", "0.0.0.0/0", "table", "200", "proto", "201"}
				withdrawn, err := gatewayLoss(far, func() error { return ip(announce...) }, func() error {
					return ip("-n", gw.NS, "route", "del", "0.0.0.0/0", "table", "200", "proto", "201")
				})
				if err != nil {
					s.Close()
					b.Fatalf("withdrawn: %v", err)
				}
				silent, err := gatewayLoss(far, func() error { return ip(announce...) }, func() error { return signalBabeld(gw.NS, syscall.SIGSTOP) })
				signalBabeld(gw.NS, syscall.SIGCONT)
				s.Close()
				if err != nil {
					b.Fatalf("silent: %v", err)
				}
				b.ReportMetric(withdrawn.Seconds(), "s-withdrawn")
				b.ReportMetric(silent.Seconds(), "s-silent")
				b.Logf("wireless %v: node 0's default route through the gateway gone %.1f s after its uplink went, %.1f s after it went silent",
					wireless, withdrawn.Seconds(), silent.Seconds())
			}
		})
	}
}

// gatewayLoss announces a default route, waits for node nd to have it
// from babeld, takes it away with lose and returns how long nd kept it.
func gatewayLoss(nd *Node, announce, lose func() error) (time.Duration, error) {
	if err := announce(); err != nil {
		return 0, err
	}
	if err := waitDefault(nd, true, 60*time.Second); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := lose(); err != nil {
		return 0, err
	}
	if err := waitDefault(nd, false, 120*time.Second); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// waitDefault waits until nd's main table has (or lacks) a default route
// from babeld.
func waitDefault(nd *Node, want bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command("ip", "-n", nd.NS, "-4", "route", "show", "default", "proto", "babel").Output()
		if err != nil {
			return err
		}
		if (len(strings.TrimSpace(string(out))) > 0) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d: default route present %v after %v, want %v", nd.Index, !want, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signalBabeld sends sig to the babeld in namespace ns.
func signalBabeld(ns string, sig syscall.Signal) error {
	for _, p := range nsPids(ns) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		if strings.TrimSpace(string(comm)) == "babeld" {
			return syscall.Kill(p, sig)
		}
	}
	return fmt.Errorf("no babeld in %s", ns)
}
