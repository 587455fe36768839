package webfront

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/runtime/webfront/fcgi"
)

// load is one side of a comparison: a function making one request.
type load struct {
	name string
	do   func() error
}

type result struct {
	rps float64
	p50 time.Duration
	p99 time.Duration
}

// measure runs n requests of l with conc workers and returns the rate
// and the latency percentiles.
func measure(l load, n, conc int) (result, error) {
	lat := make([]time.Duration, n)
	var next int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := l.do(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		return result{}, fmt.Errorf("%s: %w", l.name, firstErr)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{rps: float64(n) / wall.Seconds(), p50: lat[n/2], p99: lat[n*99/100]}, nil
}

// compare measures the loads in interleaved rounds (so that the
// machine's noise falls on all of them alike), keeps each one's best
// round, prints them with their ratios to the first, and reports the
// ratios as metrics.
func compare(b *testing.B, title, tag string, loads []load, n, conc, rounds int) {
	best := make([]result, len(loads))
	for r := 0; r < rounds; r++ {
		for i, l := range loads {
			res, err := measure(l, n, conc)
			if err != nil {
				b.Fatal(err)
			}
			if res.rps > best[i].rps {
				best[i] = res
			}
		}
	}
	fmt.Fprintf(os.Stdout, "\n%s: %d requests × %d rounds, %d at once (best round)\n", title, n, rounds, conc)
	fmt.Fprintf(os.Stdout, "  %-10s %8s %10s %10s %9s %9s %9s\n", "", "req/s", "p50", "p99", "req/s ×", "p50 ×", "p99 ×")
	for i, l := range loads {
		rr, pr := best[i].rps/best[0].rps, float64(best[i].p99)/float64(best[0].p99)
		fmt.Fprintf(os.Stdout, "  %-10s %8.0f %10v %10v %9.2f %9.2f %9.2f\n", l.name, best[i].rps,
			best[i].p50.Round(time.Microsecond), best[i].p99.Round(time.Microsecond), rr,
			float64(best[i].p50)/float64(best[0].p50), pr)
		if i > 0 {
			b.ReportMetric(rr, tag+"-"+l.name+"-rps-ratio")
			b.ReportMetric(float64(best[i].p50)/float64(best[0].p50), tag+"-"+l.name+"-p50-ratio")
			b.ReportMetric(pr, tag+"-"+l.name+"-p99-ratio")
		}
	}
}

func httpGet(c *http.Client, url string, want int) func() error {
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || int(n) != want {
			return fmt.Errorf("%s: %d, %d bytes", url, resp.StatusCode, n)
		}
		return nil
	}
}

func keepAlive(conc int, tlsConf *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, TLSClientConfig: tlsConf, DisableCompression: true}}
}

// BenchmarkFront measures what the front costs: requests per second and
// latency (p50, p99) of an app reached directly and through the front,
// over plain HTTP and over TLS as byzd serves it, with keep-alive
// connections, for an HTTP app (a Go server on a loopback port answering
// 1 KiB), for Debian's php-fpm (a script printing 1 KiB, reached
// directly with this package's FastCGI client) and for Debian's DokuWiki
// on it (a real page, the same FastCGI parameters). Run it alone:
//
//	go test -run XXX -bench Front -benchtime 1x ./runtime/webfront
func BenchmarkFront(b *testing.B) {
	body := strings.Repeat("x", 1<<10)
	b.Run("http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, body)
		})}
		go app.Serve(ln)
		defer app.Close()
		f := &Front{}
		if err := f.Update([]Route{{Name: "app", Prefix: "/app/", HTTP: &HTTPBackend{Addr: ln.Addr().String()},
			Limits: Limits{Concurrent: 256, PerClient: 256}}}); err != nil {
			b.Fatal(err)
		}
		plain := httptest.NewServer(f)
		defer plain.Close()
		tlsSrv := httptest.NewTLSServer(f)
		defer tlsSrv.Close()
		const conc = 8
		tlsConf := tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig
		loads := []load{
			{"direct", httpGet(keepAlive(conc, nil), "http://"+ln.Addr().String()+"/x", len(body))},
			{"front", httpGet(keepAlive(conc, nil), plain.URL+"/app/x", len(body))},
			{"front-tls", httpGet(keepAlive(conc, tlsConf), tlsSrv.URL+"/app/x", len(body))},
		}
		for i := 0; i < b.N; i++ {
			compare(b, "HTTP app, one at a time", "c1", loads, 2000, 1, 3)
			compare(b, "HTTP app", "c8", loads, 3000, conc, 3)
		}
	})
	b.Run("php-fpm", func(b *testing.B) {
		phpScripts["hello.php"] = "<?php echo str_repeat('x', 1024);\n"
		defer delete(phpScripts, "hello.php")
		sock, docroot := startPHPFPM(b)
		f := &Front{}
		// Two workers (the pool's pm.max_children), as many turns.
		if err := f.Update([]Route{{Name: "wiki", Prefix: "/wiki/", FastCGI: &FastCGIBackend{Socket: sock, Root: docroot},
			Limits: Limits{Concurrent: 2, PerClient: 2}}}); err != nil {
			b.Fatal(err)
		}
		plain := httptest.NewServer(f)
		defer plain.Close()
		tlsSrv := httptest.NewTLSServer(f)
		defer tlsSrv.Close()
		const conc = 4
		tlsConf := tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig
		params := []fcgi.Param{{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "SCRIPT_FILENAME", Value: docroot + "/hello.php"},
			{Name: "SCRIPT_NAME", Value: "/hello.php"}, {Name: "REQUEST_URI", Value: "/hello.php"}, {Name: "QUERY_STRING", Value: ""},
			{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"}, {Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
			{Name: "REMOTE_ADDR", Value: "127.0.0.1"}, {Name: "SERVER_NAME", Value: "localhost"}}
		direct := func() error {
			conn, err := net.Dial("unix", sock)
			if err != nil {
				return err
			}
			resp, err := fcgi.Do(context.Background(), conn, &fcgi.Request{Params: params})
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || n != int64(len(body)) {
				return fmt.Errorf("direct: %d, %d bytes, %v", resp.StatusCode, n, err)
			}
			return nil
		}
		loads := []load{
			{"direct", direct},
			{"front", httpGet(keepAlive(conc, nil), plain.URL+"/wiki/hello.php", len(body))},
			{"front-tls", httpGet(keepAlive(conc, tlsConf), tlsSrv.URL+"/wiki/hello.php", len(body))},
		}
		for i := 0; i < b.N; i++ {
			compare(b, "php-fpm app (2 workers), one at a time", "c1", loads, 1000, 1, 3)
			compare(b, "php-fpm app (2 workers)", "c4", loads, 2000, conc, 3)
		}
	})
	b.Run("dokuwiki", func(b *testing.B) {
		sock, _ := startDokuWiki(b)
		f := &Front{}
		route := dokuwikiRoute(sock)
		route.Limits = Limits{Concurrent: 2, PerClient: 2}
		if err := f.Update([]Route{route}); err != nil {
			b.Fatal(err)
		}
		tlsSrv := httptest.NewTLSServer(f)
		defer tlsSrv.Close()
		const page = "/wiki/doku.php?id=wiki:syntax"
		// Direct: the parameters the front would send, without the front.
		r := httptest.NewRequest("GET", tlsSrv.URL+page, nil)
		params := f.table.Load().get("wiki").fcgi.params(r, "/wiki/", target{script: "doku.php"})
		var size int64
		direct := func() error {
			conn, err := net.Dial("unix", sock)
			if err != nil {
				return err
			}
			resp, err := fcgi.Do(context.Background(), conn, &fcgi.Request{Params: params})
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || n < 10000 {
				return fmt.Errorf("direct: %d, %d bytes, %v", resp.StatusCode, n, err)
			}
			size = n
			return nil
		}
		if err := direct(); err != nil { // and warm DokuWiki's cache
			b.Fatal(err)
		}
		c := keepAlive(2, tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig)
		front := func() error {
			resp, err := c.Get(tlsSrv.URL + page)
			if err != nil {
				return err
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != size {
				return fmt.Errorf("front: %d, %d bytes, want %d", resp.StatusCode, n, size)
			}
			return nil
		}
		for i := 0; i < b.N; i++ {
			compare(b, fmt.Sprintf("DokuWiki's syntax page (%d KiB, 2 workers), one at a time", size>>10), "c1",
				[]load{{"direct", direct}, {"front-tls", front}}, 200, 1, 3)
			compare(b, "DokuWiki's syntax page, 2 at once", "c2",
				[]load{{"direct", direct}, {"front-tls", front}}, 300, 2, 3)
		}
	})
}
