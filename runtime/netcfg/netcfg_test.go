package netcfg

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

func TestWiredInterfaces(t *testing.T) {
	sys := t.TempDir()
	// name → files under /sys/class/net/name, as a real kernel lays them out.
	fake := map[string][]string{
		"lo":     {"type=772"},
		"eth0":   {"type=1"},
		"enp3s0": {"type=1"},
		"wlan0":  {"type=1", "wireless/"},
		"wlp2s0": {"type=1", "phy80211/"},
		"sit0":   {"type=776"},
		"broken": {}, // no type file: skipped, not an error
	}
	for name, files := range fake {
		dir := filepath.Join(sys, "class", "net", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if d, ok := strings.CutSuffix(f, "/"); ok {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
				continue
			}
			k, v, _ := strings.Cut(f, "=")
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := WiredInterfaces(sys)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"enp3s0", "eth0"}; !slices.Equal(got, want) {
		t.Errorf("WiredInterfaces = %q, want %q", got, want)
	}
	if _, err := WiredInterfaces(filepath.Join(sys, "missing")); err == nil {
		t.Error("WiredInterfaces on a missing sysfs: no error")
	}
}

func TestParseLease(t *testing.T) {
	ip := net.IPv4(192, 0, 2, 10)
	tests := []struct {
		name    string
		mods    []dhcpv4.Modifier
		yiaddr  net.IP
		want    Lease
		wantErr bool
	}{
		{
			name: "full",
			mods: []dhcpv4.Modifier{
				dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
				dhcpv4.WithRouter(net.IPv4(192, 0, 2, 1)),
				dhcpv4.WithDNS(net.IPv4(192, 0, 2, 53), net.IPv4(192, 0, 2, 54)),
				dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"mesh.example", "example"}})),
				dhcpv4.WithLeaseTime(600),
				dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(200 * time.Second)),
			},
			yiaddr: ip,
			want: Lease{
				Address: netip.MustParsePrefix("192.0.2.10/24"), Router: netip.MustParseAddr("192.0.2.1"),
				DNS:    []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")},
				Search: []string{"mesh.example", "example"}, Duration: 600 * time.Second, Renew: 200 * time.Second,
			},
		},
		{
			name:   "minimal: class C mask, no router, default times",
			mods:   []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptDomainName("lan"))},
			yiaddr: ip,
			want:   Lease{Address: netip.MustParsePrefix("192.0.2.10/24"), Search: []string{"lan"}, Duration: time.Hour, Renew: 30 * time.Minute},
		},
		{
			name:   "T1 past the lease end is ignored",
			mods:   []dhcpv4.Modifier{dhcpv4.WithLeaseTime(100), dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(500 * time.Second))},
			yiaddr: ip,
			want:   Lease{Address: netip.MustParsePrefix("192.0.2.10/24"), Duration: 100 * time.Second, Renew: 50 * time.Second},
		},
		{name: "no address", yiaddr: net.IPv4zero, wantErr: true},
		{name: "broadcast address", yiaddr: net.IPv4bcast, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack, err := dhcpv4.New(append(tt.mods, dhcpv4.WithYourIP(tt.yiaddr))...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseLease("eth0", &nclient4.Lease{ACK: ack, CreationTime: time.Unix(1000, 0)})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseLease = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Interface, tt.want.Acquired = "eth0", time.Unix(1000, 0)
			if got.Address != tt.want.Address || got.Router != tt.want.Router || !slices.Equal(got.DNS, tt.want.DNS) ||
				!slices.Equal(got.Search, tt.want.Search) || got.Duration != tt.want.Duration || got.Renew != tt.want.Renew ||
				got.Interface != tt.want.Interface || !got.Acquired.Equal(tt.want.Acquired) {
				t.Errorf("parseLease =\n%+v, want\n%+v", got, tt.want)
			}
		})
	}
}

func TestWriteResolvConf(t *testing.T) {
	root := t.TempDir()
	l := Lease{Interface: "eth0", DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, Search: []string{"mesh.example"}}
	for range 2 { // the second write replaces the first
		if err := writeResolvConf(root, l); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Written by byzd from the DHCP lease on eth0.\nsearch mesh.example\nnameserver 192.0.2.53\n"
	if string(got) != want {
		t.Errorf("resolv.conf =\n%s\nwant\n%s", got, want)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "etc"))
	if len(ents) != 1 {
		t.Errorf("etc holds %d files, want only resolv.conf (temporary files left?)", len(ents))
	}
}
