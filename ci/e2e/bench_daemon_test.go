package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/ci/qemu"
)

var rssLine = regexp.MustCompile(`byzd-rss=(\d+)`)

// byzdRSS asks the node's console for byzd's resident memory, in MiB.
func byzdRSS(ctx context.Context, b *testing.B, vm *qemu.VM, tag string) float64 {
	b.Helper()
	if err := vm.Type("echo byzd-rss=$(grep VmRSS /proc/$(pidof byzd)/status | tr -dc 0-9)-" + tag + "\n"); err != nil {
		b.Fatal(err)
	}
	line, err := vm.Expect(ctx, "-"+tag)
	for err == nil && !rssLine.MatchString(line) { // the echoed command itself
		line, err = vm.Expect(ctx, "-"+tag)
	}
	if err != nil {
		b.Fatal(err)
	}
	kb, _ := strconv.Atoi(rssLine.FindStringSubmatch(line)[1])
	return float64(kb) / 1024
}

// BenchmarkDaemon boots the test ISO and measures byzd: its resident
// memory at idle and with the IRC module active and its service running,
// and the panel's status page latency under a small bounded load from
// the host (4 clients, 50 requests each, through QEMU's port forward).
// It reports, never asserts (make bench); issue 5's targets are ≤ 40 MB
// RSS and p99 ≤ 50 ms.
func BenchmarkDaemon(b *testing.B) {
	for _, cpus := range []int{1, 2} {
		b.Run(fmt.Sprintf("cpus=%d", cpus), func(b *testing.B) { benchDaemon(b, cpus) })
	}
}

func benchDaemon(b *testing.B, cpus int) {
	img := cloudImages(b)
	const password = "provisioned-by-the-host"
	var idle, irc, p50, p99 float64
	for b.Loop() {
		https := freePort(b)
		opts := qemu.Options{ISO: img.iso, Forward: []string{fmt.Sprintf("%d:443", https)}, CPUs: cpus,
			Credentials: map[string]string{"byz.admin-password": password}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
		vm := qemu.StartT(b, qemu.Config{Options: opts, SerialLog: filepath.Join(b.TempDir(), "serial.log")})
		line, err := vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
		if err != nil {
			b.Fatal(err)
		}
		fp := fingerprintLine.FindStringSubmatch(line)[1]
		base := "https://127.0.0.1:" + strconv.Itoa(https)
		waitHealth(ctx, b, vm, base, fp)
		if _, err := vm.Expect(ctx, "byzd: coldplug"); err != nil { // settled
			b.Fatal(err)
		}
		c := pinnedClient(ctx, b, base, fp)
		form := url.Values{"password": {password}}.Encode()
		if code, body := call(b, c, "POST", base+"/login", strings.NewReader(form), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": base}, nil); code != http.StatusSeeOther {
			b.Fatalf("login: %d %s", code, body)
		}
		// Warm: the first pages load templates and TLS sessions.
		for i := 0; i < 5; i++ {
			call(b, c, "GET", base+"/", nil, nil, nil)
		}
		idle += byzdRSS(ctx, b, vm, "idle")

		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					start := time.Now()
					resp, err := c.Get(base + "/")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					d := time.Since(start)
					if resp.StatusCode != http.StatusOK {
						b.Errorf("GET /: %s", resp.Status)
					}
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		slices.Sort(lat)
		p50 += float64(lat[len(lat)/2].Microseconds()) / 1000
		p99 += float64(lat[len(lat)*99/100].Microseconds()) / 1000

		// With the IRC service running.
		csrf := csrfOf(b, c, base)
		hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		for _, p := range []string{"/modules/ngircd/activate", "/services/ngircd/enable"} {
			if code, body := call(b, c, "POST", base+p, strings.NewReader("csrf="+url.QueryEscape(csrf)), hdr, nil); code != http.StatusSeeOther {
				b.Fatalf("POST %s: %d %s", p, code, body)
			}
		}
		if _, err := vm.Expect(ctx, "service started"); err != nil {
			b.Fatal(err)
		}
		time.Sleep(3 * time.Second) // a few health checks
		irc += byzdRSS(ctx, b, vm, "irc")
		vm.Kill()
		cancel()
	}
	n := float64(b.N)
	b.ReportMetric(idle/n, "MB-rss-idle")
	b.ReportMetric(irc/n, "MB-rss-irc")
	b.ReportMetric(p50/n, "ms-p50-page")
	b.ReportMetric(p99/n, "ms-p99-page")
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(b *testing.B, c *http.Client, base string) string {
	b.Helper()
	_, page := call(b, c, "GET", base+"/settings", nil, nil, nil)
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		b.Fatal("no CSRF token on /settings")
	}
	return m[1]
}
