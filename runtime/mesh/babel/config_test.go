package babel

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden configurations")

func testConfig() Config {
	return Config{
		RouterID:   RouterID{0x6a, 0x2e, 0x7b, 0x00, 0xde, 0xad, 0xbe, 0xef},
		Interfaces: []Interface{{Name: "eth1"}, {Name: "wlan0", Wireless: true}},
		Own: []netip.Prefix{
			netip.MustParsePrefix("10.140.46.1/32"),
			netip.MustParsePrefix("fd19:f45:f324:8c2e::1/128"),
		},
		Mesh: []MeshPrefix{
			{netip.MustParsePrefix("10.0.0.0/8"), 24},
			{netip.MustParsePrefix("fd19:f45:f324::/48"), 64},
		},
		Socket:    "/run/byz/mesh/babeld.sock",
		StateFile: "/run/byz/mesh/babel-state",
	}
}

// TestGenerateGolden compares with testdata/*.conf; babeld 1.12.1 reads
// them (TestBabeldParsesConfig).
func TestGenerateGolden(t *testing.T) {
	keyed := testConfig()
	keyed.Key = "correct horse battery staple"
	for name, c := range map[string]Config{"open.conf": testConfig(), "keyed.conf": keyed} {
		got, err := Generate(c)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join("testdata", name)
		if *update {
			os.WriteFile(p, got, 0o644)
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs:\n%s\nwant:\n%s", name, got, want)
		}
	}
}

func TestGenerateSemantics(t *testing.T) {
	c := testConfig()
	c.Key = "k"
	b, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"router-id 6a:2e:7b:00:de:ad:be:ef\n",
		"local-path /run/byz/mesh/babeld.sock\n",
		"skip-kernel-setup true\n",
		"import-table 200\n",
		"interface eth1 type wired hello-interval 2 key byz\n",
		"interface wlan0 type wireless hello-interval 1 key byz\n",
		"redistribute local ip 10.140.46.1/32 eq 32 allow\n",
		"redistribute proto 201 allow\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	if strings.Contains(s, " k\n") || strings.Contains(s, "value k") {
		t.Error("the mesh key itself is in the file")
	}
	// Order: the denies come after the allows they guard.
	if strings.Index(s, "redistribute local deny") < strings.Index(s, "redistribute local ip") ||
		strings.Index(s, "redistribute deny") < strings.Index(s, "redistribute proto 201") ||
		strings.Index(s, "in deny") < strings.Index(s, "in ip") {
		t.Error("a deny comes before its allows")
	}
}

func TestGenerateRefuses(t *testing.T) {
	tests := map[string]func(*Config){
		"no interfaces":     func(c *Config) { c.Interfaces = nil },
		"space in name":     func(c *Config) { c.Interfaces = []Interface{{Name: "eth 1"}} },
		"comment in name":   func(c *Config) { c.Interfaces = []Interface{{Name: "eth#1"}} },
		"long name":         func(c *Config) { c.Interfaces = []Interface{{Name: "abcdefghijklmnop"}} },
		"twice":             func(c *Config) { c.Interfaces = []Interface{{Name: "e"}, {Name: "e"}} },
		"relative socket":   func(c *Config) { c.Socket = "babeld.sock" },
		"newline in state":  func(c *Config) { c.StateFile = "/x\nimport-table 254" },
		"no router id":      func(c *Config) { c.RouterID = RouterID{} },
		"own is a /24":      func(c *Config) { c.Own = []netip.Prefix{netip.MustParsePrefix("10.1.1.0/24")} },
		"mesh min too long": func(c *Config) { c.Mesh = []MeshPrefix{{netip.MustParsePrefix("10.0.0.0/8"), 33}} },
	}
	for name, mod := range tests {
		c := testConfig()
		mod(&c)
		if _, err := Generate(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Generate err = %v, want ErrConfig", name, err)
		}
	}
}

func TestRouterID(t *testing.T) {
	claimed := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	id, err := NewRouterID(claimed, bytes.NewReader([]byte{1, 2, 3, 4}))
	if err != nil {
		t.Fatal(err)
	}
	if !id.Claimed().Equal(claimed) {
		t.Errorf("Claimed = %v, want %v", id.Claimed(), claimed)
	}
	back, err := ParseRouterID(id.String())
	if err != nil || back != id {
		t.Errorf("ParseRouterID(%s) = %v, %v", id, back, err)
	}
	if id.String() != "6b:11:13:70:01:02:03:04" {
		t.Errorf("String = %s", id)
	}
	for _, bad := range []string{"", "6a:00", "6a:00:00:01:de:ad:be:e1:00", "6a:00:00:01:de:ad:be:zz", "6a:0:00:01:de:ad:be:e1", "6a-00-00-01-de-ad-be-e1", "6a:00:00:01:de:ad:b:e1f", "6a:00:00:01:de:ad:be:+1"} {
		if _, err := ParseRouterID(bad); err == nil {
			t.Errorf("ParseRouterID(%q) accepted", bad)
		}
	}
}

func TestYounger(t *testing.T) {
	old := RouterID{0x60, 0, 0, 0, 9, 9, 9, 9}
	young := RouterID{0x61, 0, 0, 0, 0, 0, 0, 0}
	sameSmall := RouterID{0x60, 0, 0, 0, 1, 1, 1, 1}
	tests := []struct {
		a, b RouterID
		want bool
	}{
		{young, old, true},
		{old, young, false},
		{old, sameSmall, true}, // equal time: the larger id gives way
		{sameSmall, old, false},
	}
	for _, tt := range tests {
		if got := Younger(tt.a, tt.b); got != tt.want {
			t.Errorf("Younger(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
