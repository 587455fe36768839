package gateway

import (
	"context"
	"testing"
	"time"
)

// BenchmarkWithdraw measures, with the default intervals and check
// timeout, how long after its upstream dies (the Net's address gone: the
// uplink's carrier stays, its gateway stops answering, every check times
// out) the gateway withdraws the route, and how long after the upstream
// returns it announces again. Each round starts right after a check
// passed, the worst phase (Interval + Timeout + RetryInterval + Timeout);
// over random phases the mean is Interval/2 shorter. It then measures the
// uplink's carrier lost (the far end of the cable down), which the netlink
// watch sees at once (within the 1 s between steps).
func BenchmarkWithdraw(b *testing.B) {
	w := newWorld(b)
	ip(b, "-n", w.gw, "route", "add", "default", "via", "198.51.100.1", "dev", w.uplink, "proto", "dhcp")
	listen(b, w.inetNS, "0.0.0.0:8053")
	g, err := New(Config{NetNS: w.gwPath, Targets: []string{"tcp:198.51.100.1:8053"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(sharing bool) time.Duration {
		start := time.Now()
		for g.Status().Sharing != sharing {
			if time.Since(start) > time.Minute {
				b.Fatalf("sharing=%v not reached in a minute: %+v", sharing, g.Status())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	wait(true)
	var down, carrier, up time.Duration
	b.ResetTimer()
	for range b.N {
		// Right after a check passed: the worst phase for this case.
		ip(b, "-n", w.inet, "addr", "del", "198.51.100.1/24", "dev", w.inetIf)
		down += wait(false)
		ip(b, "-n", w.inet, "addr", "add", "198.51.100.1/24", "dev", w.inetIf)
		up += wait(true)
		// The far end of the cable goes down: the carrier drops.
		ip(b, "-n", w.inet, "link", "set", w.inetIf, "down")
		carrier += wait(false)
		ip(b, "-n", w.inet, "link", "set", w.inetIf, "up")
		ip(b, "-n", w.gw, "route", "replace", "default", "via", "198.51.100.1", "dev", w.uplink, "proto", "dhcp")
		wait(true)
	}
	b.ReportMetric(down.Seconds()/float64(b.N), "s-silent-to-withdrawn")
	b.ReportMetric(carrier.Seconds()/float64(b.N), "s-carrier-lost-to-withdrawn")
	b.ReportMetric(up.Seconds()/float64(b.N), "s-back-to-announced")
}

// BenchmarkNATApply: one atomic replacement of the gateway's table, as
// Run does when the uplink changes or the table vanished.
func BenchmarkNATApply(b *testing.B) {
	_, path := testNS(b, "nb")
	c := nftIn(b, path)
	n := NAT{Uplink: "eth0"}
	for range b.N {
		if err := n.Apply(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWithdraw6 is BenchmarkWithdraw for ::/0, with the default
// intervals, on an uplink that shares both families (the IPv6 default
// route set by hand on the IPv4 uplink): the IPv6 Net's address gone
// (every IPv6 check times out) → ::/0 withdrawn while IPv4 stays shared;
// back → announced; the IPv6 default route removed → withdrawn.
func BenchmarkWithdraw6(b *testing.B) {
	w := newWorld6(b)
	ip(b, "-n", w.gw, "route", "add", "default", "via", "198.51.100.1", "dev", w.uplink, "proto", "dhcp")
	ip(b, "-n", w.gw, "-6", "route", "add", "default", "via", inet6, "dev", w.uplink)
	listen(b, w.inetNS, "0.0.0.0:8053")
	listenOn(b, w.inetNS, "tcp6", "[::]:8053")
	g, err := New(Config{NetNS: w.gwPath, Targets: []string{"tcp:198.51.100.1:8053", "tcp:[" + inet6 + "]:8053"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(sharing bool) time.Duration {
		start := time.Now()
		for g.Status().SharingIPv6 != sharing {
			if time.Since(start) > time.Minute {
				b.Fatalf("IPv6 sharing=%v not reached in a minute: %+v", sharing, g.Status())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	wait(true)
	var down, lost, up time.Duration
	b.ResetTimer()
	for range b.N {
		ip(b, "-n", w.inet, "-6", "addr", "del", inet6+"/64", "dev", w.inetIf)
		down += wait(false)
		if !g.Status().Sharing {
			b.Fatalf("IPv4 withdrawn with IPv6: %+v", g.Status())
		}
		ip(b, "-n", w.inet, "-6", "addr", "add", inet6+"/64", "dev", w.inetIf, "nodad")
		up += wait(true)
		ip(b, "-n", w.gw, "-6", "route", "del", "default", "via", inet6, "dev", w.uplink)
		lost += wait(false)
		ip(b, "-n", w.gw, "-6", "route", "add", "default", "via", inet6, "dev", w.uplink)
		wait(true)
	}
	b.ReportMetric(down.Seconds()/float64(b.N), "s-silent-to-withdrawn")
	b.ReportMetric(lost.Seconds()/float64(b.N), "s-route-lost-to-withdrawn")
	b.ReportMetric(up.Seconds()/float64(b.N), "s-back-to-announced")
}
