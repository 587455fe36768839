package netcfg

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// ack builds a server's ACK for 192.0.2.10/24 with extra options.
func ack(t testing.TB, opts ...dhcpv4.Modifier) *nclient4.Lease {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 10)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
		dhcpv4.WithRouter(net.IPv4(192, 0, 2, 1)),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	// Through the wire format, as a client receives it.
	m, err = dhcpv4.FromBytes(m.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return &nclient4.Lease{ACK: m, CreationTime: time.Unix(1e9, 0)}
}

func domainName(d string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptDomainName(d)) }
func search(d ...string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: d}))
}
func dns(ips ...string) dhcpv4.Modifier {
	var out []net.IP
	for _, ip := range ips {
		out = append(out, net.ParseIP(ip))
	}
	return dhcpv4.WithDNS(out...)
}

// TestHostileLease: what a rogue DHCP server on the link sends for the
// domain name (option 15), the search list (option 119) and the DNS
// servers (option 6) must not add lines to resolv.conf nor anything but
// host names and addresses to it; what is dropped is said in Refused.
func TestHostileLease(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name    string
		opts    []dhcpv4.Modifier
		search  []string
		dns     []string
		refused []string // a phrase of each, in order
	}{
		{"ordinary", []dhcpv4.Modifier{domainName("mesh.example."), dns("192.0.2.53", "192.0.2.54")},
			[]string{"mesh.example"}, []string{"192.0.2.53", "192.0.2.54"}, nil},
		{"a line injected through option 15", []dhcpv4.Modifier{domainName("evil.example\nnameserver 203.0.113.66"), dns("192.0.2.53")},
			nil, []string{"192.0.2.53"}, []string{`search domain "evil.example\nnameserver 203.0.113.66": character '\n'`}},
		{"carriage return, tab, space, NUL, hash", []dhcpv4.Modifier{search("a\rb.example", "a\tb", "a b", "a\x00b", "x#y.example", "ok.example")},
			[]string{"ok.example"}, nil, []string{`"a\rb.example": character '\r'`, `'\t'`, `' '`, `'\x00'`, `'#'`}},
		{"options in a search label", []dhcpv4.Modifier{search("example.org\noptions ndots:15 attempts:5")},
			nil, nil, []string{`character '\n'`}},
		{"a label too long", []dhcpv4.Modifier{search(long+"a.example", long+".example")},
			[]string{long + ".example"}, nil, []string{"a label of 64 characters"}},
		{"an empty label", []dhcpv4.Modifier{domainName("a..b")}, nil, nil, []string{"a label of 0 characters"}},
		{"only a dot", []dhcpv4.Modifier{domainName(".")}, nil, nil, []string{"0 characters, want 1 to 253"}},
		{"a name of 254 characters", []dhcpv4.Modifier{domainName(strings.Repeat(long+".", 3) + strings.Repeat("b", 62))},
			nil, nil, []string{"254 characters, want 1 to 253"}},
		{"hyphens at the ends", []dhcpv4.Modifier{search("-a.example", "a-.example", "a-b.example")},
			[]string{"a-b.example"}, nil, []string{"starts or ends with a hyphen", "starts or ends with a hyphen"}},
		{"too many search domains", []dhcpv4.Modifier{search("a1.x", "a2.x", "a3.x", "a4.x", "a5.x", "a6.x", "a7.x", "a1.x")},
			[]string{"a1.x", "a2.x", "a3.x", "a4.x", "a5.x", "a6.x"}, nil, []string{`"a7.x": more than 6 domains`, `"a1.x": more than 6`}},
		{"a search line past 256 characters", []dhcpv4.Modifier{search(long+".a", long+".b", long+".c", long+".d")},
			[]string{long + ".a", long + ".b", long + ".c"}, nil, []string{"or 256 characters"}},
		{"DNS servers that are not unicast", []dhcpv4.Modifier{dns("0.0.0.0", "255.255.255.255", "224.0.0.251", "192.0.2.53", "192.0.2.53")},
			nil, []string{"192.0.2.53"}, []string{"DNS server 255.255.255.255: not a unicast", "DNS server 224.0.0.251: not a unicast"}},
		{"more than three DNS servers", []dhcpv4.Modifier{dns("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")},
			nil, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, []string{"DNS server 192.0.2.4: more than 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseLease("eth0", ack(t, tc.opts...))
			if err != nil {
				t.Fatal(err)
			}
			var gotDNS []string
			for _, a := range l.DNS {
				gotDNS = append(gotDNS, a.String())
			}
			if !slices.Equal(l.Search, tc.search) || !slices.Equal(gotDNS, tc.dns) {
				t.Errorf("search %q dns %q, want %q %q", l.Search, gotDNS, tc.search, tc.dns)
			}
			if len(l.Refused) != len(tc.refused) {
				t.Errorf("refused %q, want %d", l.Refused, len(tc.refused))
			}
			for i := range min(len(l.Refused), len(tc.refused)) {
				if !strings.Contains(l.Refused[i], tc.refused[i]) {
					t.Errorf("refused[%d] = %q, want %q in it", i, l.Refused[i], tc.refused[i])
				}
			}
			if err := checkResolvConf(resolvConf(l)); err != nil {
				t.Errorf("%v:\n%s", err, resolvConf(l))
			}
		})
	}
}

// checkResolvConf checks the file byzd writes: the comment, at most one
// search line of host names, at most three nameserver lines of addresses,
// nothing else.
func checkResolvConf(b []byte) error {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if !bytes.HasSuffix(b, []byte("\n")) || !strings.HasPrefix(lines[0], "# Written by byzd from the DHCP lease on ") {
		return errorf("no comment first or no final line break")
	}
	searches, servers := 0, 0
	for _, line := range lines[1:] {
		if strings.ContainsFunc(line, func(r rune) bool { return r < ' ' || r > '~' }) {
			return errorf("a control or non-ASCII character in %q", line)
		}
		if rest, ok := strings.CutPrefix(line, "search "); ok && searches == 0 && servers == 0 {
			searches++
			if len(line) > maxSearchLine {
				return errorf("a search line of %d characters", len(line))
			}
			names := strings.Split(rest, " ")
			if len(names) > maxSearch {
				return errorf("%d search domains", len(names))
			}
			for _, d := range names {
				if err := checkDomain(d); err != nil {
					return errorf("search domain %q: %v", d, err)
				}
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "nameserver "); ok {
			servers++
			if a, err := netip.ParseAddr(rest); err != nil || !unicast(a) || servers > maxNameservers {
				return errorf("nameserver line %q (%d)", line, servers)
			}
			continue
		}
		return errorf("unexpected line %q", line)
	}
	return nil
}

func errorf(format string, a ...any) error { return fmt.Errorf("resolv.conf: "+format, a...) }

// FuzzParseLease feeds the lease parser any DHCP message: it must not
// panic, and a lease it accepts renders to a resolv.conf holding only its
// comment, host names and unicast addresses. The seeds are ACKs as
// servers send them, ordinary and hostile.
func FuzzParseLease(f *testing.F) {
	for _, opts := range [][]dhcpv4.Modifier{
		nil,
		{domainName("mesh.example"), dns("192.0.2.53"), dhcpv4.WithLeaseTime(3600)},
		{search("mesh.example", "lan", "example.org"), dns("192.0.2.53", "198.51.100.1")},
		{domainName("evil.example\nnameserver 203.0.113.66"), dns("0.0.0.0", "255.255.255.255")},
		{search("a\x00b", strings.Repeat("x", 70)+".example"), dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(0))},
		{dhcpv4.WithNetmask(net.IPMask{255, 0, 255, 0}), dhcpv4.WithLeaseTime(0xffffffff)},
	} {
		f.Add(ack(f, opts...).ACK.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		l, err := parseLease("eth0", &nclient4.Lease{ACK: m, CreationTime: time.Unix(1e9, 0)})
		if err != nil {
			return
		}
		if !l.Address.Addr().Is4() || l.Renew < time.Second {
			t.Fatalf("lease %+v", l)
		}
		if err := checkResolvConf(resolvConf(l)); err != nil {
			t.Fatalf("%v:\n%q", err, resolvConf(l))
		}
	})
}
