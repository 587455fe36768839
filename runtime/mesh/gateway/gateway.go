package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Default intervals of the Run loop.
const (
	// DefaultInterval is the check's period while all is well. An
	// upstream that dies with the carrier up is withdrawn at worst
	// Interval + Timeout + RetryInterval + Timeout after (13 s, measured
	// by BenchmarkWithdraw), which leaves more than half of the issue's
	// 30 s budget to babeld's retraction and the far node; two TCP
	// handshakes every 5 s are no load on any uplink.
	DefaultInterval = 5 * time.Second
	// DefaultRetryInterval is the next check's delay after a failed one,
	// so that a real outage is withdrawn within two quick checks rather
	// than two full periods, and a recovery is seen soon.
	DefaultRetryInterval = 2 * time.Second
)

// Config is what the mesh manager gives a Gateway. The zero value works:
// share auto, uplink found, DefaultTargets and DefaultTargets6, 10/8 and
// the ULA masqueraded, table 200, protocol 201, in the process's own
// network namespace.
type Config struct {
	Share  string // nodeapi.ShareAuto (also ""), ShareOn or ShareOff
	Uplink string // "" finds it; else the operator's interface name

	// Targets, Timeout and Fails configure the Internet checks (see
	// NewChecker, NewChecker6): IPv6 literals are the IPv6 check's.
	Targets []string
	Timeout time.Duration
	Fails   int

	// Prefixes are the sources masqueraded out of the uplink: the mesh's
	// and clients' prefixes. nil means DefaultPrefixes (10.0.0.0/8 and
	// the ULA /48).
	Prefixes []netip.Prefix
	NATTable string // "" means DefaultNATTable

	// AnnounceTable and AnnounceProtocol are where the default routes
	// (both families) go for babeld to announce; 0 means 200 and 201.
	AnnounceTable    int
	AnnounceProtocol int

	Interval, RetryInterval time.Duration // 0: the defaults above

	// NetNS is the path of the network namespace to work in ("" for the
	// process's own): the mesh simulator runs many nodes in one process.
	NetNS string

	Logf func(format string, args ...any) // nil discards
}

// Gateway shares the uplink: Run finds it, checks it, keeps the NAT and
// the announced route in step, and undoes both when it returns.
type Gateway struct {
	cfg      Config
	checker  *Checker // IPv4's
	checker6 *Checker // IPv6's
	ns       *netNS
	wake     chan struct{}

	mu      sync.Mutex
	share   string
	uplink  string   // the setting
	exclude []string // the mesh interfaces
	status  Status
	// next and next6 are checkers with new targets (SetTargets), which
	// Run's next step takes: the checkers themselves are Run's alone.
	next, next6 *Checker
}

// Status is the gateway's part of nodeapi.Mesh, both families. The
// embedded MeshGateway is IPv4's (its Uplink, Sharing and Check are the
// IPv4 uplink's, the IPv4 default route's and the IPv4 check's), as the
// API has shown it so far; the IPv6 fields are this package's until the
// API carries them. InUse is the manager's to fill.
type Status struct {
	nodeapi.MeshGateway
	// UplinkIPv6 is the interface ::/0 is announced via (or would be,
	// when the check passes), "" when none has a working IPv6 default
	// route.
	UplinkIPv6 string
	// SharingIPv6 is whether ::/0 is announced into the mesh now.
	SharingIPv6 bool
	// CheckIPv6 is the IPv6 check's verdict: "ok", or why not.
	CheckIPv6 string
}

// New checks cfg and makes a Gateway; nothing happens until Run. It opens
// Config.NetNS, which Run closes when it returns.
func New(cfg Config) (*Gateway, error) {
	share, err := checkShare(cfg.Share)
	if err != nil {
		return nil, err
	}
	if cfg.Uplink != "" {
		if err := ValidInterfaceName(cfg.Uplink); err != nil {
			return nil, err
		}
	}
	if cfg.AnnounceTable == 0 {
		cfg.AnnounceTable = DefaultAnnounceTable
	}
	if cfg.AnnounceProtocol == 0 {
		cfg.AnnounceProtocol = DefaultAnnounceProtocol
	}
	// Not main, local or default: the route must reach babeld, not
	// this node's own forwarding.
	if t := int64(cfg.AnnounceTable); t < 1 || t > 0xfffffffe || (t >= unix.RT_TABLE_DEFAULT && t <= unix.RT_TABLE_LOCAL) {
		return nil, fmt.Errorf("gateway: announce table %d: want 1–252 or 256–4294967294", cfg.AnnounceTable)
	}
	if cfg.AnnounceProtocol < 1 || cfg.AnnounceProtocol > 255 {
		return nil, fmt.Errorf("gateway: announce protocol %d: want 1–255", cfg.AnnounceProtocol)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := (NAT{Uplink: "probe", Prefixes: cfg.Prefixes, Table: cfg.NATTable}).validate(); err != nil {
		return nil, err
	}
	ns, err := openNetNS(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	c4, c6, err := newCheckers(cfg.Targets, cfg.Timeout, cfg.Fails, ns)
	if err != nil {
		ns.close()
		return nil, err
	}
	g := &Gateway{cfg: cfg, checker: c4, checker6: c6, ns: ns, wake: make(chan struct{}, 1), share: share, uplink: cfg.Uplink}
	g.status = Status{MeshGateway: nodeapi.MeshGateway{Share: share, Check: "not checked yet"}, CheckIPv6: "not checked yet"}
	return g, nil
}

// ValidSetting refuses a share value other than auto, on, off (or "",
// auto) and an uplink name the kernel would refuse, with the error Set
// would return: for the API to check a PUT before applying it.
func ValidSetting(share, uplink string) error {
	if _, err := checkShare(share); err != nil {
		return err
	}
	if uplink != "" {
		if err := ValidInterfaceName(uplink); err != nil {
			return err
		}
	}
	return nil
}

// checkShare reads a share setting ("" is auto) by meshcfg's rule.
func checkShare(s string) (string, error) {
	if s == "" {
		return nodeapi.ShareAuto, nil
	}
	if err := meshcfg.Share(s); err != nil {
		return "", fmt.Errorf("gateway: share: %w", err)
	}
	return s, nil
}

// Set changes the setting (from nodeapi.MeshSettings.Share and .Uplink)
// and makes Run act on it at once. A bad value changes nothing.
func (g *Gateway) Set(share, uplink string) error {
	if err := ValidSetting(share, uplink); err != nil {
		return err
	}
	s, _ := checkShare(share)
	g.mu.Lock()
	g.share, g.uplink = s, uplink
	g.status.Share = s
	g.mu.Unlock()
	g.Wake()
	return nil
}

// SetTargets replaces the Internet check's targets (nil: the defaults),
// from nodeapi.MeshSettings.Check, and makes Run check with them at once;
// the verdicts start afresh. IPv6 literals are the IPv6 check's, the rest
// the IPv4 check's (SplitTargets). Bad targets change nothing.
func (g *Gateway) SetTargets(targets []string) error {
	c4, c6, err := newCheckers(targets, g.cfg.Timeout, g.cfg.Fails, g.ns)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.next, g.next6 = c4, c6
	g.mu.Unlock()
	g.Wake()
	return nil
}

// SetMeshInterfaces tells the Gateway which interfaces mesh: a default
// route on one of them is never taken for an uplink.
func (g *Gateway) SetMeshInterfaces(names []string) {
	g.mu.Lock()
	g.exclude = slices.Clone(names)
	g.mu.Unlock()
	g.Wake()
}

// Wake makes Run check now. Run watches links and default routes itself;
// Wake is for what it cannot see (the manager learned something).
func (g *Gateway) Wake() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Status is the gateway's part of nodeapi.Mesh (its MeshGateway) and
// the IPv6 side; InUse is the manager's to fill.
func (g *Gateway) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status
}

// state is what Run has put in the kernel.
type state struct {
	nat        string // the uplink the NAT is applied for, "" for none
	nat6       string // the NAT's IPv6 uplink ("" for none or nat's)
	announced  string // the uplink the IPv4 route is announced via, "" for none
	via        Uplink
	announced6 string // the same for ::/0
	via6       Uplink
}

// Run keeps the kernel in step with the setting, the uplink and the
// check until ctx ends, then withdraws the route and removes the NAT (a
// stopped byzd must not leave the mesh a way out it no longer checks). It
// returns the error of that cleanup; errors along the way are logged,
// shown in Check, and retried. Run is called once per Gateway.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.ns.close()
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		g.watch(wctx)
	}()
	defer func() {
		stopWatch()
		<-watched
	}()

	// Wakes come in bursts (a link going down brings several updates);
	// steps are at least minGap apart so that a flapping link does not
	// turn into a stream of checks against the targets.
	minGap := min(time.Second, g.cfg.RetryInterval)
	// What a previous run left (byzd restarted) is not cleaned first:
	// the first step replaces the NAT table and the route in place, or
	// removes them, so a restart does not make the mesh re-route twice.
	var st state
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return g.clean(&st)
		case <-timer.C:
		case <-g.wake:
			if wait := time.Until(last.Add(minGap)); wait > 0 {
				resetTimer(timer, wait)
				continue
			}
		}
		last = time.Now()
		resetTimer(timer, g.step(ctx, &st))
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// step does one round and returns when the next is due. The two
// families are found, checked, announced and withdrawn each on its own:
// a node shares IPv4 only, IPv6 only, or both.
func (g *Gateway) step(ctx context.Context, st *state) time.Duration {
	g.mu.Lock()
	share, named, exclude := g.share, g.uplink, g.exclude
	if g.next != nil {
		g.checker, g.checker6, g.next, g.next6 = g.next, g.next6, nil, nil
	}
	g.mu.Unlock()

	report := func(uplink string, sharing bool, check string) {
		g.mu.Lock()
		g.status.Uplink, g.status.Sharing, g.status.Check = uplink, sharing, check
		g.mu.Unlock()
	}
	report6 := func(uplink string, sharing bool, check string) {
		g.mu.Lock()
		g.status.UplinkIPv6, g.status.SharingIPv6, g.status.CheckIPv6 = uplink, sharing, check
		g.mu.Unlock()
	}
	h, err := g.ns.handle()
	if err != nil {
		report("", false, "netlink: "+err.Error())
		report6("", false, "netlink: "+err.Error())
		return g.cfg.RetryInterval
	}
	defer h.Close()
	up, err4 := FindUplink(h, named, exclude)
	if share != nodeapi.ShareOff {
		// Before the IPv6 search: with forwarding on, the uplink's RA
		// default route exists only once accept_ra is 2.
		if named != "" {
			if _, err := h.LinkByName(named); err == nil {
				g.keepRAs(h, named)
			}
		} else if err4 == nil {
			g.keepRAs(h, up.Name)
		}
	}
	up6, err6 := FindUplink6(h, named, exclude, up.Name)
	if share == nodeapi.ShareOff {
		// The uplink is still named on the panel: "eth0, not shared".
		g.checker.Reset()
		g.checker6.Reset()
		cerr := g.clean(st)
		report(up.Name, false, errText("sharing is off", cerr))
		report6(up6.Name, false, errText("sharing is off", cerr))
		return g.cfg.Interval
	}
	noUplink := func(err error) string {
		if named != "" { // why the operator's choice is not used
			return strings.TrimPrefix(err.Error(), "gateway: ")
		}
		return "no uplink"
	}
	if err4 != nil && err6 != nil {
		// No uplink is certain, not a flaky answer: withdraw at once.
		g.checker.Reset()
		g.checker6.Reset()
		cerr := g.clean(st)
		report("", false, errText(noUplink(err4), cerr))
		report6("", false, errText(noUplink(err6), cerr))
		return g.cfg.Interval
	}
	if err4 != nil {
		up = Uplink{}
	}
	if err6 != nil {
		up6 = Uplink{}
	} else {
		// The IPv6 uplink found some other way (RAs taken before
		// forwarding was on, a route by hand): turning IPv6 forwarding
		// on to announce must not make the kernel drop its RA route.
		g.keepRAs(h, up6.Name)
	}
	if st.announced != "" && st.announced != up.Name {
		g.checker.Reset() // a new uplink earns its announcement afresh
	}
	if st.announced6 != "" && st.announced6 != up6.Name {
		g.checker6.Reset()
	}

	// The NAT follows the uplinks, not the checks: this node's own
	// clients route through its uplink whatever the check says (it may
	// only be the targets that are blocked), and a node still routing
	// here while the withdrawal spreads must not send 10/8 or ULA
	// sources out unmasked.
	if err := g.ensureNAT(st, up.Name, up6.Name); err != nil {
		// No announcement without NAT: the mesh's sources would leave
		// unmasked and their answers never come back.
		g.cfg.Logf("gateway: %v", err)
		err = errors.Join(err, g.withdraw(h, st, netlink.FAMILY_V4), g.withdraw(h, st, netlink.FAMILY_V6))
		report(up.Name, st.announced != "", "NAT: "+err.Error())
		report6(up6.Name, st.announced6 != "", "NAT: "+err.Error())
		return g.cfg.RetryInterval
	}

	// Both checks at once: a family's failing check (timeouts) must not
	// delay the other's withdrawal.
	type result struct {
		ok      bool
		verdict string
	}
	var r4, r6 result
	var wg sync.WaitGroup
	for _, c := range []struct {
		checker *Checker
		uplink  string
		r       *result
	}{{g.checker, up.Name, &r4}, {g.checker6, up6.Name, &r6}} {
		if c.uplink == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.r.ok, c.r.verdict = c.checker.Check(ctx, c.uplink)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return 0
	}
	next := g.cfg.Interval
	for _, f := range []struct {
		family  int
		checker *Checker
		up      Uplink
		upErr   error
		r       result
		report  func(string, bool, string)
	}{
		{netlink.FAMILY_V4, g.checker, up, err4, r4, report},
		{netlink.FAMILY_V6, g.checker6, up6, err6, r6, report6},
	} {
		announced, _ := st.slot(f.family)
		if f.up.Name == "" {
			f.checker.Reset()
			err := g.withdraw(h, st, f.family)
			f.report("", false, errText(noUplink(f.upErr), err))
			continue
		}
		verdict := f.r.verdict
		var err error
		if f.r.ok {
			err = g.announce(h, st, f.family, f.up)
		} else {
			err = g.withdraw(h, st, f.family)
		}
		if err != nil {
			g.cfg.Logf("gateway: %v", err)
			verdict = errText(verdict, err)
		}
		f.report(f.up.Name, *announced != "", verdict)
		if verdict != "ok" {
			next = g.cfg.RetryInterval
		}
	}
	return next
}

// keepRAs sets accept_ra 2 on the uplink (acceptRA says why), logging a
// change or a failure: without it the uplink's IPv6 is lost, not IPv4.
// On a change it asks the routers for an advertisement at once.
func (g *Gateway) keepRAs(h *netlink.Handle, iface string) {
	if iface == "" {
		return
	}
	changed, err := acceptRA(g.ns, iface)
	if err != nil {
		g.cfg.Logf("gateway: %v", err)
		return
	}
	if !changed {
		return
	}
	g.cfg.Logf("gateway: accept_ra=2 on %s, so that it keeps its IPv6 default route with forwarding on", iface)
	l, err := h.LinkByName(iface)
	if err == nil {
		err = solicitRouters(g.ns, l.Attrs().Index)
	}
	// No usable link-local source yet (still in DAD, a link just up):
	// the kernel solicits by itself once DAD completes, accept_ra being
	// 2 by then.
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		// The next unsolicited RA will do, later.
		g.cfg.Logf("gateway: %s: %v", iface, err)
	}
}

func errText(msg string, err error) string {
	if err == nil {
		return msg
	}
	return msg + "; " + err.Error()
}

// ensureNAT applies the NAT for the uplinks (IPv4's, IPv6's; either may
// be "") unless it is there already (the table is re-read: an `nft flush
// ruleset` would have removed it).
func (g *Gateway) ensureNAT(st *state, uplink, uplink6 string) error {
	if uplink6 == uplink {
		uplink6 = "" // NAT's "the same"
	}
	c, err := g.ns.nft()
	if err != nil {
		return err
	}
	if st.nat == uplink && st.nat6 == uplink6 && (uplink != "" || uplink6 != "") {
		if ok, err := NATPresent(c, g.cfg.NATTable); err != nil || ok {
			return err
		}
		g.cfg.Logf("gateway: NAT table %s vanished, applying it again", g.natTable())
	}
	if err := (NAT{Table: g.cfg.NATTable, Uplink: uplink, Uplink6: uplink6, Prefixes: g.cfg.Prefixes}).Apply(c); err != nil {
		return err
	}
	if st.nat != uplink || st.nat6 != uplink6 {
		if uplink6 == "" {
			g.cfg.Logf("gateway: masquerading %v out of %s", g.natPrefixes(), uplink)
		} else {
			g.cfg.Logf("gateway: masquerading %v out of %s (IPv4) and %s (IPv6)", g.natPrefixes(), orNone(uplink), uplink6)
		}
	}
	st.nat, st.nat6 = uplink, uplink6
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (g *Gateway) natTable() string { return NAT{Table: g.cfg.NATTable}.table().Name }

func (g *Gateway) natPrefixes() []netip.Prefix { return NAT{Prefixes: g.cfg.Prefixes}.prefixes() }

// slot is where st keeps family's announcement.
func (st *state) slot(family int) (announced *string, via *Uplink) {
	if family == netlink.FAMILY_V6 {
		return &st.announced6, &st.via6
	}
	return &st.announced, &st.via
}

func (g *Gateway) announce(h *netlink.Handle, st *state, family int, up Uplink) error {
	on, via := st.slot(family)
	enable := enableForwarding
	if family == netlink.FAMILY_V6 {
		enable = enableForwarding6
	}
	if err := enable(g.ns); err != nil {
		return err
	}
	if *on == up.Name && *via == up {
		// Re-put it anyway if someone removed it; cheap.
		if ok, err := announcedFamily(h, family, g.cfg.AnnounceTable, g.cfg.AnnounceProtocol); err != nil || ok {
			return err
		}
	}
	if err := announceFamily(h, family, up, g.cfg.AnnounceTable, g.cfg.AnnounceProtocol); err != nil {
		return err
	}
	if *on != up.Name {
		if family == netlink.FAMILY_V6 {
			g.cfg.Logf("gateway: announcing an IPv6 default route (::/0) into the mesh via %s (%s)", up.Name, up.Gateway)
		} else {
			g.cfg.Logf("gateway: announcing a default route into the mesh via %s (%s)", up.Name, up.Gateway)
		}
	}
	*on, *via = up.Name, up
	return nil
}

func (g *Gateway) withdraw(h *netlink.Handle, st *state, family int) error {
	on, via := st.slot(family)
	if err := withdrawFamily(h, family, g.cfg.AnnounceTable, g.cfg.AnnounceProtocol); err != nil {
		return err
	}
	if *on != "" {
		if family == netlink.FAMILY_V6 {
			g.cfg.Logf("gateway: withdrew the IPv6 default route via %s", *on)
		} else {
			g.cfg.Logf("gateway: withdrew the default route via %s", *on)
		}
	}
	*on, *via = "", Uplink{}
	return nil
}

// clean withdraws both routes and removes the NAT, whatever st says:
// after a crash the kernel may hold them from the previous run.
func (g *Gateway) clean(st *state) error {
	var errs []error
	h, err := g.ns.handle()
	if err == nil {
		errs = append(errs, g.withdraw(h, st, netlink.FAMILY_V4), g.withdraw(h, st, netlink.FAMILY_V6))
		h.Close()
	} else {
		errs = append(errs, err)
	}
	c, err := g.ns.nft()
	if err == nil {
		err = RemoveNAT(c, g.cfg.NATTable)
	}
	if err == nil {
		if st.nat != "" || st.nat6 != "" {
			g.cfg.Logf("gateway: NAT out of %s removed", strings.Trim(st.nat+" "+st.nat6, " "))
		}
		st.nat, st.nat6 = "", ""
	}
	errs = append(errs, err)
	return errors.Join(errs...)
}
