package gateway

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/runtime/mesh/addr"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// nftIn is an nftables connection into the namespace at path.
func nftIn(t testing.TB, path string) *nftables.Conn {
	t.Helper()
	ns, err := openNetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.close)
	c, err := ns.nft()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ruleSummary reads a rule back from the kernel and says it in nft's
// words: "oifname=up0 ip saddr=10.0.0.0/8 masq".
func ruleSummary(t *testing.T, r *nftables.Rule) string {
	t.Helper()
	var words []string
	var key string // what the register holds
	var mask []byte
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Meta:
			key = map[expr.MetaKey]string{expr.MetaKeyOIFNAME: "oifname", expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyNFPROTO: "nfproto"}[e.Key]
		case *expr.Payload:
			key = "saddr"
		case *expr.Ct:
			key = "ct state"
		case *expr.Bitwise:
			mask = e.Mask
		case *expr.Cmp:
			switch key {
			case "oifname", "iifname":
				words = append(words, key+"="+strings.TrimRight(string(e.Data), "\x00"))
			case "nfproto":
				words = append(words, map[byte]string{2: "ip", 10: "ip6"}[e.Data[0]])
			case "saddr":
				a, _ := netip.AddrFromSlice(e.Data)
				bits := 0
				for _, b := range mask {
					for ; b&0x80 != 0; b <<= 1 {
						bits++
					}
				}
				words = append(words, "saddr="+netip.PrefixFrom(a, bits).String())
			case "ct state":
				if e.Op == expr.CmpOpNeq && mask[0] == byte(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED) {
					words = append(words, "ct state established,related")
				} else {
					words = append(words, "ct state ?")
				}
			}
		case *expr.Masq:
			words = append(words, "masq")
		case *expr.Verdict:
			words = append(words, map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop"}[e.Kind])
		default:
			words = append(words, "?")
		}
	}
	return strings.Join(words, " ")
}

// readNAT reads the gateway's table back through the library: each
// chain's hook, type and rules.
func readNAT(t *testing.T, c *nftables.Conn, table string) map[string][]string {
	t.Helper()
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, ch := range chains {
		if ch.Table.Name != table {
			continue
		}
		head := string(ch.Type)
		if ch.Hooknum != nil && ch.Priority != nil && ch.Policy != nil {
			head += " hook=" + map[nftables.ChainHook]string{*nftables.ChainHookPostrouting: "postrouting", *nftables.ChainHookForward: "forward"}[*ch.Hooknum]
			head += map[nftables.ChainPolicy]string{nftables.ChainPolicyAccept: " accept", nftables.ChainPolicyDrop: " drop"}[*ch.Policy]
		}
		got[ch.Name] = []string{head}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			got[ch.Name] = append(got[ch.Name], ruleSummary(t, r))
		}
	}
	return got
}

func wantNAT(uplink string, prefixes ...string) map[string][]string {
	return wantNATUplinks(append([]string{uplink}, prefixes...))
}

// defaultULA is DefaultPrefixes' IPv6 one, spelled out: the test fails if
// the mesh's ULA (addr.ULA) changes under the NAT.
const defaultULA = "fd19:f45:f324::/48"

// wantNATUplinks is the table for several uplinks, each given as its name
// and then the prefixes leaving by it.
func wantNATUplinks(groups ...[]string) map[string][]string {
	post := []string{"nat hook=postrouting accept"}
	fwd := []string{"filter hook=forward accept"}
	for _, g := range groups {
		fwd = append(fwd, "iifname="+g[0]+" ct state established,related accept", "iifname="+g[0]+" drop")
	}
	for _, g := range groups {
		uplink := g[0]
		for _, p := range g[1:] {
			fam := "ip"
			if strings.Contains(p, ":") {
				fam = "ip6"
			}
			post = append(post, "oifname="+uplink+" "+fam+" saddr="+p+" masq")
			fwd = append(fwd, "oifname="+uplink+" "+fam+" saddr="+p+" accept")
		}
		fwd = append(fwd, "oifname="+uplink+" drop")
	}
	return map[string][]string{"postrouting": post, "forward": fwd}
}

func equalNAT(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// nftJSON is the part of `nft -j list ruleset` the oracle reads.
type nftJSON struct {
	Nftables []map[string]json.RawMessage `json:"nftables"`
}

// nftOracle lists the ruleset with the nft tool inside ns and returns the
// tables ("family name") and the rules of table as nft's JSON expressions.
func nftOracle(t *testing.T, ns, table string) (tables []string, rules []string) {
	t.Helper()
	nft := testenv.RequireTool(t, "nft")
	out, err := exec.Command("ip", "netns", "exec", ns, nft, "-j", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft -j list ruleset: %v\n%s", err, out)
	}
	var doc nftJSON
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["table"]; ok {
			var tb struct{ Family, Name string }
			json.Unmarshal(raw, &tb)
			tables = append(tables, tb.Family+" "+tb.Name)
		}
		if raw, ok := obj["rule"]; ok {
			var r struct {
				Table string
				Chain string
				Expr  json.RawMessage
			}
			json.Unmarshal(raw, &r)
			if r.Table == table {
				var b bytes.Buffer
				if err := json.Compact(&b, r.Expr); err != nil {
					t.Fatal(err)
				}
				rules = append(rules, r.Chain+" "+b.String())
			}
		}
	}
	return tables, rules
}

func TestNATApplyReadBackRemove(t *testing.T) {
	ns, path := testNS(t, "nat")
	c := nftIn(t, path)

	// Someone else's table, which the gateway must never touch.
	nsExec(t, ns, testenv.RequireTool(t, "nft"), "add table ip other; add chain ip other c { type filter hook input priority 0; }; add rule ip other c tcp dport 22 accept")

	mesh6 := netip.MustParsePrefix("fd12:3456:789a::/48")
	steps := []struct {
		name string
		nat  NAT
		want map[string][]string
	}{
		{"default prefixes", NAT{Uplink: "up0"}, wantNAT("up0", "10.0.0.0/8", defaultULA)},
		{"again, idempotent", NAT{Uplink: "up0"}, wantNAT("up0", "10.0.0.0/8", defaultULA)},
		{"uplink renamed", NAT{Uplink: "wwan0"}, wantNAT("wwan0", "10.0.0.0/8", defaultULA)},
		{"two families", NAT{Uplink: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.23.0.0/16"), mesh6}},
			wantNAT("eth1", "10.23.0.0/16", "fd12:3456:789a::/48")},
		{"IPv6 by the same uplink", NAT{Uplink: "eth1", Uplink6: "eth1"}, wantNAT("eth1", "10.0.0.0/8", defaultULA)},
		// IPv6 leaves by another interface: each uplink masquerades its
		// family only, and drops what else would leave by it.
		{"IPv6 by another uplink", NAT{Uplink: "eth1", Uplink6: "usb0"},
			wantNATUplinks([]string{"eth1", "10.0.0.0/8"}, []string{"usb0", defaultULA})},
		{"IPv6 only", NAT{Uplink6: "usb0"}, wantNATUplinks([]string{"usb0", defaultULA})},
	}
	for _, s := range steps {
		if err := s.nat.Apply(c); err != nil {
			t.Fatalf("%s: Apply: %v", s.name, err)
		}
		if got := readNAT(t, c, DefaultNATTable); !equalNAT(got, s.want) {
			t.Errorf("%s: kernel holds\n%q\nwant\n%q", s.name, got, s.want)
		}
		tables, rules := nftOracle(t, ns, DefaultNATTable)
		if !slices.Equal(tables, []string{"ip other", "inet " + DefaultNATTable}) {
			t.Errorf("%s: nft lists tables %q", s.name, tables)
		}
		// nft's own reading of the masquerade rule.
		joined := strings.Join(rules, "\n")
		for _, want := range []string{
			`postrouting [{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"` + s.nat.uplinks()[0] + `"}}`,
			`{"masquerade":null}`,
			`{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}}`,
		} {
			if !strings.Contains(joined, want) {
				t.Errorf("%s: nft -j rules lack %s:\n%s", s.name, want, joined)
			}
		}
		for _, p := range s.nat.prefixes() {
			if s.nat.uplinkFor(p) != "" && !strings.Contains(joined, `"prefix":{"addr":"`+p.Addr().String()+`","len":`) {
				t.Errorf("%s: nft -j shows no saddr prefix %s:\n%s", s.name, p, joined)
			}
		}
	}
	if ok, err := NATPresent(c, ""); !ok || err != nil {
		t.Errorf("NATPresent = %v, %v after Apply", ok, err)
	}
	for range 2 { // the second Remove finds nothing and must not fail
		if err := RemoveNAT(c, ""); err != nil {
			t.Fatalf("RemoveNAT: %v", err)
		}
	}
	if ok, err := NATPresent(c, ""); ok || err != nil {
		t.Errorf("NATPresent = %v, %v after RemoveNAT", ok, err)
	}
	if tables, _ := nftOracle(t, ns, DefaultNATTable); !slices.Equal(tables, []string{"ip other"}) {
		t.Errorf("after RemoveNAT nft lists tables %q, want only the other one", tables)
	}
}

func TestNATRefuses(t *testing.T) {
	cases := []struct {
		name string
		nat  NAT
		want string
	}{
		{"no uplink", NAT{}, "gateway: interface name: an empty name"},
		{"bad IPv6 uplink", NAT{Uplink: "eth0", Uplink6: "eth0/1"}, "letters, digits and punctuation other than / and :"},
		{"bad uplink", NAT{Uplink: "eth0/1"}, "letters, digits and punctuation other than / and :"},
		{"long uplink", NAT{Uplink: "abcdefghijklmnop"}, "is 16 bytes: at most 15"},
		{"host bits", NAT{Uplink: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}}, "not a network prefix"},
		{"empty list", NAT{Uplink: "eth0", Prefixes: []netip.Prefix{}}, "1 to 64 prefixes"},
	}
	for _, c := range cases {
		// validate runs before any netlink traffic: a nil connection
		// would panic if Apply got that far.
		err := c.nat.Apply(nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Apply = %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestDefaultPrefixes: the NAT's defaults are the mesh's own ranges, the
// ULA taken from runtime/mesh/addr (the one definition).
func TestDefaultPrefixes(t *testing.T) {
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), addr.ULA}
	if !slices.Equal(DefaultPrefixes, want) || addr.ULA.String() != defaultULA {
		t.Errorf("DefaultPrefixes = %v, want %v (%s)", DefaultPrefixes, want, defaultULA)
	}
}
