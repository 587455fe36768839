package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"byzantium/runtime/mesh/addr"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// DefaultNATTable is the nftables table (family inet) the gateway owns.
// Nothing else in it is kept: Apply replaces it whole.
const DefaultNATTable = "byz-gateway"

// DefaultPrefixes are the sources masqueraded when the manager names none:
// the whole 10/8 the mesh's IPv4 addresses and client prefixes come from,
// and the mesh's ULA /48 (addr.ULA), whose addresses the Net does not
// route back: NAT66 is the one way a ULA-only mesh reaches the IPv6 Net
// without a delegated prefix.
var DefaultPrefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), addr.ULA}

const maxPrefixes = 64

// NAT is the gateway's nftables table: masquerade traffic from Prefixes
// leaving by Uplink (the IPv6 ones by Uplink6 when it is set), and a
// forward policy for the uplink(s). With one uplink its rules are
//
//	table inet byz-gateway {
//	  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//	    oifname UPLINK ip saddr PREFIX masquerade   # one per prefix (ip6 for IPv6 ones)
//	  }
//	  chain forward { type filter hook forward priority filter; policy accept;
//	    iifname UPLINK ct state established,related accept
//	    iifname UPLINK drop                        # the Net starts nothing in the mesh
//	    oifname UPLINK ip saddr PREFIX accept      # one per prefix
//	    oifname UPLINK drop                        # nothing else leaves un-NATed
//	  }
//	}
//
// The forward chain's policy is accept: mesh traffic between mesh
// interfaces and clients is forwarded too, and a drop policy in this table
// would drop it whatever other tables say.
//
// When IPv6 leaves by another interface than IPv4 (Uplink6 set and not
// Uplink), each uplink gets its own rules, for the prefixes of its family:
// the two iifname rules per uplink first, then each uplink's accepts and
// its final drop. Uplink may be "" (an IPv6-only uplink): then no IPv4
// prefix is masqueraded, and IPv4 that would leave by Uplink6 is dropped.
type NAT struct {
	Table    string         // "" means DefaultNATTable
	Uplink   string         // IPv4's way out ("" for none, when Uplink6 is set)
	Uplink6  string         // IPv6's way out; "" means Uplink
	Prefixes []netip.Prefix // nil means DefaultPrefixes
}

// uplinkFor is the interface p's traffic leaves by, "" for none.
func (n NAT) uplinkFor(p netip.Prefix) string {
	if p.Addr().Is6() && n.Uplink6 != "" {
		return n.Uplink6
	}
	return n.Uplink
}

// uplinks are the distinct ways out, IPv4's first.
func (n NAT) uplinks() []string {
	var out []string
	for _, u := range []string{n.Uplink, n.Uplink6} {
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

func (n NAT) table() *nftables.Table {
	name := n.Table
	if name == "" {
		name = DefaultNATTable
	}
	return &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
}

func (n NAT) prefixes() []netip.Prefix {
	if n.Prefixes == nil {
		return DefaultPrefixes
	}
	return n.Prefixes
}

// validate refuses what would make a wrong or oversized rule set.
func (n NAT) validate() error {
	if n.Uplink != "" || n.Uplink6 == "" {
		if err := ValidInterfaceName(n.Uplink); err != nil {
			return err
		}
	}
	if n.Uplink6 != "" {
		if err := ValidInterfaceName(n.Uplink6); err != nil {
			return err
		}
	}
	ps := n.prefixes()
	if len(ps) == 0 || len(ps) > maxPrefixes {
		return fmt.Errorf("gateway: NAT needs 1 to %d prefixes, got %d", maxPrefixes, len(ps))
	}
	for _, p := range ps {
		if !p.IsValid() || p.Masked() != p {
			return fmt.Errorf("gateway: NAT prefix %s is not a network prefix (host bits set?)", p)
		}
	}
	if len(n.Table) > 64 {
		return errors.New("gateway: NAT table name longer than 64 bytes")
	}
	return nil
}

// Apply replaces the gateway's table with n in one netlink batch, which
// the kernel applies as one transaction: the table is never half there,
// and no other table is touched. Applying the same n twice is harmless.
func (n NAT) Apply(c *nftables.Conn) error {
	if err := n.validate(); err != nil {
		return err
	}
	t := n.table()
	// Add (a no-op if it exists), delete, add again: the idiom that
	// replaces a table whether or not it was there, in the same batch.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept,
	})
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	for _, u := range n.uplinks() {
		for _, p := range n.prefixes() {
			if n.uplinkFor(p) == u {
				c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: concat(ifMatch(unix.NFT_META_OIFNAME, u), srcMatch(p), []expr.Any{&expr.Masq{}})})
			}
		}
	}
	for _, u := range n.uplinks() {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifMatch(unix.NFT_META_IIFNAME, u), []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		})})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifMatch(unix.NFT_META_IIFNAME, u), []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
	}
	for _, u := range n.uplinks() {
		for _, p := range n.prefixes() {
			if n.uplinkFor(p) == u {
				c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifMatch(unix.NFT_META_OIFNAME, u), srcMatch(p), []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})})
			}
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(ifMatch(unix.NFT_META_OIFNAME, u), []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
	}
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			// The kernel knows no "masq", "ct" or nat chain type: it
			// found no module for it (a node without modprobe loads
			// them itself).
			return fmt.Errorf("gateway: applying nftables table %s: %w (are the kernel modules %v loaded?)", t.Name, err, KernelModules)
		}
		return fmt.Errorf("gateway: applying nftables table %s: %w", t.Name, err)
	}
	return nil
}

// KernelModules are the modules the NAT needs where nftables is built as
// modules (Debian 12's kernel has them all), each to be loaded with its
// dependencies from modules.dep (nfnetlink, nf_defrag_ipv4/6, libcrc32c).
// The kernel loads them on demand through modprobe; a node without one
// must load them before the gateway runs.
var KernelModules = []string{"nf_tables", "nf_conntrack", "nf_nat", "nft_chain_nat", "nft_ct", "nft_masq"}

// RemoveNAT deletes the table named table ("" for DefaultNATTable), and
// nothing else; removing a table that is not there is not an error.
func RemoveNAT(c *nftables.Conn, table string) error {
	t := NAT{Table: table}.table()
	c.AddTable(t) // so that the delete never fails for a missing table
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("gateway: removing nftables table %s: %w", t.Name, err)
	}
	return nil
}

// NATPresent tells whether the table exists (someone may have flushed the
// whole ruleset under the gateway).
func NATPresent(c *nftables.Conn, table string) (bool, error) {
	t := NAT{Table: table}.table()
	tables, err := c.ListTablesOfFamily(t.Family)
	if err != nil {
		return false, fmt.Errorf("gateway: listing nftables tables: %w", err)
	}
	for _, x := range tables {
		if x.Name == t.Name {
			return true, nil
		}
	}
	return false, nil
}

// ifMatch compares the in or out interface's name, zero-padded to
// IFNAMSIZ as nft itself does for an exact name: the name, not the index,
// so that the rule holds when a USB uplink is unplugged and comes back.
func ifMatch(key uint32, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKey(key), Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// srcMatch matches the source address against p; in an inet table the
// family is checked first, since the header at the offset depends on it.
func srcMatch(p netip.Prefix) []expr.Any {
	proto, off, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if p.Addr().Is6() {
		proto, off, size = unix.NFPROTO_IPV6, 8, 16
	}
	mask := make([]byte, size)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
