// Package netcfg brings up a node's wired networking: loopback, then DHCPv4
// on every wired interface in the background, applying each lease's
// address, default route and DNS servers and renewing it before it ends.
//
// Nothing here blocks on the network: a node with no cable or no DHCP
// server still starts its daemon, and keeps asking.
//
// Whoever is on the link can answer as the DHCP server, so a lease is
// hostile input: only unicast addresses (three at most) become name
// servers and only host names (RFC 1035 labels, six at most, one line of
// 256 characters) search domains; the rest is logged as refused.
package netcfg

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// Config is usable as its zero value: every wired interface of the running
// system, /etc/resolv.conf written, logs discarded. The path fields are
// test seams (STYLE §5).
type Config struct {
	// RootDir prefixes the files written (etc/resolv.conf); "" means "/".
	RootDir string
	// SysDir is where sysfs is mounted, read to find interfaces; "" means
	// "/sys".
	SysDir string
	// Interfaces, when set, replaces discovery with this list.
	Interfaces []string
	// Hostname is sent to the DHCP server (option 12) so it can name the
	// node in its lease table.
	Hostname string
	// Timeout bounds the wait for each DHCP reply; 0 means 1s.
	Timeout time.Duration
	// Retries is how many times one exchange is resent; 0 means 5.
	Retries int
	// Rescan is how often the interface list is read again, when
	// Interfaces is nil, for interfaces that appear later; 0 means 1s.
	Rescan time.Duration
	// MaxBackoff caps the pause between failed exchanges; 0 means 60s.
	MaxBackoff time.Duration
	// Logger gets one line per lease and per failure; nil discards.
	Logger *slog.Logger
	// OnLease, if set, is called after each lease (first or renewed) is
	// applied.
	OnLease func(Lease)
}

// Lease is what a DHCP server gave one interface, as applied.
type Lease struct {
	Interface string
	Address   netip.Prefix
	Router    netip.Addr // invalid when the server named none
	DNS       []netip.Addr
	Search    []string
	Server    netip.Addr
	Acquired  time.Time
	Duration  time.Duration // lease time (option 51)
	Renew     time.Duration // T1 (option 58), or half the lease
	// Refused says what the server sent that was not used, and why: a
	// search domain that is not a host name, a DNS server that is not a
	// unicast address, more than resolv.conf takes.
	Refused []string
}

func (c Config) withDefaults() Config {
	if c.RootDir == "" {
		c.RootDir = "/"
	}
	if c.SysDir == "" {
		c.SysDir = "/sys"
	}
	// A DHCP server on the link answers in milliseconds, but the first
	// DISCOVER after a link comes up is often lost: a short wait per
	// message with more retries costs a second there, not five.
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	if c.Retries == 0 {
		c.Retries = 5
	}
	if c.Rescan == 0 {
		c.Rescan = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Network is the running configuration started by Start.
type Network struct {
	cfg    Config
	wg     sync.WaitGroup
	mu     sync.Mutex
	leases map[string]Lease
}

// Start brings loopback up, which is essential (local clients and the
// daemon's own health checks need it), then starts one DHCP goroutine per
// wired interface and returns. The goroutines run until ctx is done.
func Start(ctx context.Context, cfg Config) (*Network, error) {
	cfg = cfg.withDefaults()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("netcfg: loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("netcfg: bringing up lo: %w", err)
	}
	ifaces := cfg.Interfaces
	if ifaces == nil {
		if ifaces, err = WiredInterfaces(cfg.SysDir); err != nil {
			return nil, err
		}
	}
	if len(ifaces) == 0 {
		cfg.Logger.Warn("no wired network interface yet: watching for one")
	}
	n := &Network{cfg: cfg, leases: map[string]Lease{}}
	started := map[string]bool{}
	for _, name := range ifaces {
		n.startInterface(ctx, name)
		started[name] = true
	}
	if cfg.Interfaces == nil {
		// Interfaces that appear later (a driver loaded after byzd
		// started, a USB adapter plugged in) get DHCP too.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for sleep(ctx, cfg.Rescan) {
				now, err := WiredInterfaces(cfg.SysDir)
				if err != nil {
					continue
				}
				for _, name := range now {
					if !started[name] {
						started[name] = true
						cfg.Logger.Info("network interface appeared", "iface", name)
						n.startInterface(ctx, name)
					}
				}
			}
		}()
	}
	return n, nil
}

// startInterface brings name up and keeps it leased until ctx is done.
func (n *Network) startInterface(ctx context.Context, name string) {
	link, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetUp(link)
	}
	if err != nil {
		// Best effort: one broken interface must not stop the others.
		n.cfg.Logger.Error("cannot bring up interface", "iface", name, "err", err)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.run(ctx, name)
	}()
}

// Wait blocks until every DHCP goroutine has returned (after ctx is done).
func (n *Network) Wait() { n.wg.Wait() }

// Leases returns the current leases, sorted by interface.
func (n *Network) Leases() []Lease {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Lease
	for _, l := range n.leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Lease) int { return strings.Compare(a.Interface, b.Interface) })
	return out
}

func (n *Network) setLease(name string, l *Lease) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l == nil {
		delete(n.leases, name)
		return
	}
	n.leases[name] = *l
}
