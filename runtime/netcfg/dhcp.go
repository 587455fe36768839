package netcfg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// maxRenewWait bounds the sleep before a renewal, so an "infinite" lease
// (0xffffffff seconds) is still confirmed once a day.
const maxRenewWait = 24 * time.Hour

// run keeps one interface leased until ctx is done: acquire, apply, renew
// at T1, and start over with a backoff when anything fails.
func (n *Network) run(ctx context.Context, name string) {
	log := n.cfg.Logger.With("iface", name)
	backoff := time.Second
	for {
		leased, err := n.session(ctx, name, log)
		if ctx.Err() != nil {
			return
		}
		if leased {
			backoff = time.Second
		}
		log.Warn("DHCP: no lease, retrying", "in", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, n.cfg.MaxBackoff)
	}
}

// session acquires a lease and holds it through renewals; it returns when
// the lease is lost (reporting whether there was one) or ctx is done.
func (n *Network) session(ctx context.Context, name string, log *slog.Logger) (bool, error) {
	var mods []dhcpv4.Modifier
	if n.cfg.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(n.cfg.Hostname)))
	}
	raw, err := n.exchange(name, func(c *nclient4.Client) (*nclient4.Lease, error) { return c.Request(ctx, mods...) })
	if err != nil {
		return false, err
	}
	var prev *Lease
	for {
		l, err := parseLease(name, raw)
		if err != nil {
			return prev != nil, err
		}
		if err := apply(l, prev, n.cfg.RootDir); err != nil {
			return prev != nil, err
		}
		prev = &l
		n.setLease(name, prev)
		log.Info("DHCP lease", "addr", l.Address, "router", l.Router, "dns", l.DNS, "lease", l.Duration)
		if len(l.Refused) > 0 {
			log.Warn("DHCP: the server's lease had values not used", "server", l.Server, "refused", strings.Join(l.Refused, "; "))
		}
		if n.cfg.OnLease != nil {
			n.cfg.OnLease(l)
		}
		expiry := l.Acquired.Add(l.Duration)
		wait := min(l.Renew, maxRenewWait)
		for {
			if !sleep(ctx, wait) {
				return true, nil
			}
			raw2, err := n.exchange(name, func(c *nclient4.Client) (*nclient4.Lease, error) { return c.Renew(ctx, raw, mods...) })
			if err == nil {
				raw = raw2
				break
			}
			left := time.Until(expiry)
			if left <= 0 {
				n.setLease(name, nil)
				if rerr := unapply(l); rerr != nil {
					log.Error("removing expired address", "err", rerr)
				}
				return true, fmt.Errorf("lease on %s expired: %w", name, err)
			}
			log.Warn("DHCP renewal failed", "left", left.Round(time.Second), "err", err)
			wait = max(left/2, time.Second)
		}
	}
}

// exchange runs one DHCP exchange with a client opened for it alone: the
// client's raw socket sees every IP packet on the interface, too costly
// to keep open between renewals.
func (n *Network) exchange(name string, f func(*nclient4.Client) (*nclient4.Lease, error)) (*nclient4.Lease, error) {
	c, err := nclient4.New(name, nclient4.WithTimeout(n.cfg.Timeout), nclient4.WithRetry(n.cfg.Retries))
	if err != nil {
		return nil, fmt.Errorf("DHCP client on %s: %w", name, err)
	}
	defer c.Close()
	return f(c)
}

// parseLease turns the server's ACK into a Lease.
func parseLease(name string, raw *nclient4.Lease) (Lease, error) {
	ack := raw.ACK
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !ip.IsGlobalUnicast() {
		return Lease{}, fmt.Errorf("DHCP on %s: server offered unusable address %v", name, ack.YourIPAddr)
	}
	mask := ack.SubnetMask()
	if mask == nil {
		// RFC 2131 leaves the mask optional; fall back to the address class.
		mask = ack.YourIPAddr.DefaultMask()
	}
	bits, size := mask.Size()
	if size != 32 {
		return Lease{}, fmt.Errorf("DHCP on %s: bad subnet mask %v", name, mask)
	}
	l := Lease{
		Interface: name,
		Address:   netip.PrefixFrom(ip, bits),
		Server:    first(addrs([]net.IP{ack.ServerIdentifier()})),
		Acquired:  raw.CreationTime,
		Duration:  ack.IPAddressLeaseTime(time.Hour),
	}
	// What a server on the link says goes into resolv.conf: anyone can be
	// that server, so only addresses and host names get through.
	for _, a := range addrs(ack.DNS()) {
		switch {
		case !unicast(a):
			l.Refused = append(l.Refused, "DNS server "+a.String()+": not a unicast address")
		case slices.Contains(l.DNS, a):
		case len(l.DNS) == maxNameservers:
			l.Refused = append(l.Refused, "DNS server "+a.String()+": more than "+strconv.Itoa(maxNameservers))
		default:
			l.DNS = append(l.DNS, a)
		}
	}
	l.Renew = ack.IPAddressRenewalTime(l.Duration / 2)
	if l.Renew <= 0 || l.Renew >= l.Duration {
		l.Renew = l.Duration / 2
	}
	l.Renew = max(l.Renew, time.Second)
	if r := addrs(ack.Router()); len(r) > 0 && unicast(r[0]) {
		l.Router = r[0]
	}
	var search []string
	if s := ack.DomainSearch(); s != nil {
		search = s.Labels
	} else if d := ack.DomainName(); d != "" {
		search = []string{d}
	}
	line := len("search")
	for _, d := range search {
		d = strings.TrimSuffix(d, ".")
		if err := checkDomain(d); err != nil {
			l.Refused = append(l.Refused, fmt.Sprintf("search domain %q: %v", d, err))
			continue
		}
		if len(l.Search) == maxSearch || line+1+len(d) > maxSearchLine {
			l.Refused = append(l.Refused, fmt.Sprintf("search domain %q: more than %d domains or %d characters", d, maxSearch, maxSearchLine))
			continue
		}
		if !slices.Contains(l.Search, d) {
			l.Search = append(l.Search, d)
			line += 1 + len(d)
		}
	}
	if l.Acquired.IsZero() {
		l.Acquired = time.Now()
	}
	return l, nil
}

// What resolv.conf takes from a lease, at most: the resolvers read three
// name servers and six search domains (glibc's MAXNS and MAXDNSRCH), in a
// line of 256 characters.
const (
	maxNameservers = 3
	maxSearch      = 6
	maxSearchLine  = 256
)

// unicast reports whether a can be a DNS server or a router.
func unicast(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// checkDomain checks a domain name as RFC 1035 (2.3.1) writes one, with
// RFC 1123's leading digits: labels of letters, digits and inner hyphens,
// 1 to 63 characters each, 253 in all. Nothing else (a space, a line
// break, a NUL) can then reach resolv.conf.
func checkDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("%d characters, want 1 to 253", len(d))
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("a label of %d characters, want 1 to 63", len(label))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a label starts or ends with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("character %q: want letters, digits, hyphens and dots", c)
			}
		}
	}
	return nil
}

func addrs(ips []net.IP) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.To4()); ok && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	return out
}

func first(a []netip.Addr) netip.Addr {
	if len(a) == 0 {
		return netip.Addr{}
	}
	return a[0]
}

// sleep waits d or until ctx is done, reporting whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
