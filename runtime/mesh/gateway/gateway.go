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
// share auto, uplink found, DefaultTargets, 10/8 masqueraded, table 200,
// protocol 201, in the process's own network namespace.
type Config struct {
	Share  string // nodeapi.ShareAuto (also ""), ShareOn or ShareOff
	Uplink string // "" finds it; else the operator's interface name

	// Targets, Timeout and Fails configure the Internet check (see
	// NewChecker).
	Targets []string
	Timeout time.Duration
	Fails   int

	// Prefixes are the sources masqueraded out of the uplink: the mesh's
	// and clients' prefixes. nil means DefaultPrefixes (10.0.0.0/8).
	Prefixes []netip.Prefix
	NATTable string // "" means DefaultNATTable

	// AnnounceTable and AnnounceProtocol are where the default route
	// goes for babeld to announce; 0 means 200 and 201.
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
	cfg     Config
	checker *Checker
	ns      *netNS
	wake    chan struct{}

	mu      sync.Mutex
	share   string
	uplink  string   // the setting
	exclude []string // the mesh interfaces
	status  nodeapi.MeshGateway
	// next is a checker with new targets (SetTargets), which Run's next
	// step takes: the checker itself is Run's alone.
	next *Checker
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
	checker, err := newChecker(cfg.Targets, cfg.Timeout, cfg.Fails, ns)
	if err != nil {
		ns.close()
		return nil, err
	}
	g := &Gateway{cfg: cfg, checker: checker, ns: ns, wake: make(chan struct{}, 1), share: share, uplink: cfg.Uplink}
	g.status = nodeapi.MeshGateway{Share: share, Check: "not checked yet"}
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
// the verdict starts afresh. Bad targets change nothing.
func (g *Gateway) SetTargets(targets []string) error {
	c, err := newChecker(targets, g.cfg.Timeout, g.cfg.Fails, g.ns)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.next = c
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

// Status is the gateway's part of nodeapi.Mesh; InUse is the manager's
// to fill.
func (g *Gateway) Status() nodeapi.MeshGateway {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status
}

// state is what Run has put in the kernel.
type state struct {
	nat       string // the uplink the NAT is applied for, "" for none
	announced string // the uplink the route is announced via, "" for none
	via       Uplink
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

// step does one round and returns when the next is due.
func (g *Gateway) step(ctx context.Context, st *state) time.Duration {
	g.mu.Lock()
	share, named, exclude := g.share, g.uplink, g.exclude
	if g.next != nil {
		g.checker, g.next = g.next, nil
	}
	g.mu.Unlock()

	report := func(uplink string, sharing bool, check string) {
		g.mu.Lock()
		g.status.Uplink, g.status.Sharing, g.status.Check = uplink, sharing, check
		g.mu.Unlock()
	}
	h, err := g.ns.handle()
	if err != nil {
		report("", false, "netlink: "+err.Error())
		return g.cfg.RetryInterval
	}
	defer h.Close()
	up, err := FindUplink(h, named, exclude)
	if share == nodeapi.ShareOff {
		// The uplink is still named on the panel: "eth0, not shared".
		g.checker.Reset()
		cerr := g.clean(st)
		report(up.Name, false, errText("sharing is off", cerr))
		return g.cfg.Interval
	}
	if err != nil {
		// No uplink is certain, not a flaky answer: withdraw at once.
		g.checker.Reset()
		cerr := g.clean(st)
		msg := "no uplink"
		if named != "" { // why the operator's choice is not used
			msg = strings.TrimPrefix(err.Error(), "gateway: ")
		}
		report("", false, errText(msg, cerr))
		return g.cfg.Interval
	}
	if st.announced != "" && st.announced != up.Name {
		g.checker.Reset() // a new uplink earns its announcement afresh
	}

	// The NAT follows the uplink, not the check: this node's own clients
	// route through its uplink whatever the check says (it may only be
	// the targets that are blocked), and a node still routing here while
	// the withdrawal spreads must not send 10/8 sources out unmasked.
	if err := g.ensureNAT(st, up.Name); err != nil {
		// No announcement without NAT: the mesh's sources would leave
		// unmasked and their answers never come back.
		g.cfg.Logf("gateway: %v", err)
		err = errors.Join(err, g.withdraw(h, st))
		report(up.Name, st.announced != "", "NAT: "+err.Error())
		return g.cfg.RetryInterval
	}

	ok, verdict := g.checker.Check(ctx, up.Name)
	if ctx.Err() != nil {
		return 0
	}
	if ok {
		err = g.announce(h, st, up)
	} else {
		err = g.withdraw(h, st)
	}
	if err != nil {
		g.cfg.Logf("gateway: %v", err)
		verdict = errText(verdict, err)
	}
	report(up.Name, st.announced != "", verdict)
	if verdict != "ok" {
		return g.cfg.RetryInterval
	}
	return g.cfg.Interval
}

func errText(msg string, err error) string {
	if err == nil {
		return msg
	}
	return msg + "; " + err.Error()
}

// ensureNAT applies the NAT for uplink unless it is there already (the
// table is re-read: an `nft flush ruleset` would have removed it).
func (g *Gateway) ensureNAT(st *state, uplink string) error {
	c, err := g.ns.nft()
	if err != nil {
		return err
	}
	if st.nat == uplink {
		if ok, err := NATPresent(c, g.cfg.NATTable); err != nil || ok {
			return err
		}
		g.cfg.Logf("gateway: NAT table %s vanished, applying it again", g.natTable())
	}
	if err := (NAT{Table: g.cfg.NATTable, Uplink: uplink, Prefixes: g.cfg.Prefixes}).Apply(c); err != nil {
		return err
	}
	if st.nat != uplink {
		g.cfg.Logf("gateway: masquerading %v out of %s", g.natPrefixes(), uplink)
	}
	st.nat = uplink
	return nil
}

func (g *Gateway) natTable() string { return NAT{Table: g.cfg.NATTable}.table().Name }

func (g *Gateway) natPrefixes() []netip.Prefix { return NAT{Prefixes: g.cfg.Prefixes}.prefixes() }

func (g *Gateway) announce(h *netlink.Handle, st *state, up Uplink) error {
	if err := enableForwarding(g.ns); err != nil {
		return err
	}
	if st.announced == up.Name && st.via == up {
		// Re-put it anyway if someone removed it; cheap.
		if ok, err := announced(h, g.cfg.AnnounceTable, g.cfg.AnnounceProtocol); err != nil || ok {
			return err
		}
	}
	if err := announce(h, up, g.cfg.AnnounceTable, g.cfg.AnnounceProtocol); err != nil {
		return err
	}
	if st.announced != up.Name {
		g.cfg.Logf("gateway: announcing a default route into the mesh via %s (%s)", up.Name, up.Gateway)
	}
	st.announced, st.via = up.Name, up
	return nil
}

func (g *Gateway) withdraw(h *netlink.Handle, st *state) error {
	if err := withdraw(h, g.cfg.AnnounceTable, g.cfg.AnnounceProtocol); err != nil {
		return err
	}
	if st.announced != "" {
		g.cfg.Logf("gateway: withdrew the default route via %s", st.announced)
	}
	st.announced, st.via = "", Uplink{}
	return nil
}

// clean withdraws the route and removes the NAT, whatever st says: after
// a crash the kernel may hold both from the previous run.
func (g *Gateway) clean(st *state) error {
	var errs []error
	h, err := g.ns.handle()
	if err == nil {
		errs = append(errs, g.withdraw(h, st))
		h.Close()
	} else {
		errs = append(errs, err)
	}
	c, err := g.ns.nft()
	if err == nil {
		err = RemoveNAT(c, g.cfg.NATTable)
	}
	if err == nil {
		if st.nat != "" {
			g.cfg.Logf("gateway: NAT out of %s removed", st.nat)
		}
		st.nat = ""
	}
	errs = append(errs, err)
	return errors.Join(errs...)
}
