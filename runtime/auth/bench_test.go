package auth

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// BenchmarkSessionUnderAttack measures Session, which every page render
// and API call makes, while 8 goroutines send wrong passwords at the real
// cost (DefaultHash), each from a fresh /64 and with the node-wide budget
// lifted (benchUnlimit), so that every attempt the semaphore admits runs
// argon2. An attacker refused with 429 waits a millisecond, as a network
// round trip would make it. It reports the latency of Session: p50, p99
// and the worst, in milliseconds, and the attempts checked per second.
//
//	go test -run '^$' -bench SessionUnderAttack -benchtime 300x ./runtime/auth
func BenchmarkSessionUnderAttack(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Provision(HashPassword("the admin password", DefaultHash)); err != nil {
		b.Fatal(err)
	}
	benchUnlimit(s)
	admin, err := s.Login("10.0.0.1", "the admin password")
	if err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	checked := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := s.Login(fmt.Sprintf("2001:db8:%x:%x::1", g, i), "a guess")
				var slow *SlowDown
				if errors.As(err, &slow) {
					time.Sleep(time.Millisecond)
					continue
				}
				mu.Lock()
				checked++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // the attack is under way
	lat := make([]time.Duration, 0, b.N)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if s.Session(admin.ID) == nil {
			b.Fatal("the admin's session is gone")
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(time.Millisecond) // a page's other work
	}
	b.StopTimer()
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(checked)/elapsed.Seconds(), "checks/s")
}
