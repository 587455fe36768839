package meshsim

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
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
			needRoot(b)
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
