package meshsim

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkConvergence starts grids of 10, 50 and 100 nodes (wired
// links) and reports the time until every node reaches every other over
// IPv4 and IPv6, babeld's resident memory per node, and the managers'
// heap per node (Go heap in use after convergence, less before, over N).
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
				s, err := Start(n, Grid(g.w, g.h), Options{Logf: func(string, ...any) {}})
				if err != nil {
					b.Fatal(err)
				}
				d, err := s.Converge(180 * time.Second)
				if err != nil {
					s.Close()
					b.Fatal(err)
				}
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
				b.Logf("%d nodes (%dx%d grid): every route in %.1f s, %d probed pairs reached in %.1f s; babeld RSS %.0f KiB/node; manager heap %.0f KiB/node",
					n, g.w, g.h, s.RoutesAt.Seconds(), len(s.ProbePairs()), d.Seconds(), float64(rss)/float64(n)/1024, float64(heap)/1024)
				s.Close()
			}
		})
	}
}
