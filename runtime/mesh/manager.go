package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"byzantium/runtime/mesh/addr"
	"byzantium/runtime/mesh/babel"
	"byzantium/runtime/mesh/radio"
	"byzantium/runtime/nodeapi"
)

// Gateway routes: the gateway (runtime/mesh/gateway) puts a default
// route in this table with this protocol while the node shares its
// uplink; babeld announces it.
const (
	GatewayTable = babel.ImportTable
	GatewayProto = babel.RouteProto
)

// Engine is a routing protocol's engine: babeld (built in, through
// babel.Supervisor) or batman-adv (plugged in as Options.Batman).
type Engine interface {
	// Start brings the engine up on the interfaces; it is called again
	// with new interfaces or settings.
	Start(ctx context.Context, ifaces []nodeapi.MeshInterface, s nodeapi.MeshSettings) error
	Stop() error
	// Status fills in the engine's part: Engine, EngineError,
	// Neighbours, Routes.
	Status(m *nodeapi.Mesh)
}

// Options are what a Manager needs. StateDir, RunDir and Launch are
// required.
type Options struct {
	StateDir string // persistent: the identity (StateDir/identity.json)
	RunDir   string // babeld's configuration, socket and state file
	// BabeldRunDir is RunDir as babeld sees it, where the launcher runs
	// it in a root of its own with RunDir bound elsewhere; "" is RunDir.
	BabeldRunDir string
	Logf         func(format string, args ...any)
	Launch       babel.Launcher
	Babeld       string // babeld's path; "babeld" when empty
	System       *System
	ProcSys      string // "/proc/sys" when empty
	// Wireless says whether an interface is a radio (babeld's type
	// wireless); nil asks sysfs. The simulator says yes for its veths.
	Wireless func(name string) bool
	// Batman is batman-adv's engine; nil refuses the protocols batman-adv
	// and both.
	Batman BatmanEngine
	// Gateway fills in Mesh.Gateway's sharing side (runtime/mesh/gateway).
	Gateway func(g *nodeapi.MeshGateway)

	// LaunchSupplicant makes the command that runs wpa_supplicant
	// (argv from SupplicantArgv) on a keyed 802.11s radio, in System's
	// namespace; nil: no SAE, such radios join open and the key protects
	// routing only. Supplicant is argv[0] ("wpa_supplicant" when empty);
	// SupplicantDir holds its configurations and control sockets
	// (RunDir/wpa when empty). See radios.go.
	LaunchSupplicant babel.Launcher
	Supplicant       string
	SupplicantDir    string
	// RadioCapabilities is a test seam: it changes a card's capabilities
	// as read, before the mode is chosen (ci/meshguest masks 802.11s
	// out to force ad-hoc on radios that have it). nil in production.
	RadioCapabilities func(ifname string, c *radio.Capabilities)
	radioClient       radioClient // the tests' nl80211; nil opens nl80211
}

// Manager runs the mesh on a node.
type Manager struct {
	opt Options

	mu       sync.Mutex
	settings nodeapi.MeshSettings
	id       addr.Identity
	routerID babel.RouterID
	// connID is the router id of the babeld the monitor is connected
	// to (zero while it is not): readiness and a guard against a dying
	// babeld's last events.
	connID    babel.RouterID
	ifaces    []nodeapi.MeshInterface
	state     babel.State
	synced    bool
	rolls     int
	lastHeard time.Time
	since     time.Time
	sup       *babel.Supervisor
	kick      chan struct{}
	links     chan struct{}

	// Run's goroutine alone uses these; it writes batOn, batErr and
	// batVia under mu, which Status reads.
	runCtx    context.Context
	babelStop func()
	babelIfs  []babel.Interface // what babeld was last started on (mu)
	batOn     bool
	batProto  string
	batIfs    []nodeapi.MeshInterface // what batman-adv was last started on
	// lastBabelOnly is the settings' BabelOnly refresh last saw.
	lastBabelOnly []string
	batServer     bool
	batModeSet    bool
	batErr        string
	batVia        netip.Addr
	batSnap       nodeapi.Mesh // batman-adv alone: engine, neighbours, routes (mu)
	batNodes      int          // how many nodes batSnap reached, for the log
	radios        radioSet     // radios.go; Run's goroutine only
}

// New makes a Manager with the settings (validated).
func New(opt Options, s nodeapi.MeshSettings) (*Manager, error) {
	if err := ValidateSettings(s); err != nil {
		return nil, err
	}
	if s.Protocol != nodeapi.MeshBabel && opt.Batman == nil {
		return nil, errBatman
	}
	if opt.StateDir == "" || opt.RunDir == "" || opt.Launch == nil {
		return nil, errors.New("mesh: StateDir, RunDir and Launch are required")
	}
	if opt.Babeld == "" {
		opt.Babeld = "babeld"
	}
	if opt.System == nil {
		opt.System = &System{}
	}
	if opt.ProcSys == "" {
		opt.ProcSys = "/proc/sys"
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	return &Manager{opt: opt, settings: s, kick: make(chan struct{}, 1), links: make(chan struct{}, 1)}, nil
}

var errBatman = errors.New("mesh: protocol: batman-adv is not available on this node (no batman-adv engine); use babel")

func (m *Manager) logf(format string, args ...any) { m.opt.Logf("mesh: "+format, args...) }

func (m *Manager) socket() string   { return filepath.Join(m.opt.RunDir, "babeld.sock") }
func (m *Manager) confPath() string { return filepath.Join(m.opt.RunDir, "babeld.conf") }

// inBabeld is the path of a file of RunDir as babeld sees it.
func (m *Manager) inBabeld(name string) string {
	if m.opt.BabeldRunDir != "" {
		return filepath.Join(m.opt.BabeldRunDir, name)
	}
	return filepath.Join(m.opt.RunDir, name)
}

// Apply changes the settings without a reboot: babeld gets a new
// configuration and restarts.
func (m *Manager) Apply(s nodeapi.MeshSettings) error {
	if err := ValidateSettings(s); err != nil {
		return err
	}
	if s.Protocol != nodeapi.MeshBabel && m.opt.Batman == nil {
		return errBatman
	}
	m.mu.Lock()
	if s.Key == "" && s.KeepKey {
		s.Key = m.settings.Key
	}
	s.KeepKey = false
	// Only what babeld's configuration holds restarts it (a new router
	// id: routes through this node flap for seconds across the mesh).
	// Sharing and the Internet check are the gateway's; the interfaces
	// and the uplink are re-read, and babeld restarts only if the mesh
	// interfaces change.
	restart := s.Protocol != m.settings.Protocol || (s.Key != m.settings.Key && usesBabel(s.Protocol))
	m.settings = s
	m.mu.Unlock()
	if restart {
		m.poke()
	} else {
		m.linksChanged()
	}
	return nil
}

// linksChanged asks Run to read the interfaces again.
func (m *Manager) linksChanged() {
	select {
	case m.links <- struct{}{}:
	default:
	}
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Identity is the node's current mesh identity.
func (m *Manager) Identity() addr.Identity {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// Run runs the mesh until ctx ends: addresses, babeld, the socket
// monitor, the link watch and the collision check.
func (m *Manager) Run(ctx context.Context) error {
	if err := os.MkdirAll(m.opt.RunDir, 0o700); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	id, made, err := addr.Load(m.opt.StateDir, time.Now(), m.opt.Logf)
	if err != nil {
		return err
	}
	if made {
		m.logf("new mesh identity: slot %v", id.Slot())
	}
	m.mu.Lock()
	m.id = id
	m.since = time.Now()
	m.mu.Unlock()
	if err := m.applyAddresses(id); err != nil {
		return err
	}
	m.ifaces, err = m.pickInterfaces()
	if err != nil {
		m.logf("listing interfaces: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.runCtx = ctx
	defer m.stopRadios() // wpa_supplicant, once the loop below is done with the radios
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.monitor(ctx) }()
	go func() { defer wg.Done(); m.watchLinks(ctx) }()
	m.applyProtocol(ctx, false)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if m.babelStop != nil {
				m.babelStop()
			}
			if m.batOn {
				m.stopBatman()
			}
			wg.Wait()
			return nil
		case <-m.kick:
			m.refresh(true)
		case <-m.links:
			time.Sleep(300 * time.Millisecond) // a burst of updates settles
			m.refresh(false)
		case <-tick.C:
			m.refresh(false)
			m.checkCollisions()
			m.batmanTick()
		}
	}
}

// refresh picks the interfaces again; when they changed, batman-adv gets
// them and babeld restarts if its own interfaces changed. force (new
// settings) applies the protocol again and restarts babeld.
func (m *Manager) refresh(force bool) {
	ifs, err := m.pickInterfaces()
	if err != nil {
		// Keep the interfaces as they were: a failed listing (a route
		// dump interrupted by babeld's own changes) is not a change.
		m.logf("listing interfaces: %v", err)
		if force {
			m.applyProtocol(m.runCtx, true)
		}
		return
	}
	m.mu.Lock()
	changed := !slices.Equal(ifs, m.ifaces)
	m.ifaces = ifs
	s := m.settings
	p := s.Protocol
	m.mu.Unlock()
	if changed {
		m.logf("mesh interfaces now %s", names(ifs))
	}
	if force {
		m.applyProtocol(m.runCtx, true)
		return
	}
	// Only a change of interfaces, or of which of them stay out of the
	// cloud, moves the engines.
	moved := !slices.Equal(s.BabelOnly, m.lastBabelOnly)
	m.lastBabelOnly = s.BabelOnly
	if !changed && !moved {
		return
	}
	if m.batOn && !slices.Equal(cloudInterfaces(s, ifs), m.batIfs) {
		m.applyProtocol(m.runCtx, false)
	}
	m.mu.Lock()
	was := m.babelIfs
	m.mu.Unlock()
	if sup := m.currentSup(); sup != nil && usesBabel(p) && !slices.Equal(m.babelInterfaces(s, ifs), was) {
		sup.Restart()
	}
}

func names(ifs []nodeapi.MeshInterface) string {
	var n []string
	for _, i := range ifs {
		if i.Meshing {
			n = append(n, i.Name)
		}
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

// applyAddresses gives the node the identity's addresses.
func (m *Manager) applyAddresses(id addr.Identity) error {
	a := id.Addresses()
	own := []netip.Prefix{a.IPv4, a.IPv6, netip.PrefixFrom(id.Beacon(), 128)}
	if err := m.opt.System.setLinkAddrs("lo", own, isMeshAddr); err != nil {
		return err
	}
	return m.opt.System.setClientRoutes([]netip.Prefix{a.ClientIPv4, a.ClientIPv6})
}

// prepare writes babeld's configuration for a (re)start: a fresh router
// id, the current interfaces and settings.
func (m *Manager) prepare() ([]string, error) {
	m.mu.Lock()
	id, s, ifs := m.id, m.settings, m.ifaces
	m.mu.Unlock()
	bifs := m.babelInterfaces(s, ifs)
	var names []string
	for _, i := range bifs {
		names = append(names, i.Name)
	}
	m.mu.Lock()
	m.babelIfs = bifs
	m.mu.Unlock()
	if len(bifs) == 0 {
		return nil, errors.New("no mesh interface (no wired port without a default route, no radio)")
	}
	if err := m.opt.System.SetupKernel(m.opt.ProcSys, names); err != nil {
		m.logf("%v", err)
	}
	rid, err := babel.NewRouterID(id.Claimed, rand.Reader)
	if err != nil {
		return nil, err
	}
	a := id.Addresses()
	conf, err := babel.Generate(babel.Config{
		RouterID:   rid,
		Interfaces: bifs,
		Own:        []netip.Prefix{a.IPv4, a.IPv6, netip.PrefixFrom(id.Beacon(), 128)},
		Mesh: []babel.MeshPrefix{
			{Prefix: netip.MustParsePrefix("10.0.0.0/8"), MinLen: 24},
			{Prefix: addr.ULA, MinLen: 64},
		},
		Key:       s.Key,
		Socket:    m.inBabeld("babeld.sock"),
		StateFile: m.inBabeld("babel-state"),
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(m.confPath(), conf, 0o600); err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	// A babeld that was killed leaves its socket (bind would fail) and
	// its kernel routes.
	os.Remove(m.socket())
	if err := m.opt.System.flushBabelRoutes(); err != nil {
		m.logf("%v", err)
	}
	m.mu.Lock()
	m.routerID = rid
	m.state = babel.State{}
	m.synced = false
	m.mu.Unlock()
	return []string{m.opt.Babeld, "-c", m.inBabeld("babeld.conf"), "-I", ""}, nil
}

// ready waits until the monitor is connected to the babeld just
// started (its header carries the router id prepare chose). It opens no
// connection of its own: babeld serves four local clients and queues two
// more, and every connection costs it a header.
func (m *Manager) ready(ctx context.Context) error {
	for {
		m.mu.Lock()
		ok := m.connID != (babel.RouterID{}) && m.connID == m.routerID
		m.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Monitor connection retries: a babeld not up yet (no socket, refused)
// is tried again soon; a connection that ended is, after a backoff, since
// every new one costs babeld a full dump.
const (
	dialRetry    = 200 * time.Millisecond
	minRedial    = 250 * time.Millisecond
	maxRedial    = 2 * time.Second
	stableRedial = 10 * time.Second
)

// monitor keeps m.state from babeld's monitor stream over one long-lived
// connection, reconnecting when babeld restarts or the connection fails.
func (m *Manager) monitor(ctx context.Context) {
	backoff := minRedial
	for ctx.Err() == nil {
		c, err := babel.Dial(ctx, m.socket())
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(dialRetry):
			}
			continue
		}
		id := c.Header.MyID
		m.mu.Lock()
		m.connID = id
		m.mu.Unlock()
		began := time.Now()
		// The initial dump is gathered aside and swapped in whole; the
		// events after it change the shared state in place.
		var st babel.State
		err = c.Monitor(ctx, func(ev babel.Event, synced bool) {
			if !synced {
				st.Apply(ev) // ErrLimit: dropped, State.Truncated says so
				return
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if id != m.routerID {
				// A babeld being replaced: prepare already reset
				// the state for the next one.
				return
			}
			if ev.Kind == 0 {
				m.state, m.synced = st, true
				st = babel.State{}
			} else {
				m.state.Apply(ev)
			}
			if len(m.state.Neighbours) > 0 {
				m.lastHeard = time.Now()
			}
		})
		c.Close()
		m.mu.Lock()
		m.connID = babel.RouterID{}
		m.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		m.logf("babeld socket: %v", err)
		if time.Since(began) >= stableRedial {
			backoff = minRedial
		}
		// The backoff spares a babeld that cut us off; a babeld that
		// was replaced (prepare chose a new router id) is a new one,
		// its dump due at once.
		for wait := time.Now().Add(backoff); time.Now().Before(wait); {
			select {
			case <-ctx.Done():
				return
			case <-time.After(dialRetry):
			}
			m.mu.Lock()
			replaced := m.routerID != id
			m.mu.Unlock()
			if replaced {
				backoff = minRedial / 2
				break
			}
		}
		backoff = min(2*backoff, maxRedial)
	}
}

// checkCollisions rolls again when another router claims our slot and
// ours is the younger claim.
func (m *Manager) checkCollisions() {
	m.mu.Lock()
	if !m.synced {
		m.mu.Unlock()
		return
	}
	id, me := m.id, m.routerID
	routes := m.state.RouteList()
	m.mu.Unlock()
	for _, c := range FindCollisions(id, me, routes) {
		if !c.Yield {
			m.logf("router %s also claims slot %v (%v); its claim is younger, it will roll again", c.Other, id.Slot(), c.Prefix)
			continue
		}
		m.logf("router %s claimed slot %v first (%v): rolling again", c.Other, id.Slot(), c.Prefix)
		m.reroll(id)
		return
	}
}

// pickInterfaces lists the mesh interfaces: the named ones, or every
// Ethernet port that is up, not lo and carries no default route (not an
// uplink), and every radio, which radios.go reads and sets up.
func (m *Manager) pickInterfaces() ([]nodeapi.MeshInterface, error) {
	var err error
	for try := 0; try < 5; try++ {
		var out []nodeapi.MeshInterface
		if out, err = m.pickInterfacesOnce(); err == nil {
			return out, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}

func (m *Manager) pickInterfacesOnce() ([]nodeapi.MeshInterface, error) {
	m.mu.Lock()
	s := m.settings
	was := map[string]bool{}
	for _, i := range m.ifaces {
		was[i.Name] = i.Meshing
	}
	m.mu.Unlock()
	h, err := m.opt.System.handle()
	if err != nil {
		return nil, err
	}
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("mesh: listing links: %w", err)
	}
	uplinks := map[int]bool{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		// Only default routes: the dump stays small and quick while
		// babeld changes hundreds of others.
		rs, err := h.RouteListFiltered(fam, &netlink.Route{Table: 254, Dst: nil}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
		if err != nil {
			return nil, fmt.Errorf("mesh: listing default routes: %w", err)
		}
		for _, r := range rs {
			if (r.Dst == nil || toPrefix(r.Dst).Bits() == 0) && r.Protocol != 42 {
				uplinks[r.LinkIndex] = true
			}
		}
	}
	var out []nodeapi.MeshInterface
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" || a.EncapType != "ether" || l.Type() == "batadv" {
			continue
		}
		named := slices.Contains(s.Interfaces, a.Name)
		if len(s.Interfaces) > 0 && !named {
			continue
		}
		mi := nodeapi.MeshInterface{Name: a.Name, Kind: "wired", Mode: "wired"}
		if m.wireless(a.Name) {
			mi.Kind, mi.Mode, mi.Reason = "wifi", "ibss", "a radio link (babeld type wireless)"
			// A card is read, given a mode and set up (radios.go),
			// unless it is the uplink.
			if a.Name != s.Uplink && (!uplinks[a.Index] || named) {
				if ri, ok := m.radioInterface(l, links, s); ok {
					out = append(out, ri)
					continue
				}
			} else {
				m.releaseRadio(a.Name)
			}
		}
		switch {
		case a.Name == s.Uplink || (uplinks[a.Index] && !named):
			mi.Mode, mi.Reason = "uplink", "carries the default route: this node's way to the Net"
		// A port that goes down (cable out, link cut) stays in babeld's
		// list: babeld sees it down and back up without a restart.
		case a.Flags&1 == 0 && !named && !was[a.Name]: // net.FlagUp
			mi.Mode, mi.Reason = "none", "down"
		default:
			if a.Flags&1 == 0 && named {
				if err := h.LinkSetUp(l); err != nil {
					mi.Mode, mi.Reason = "none", "could not bring it up: "+err.Error()
					break
				}
			}
			mi.Meshing = true
		}
		out = append(out, mi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *Manager) wireless(name string) bool {
	if m.opt.Wireless != nil {
		return m.opt.Wireless(name)
	}
	for _, p := range []string{"wireless", "phy80211"} {
		if _, err := os.Lstat(filepath.Join("/sys/class/net", name, p)); err == nil {
			return true
		}
	}
	return false
}

// watchLinks refreshes the interfaces as soon as a link appears, goes or
// changes (a USB Ethernet dongle plugged in).
func (m *Manager) watchLinks(ctx context.Context) {
	ch := make(chan netlink.LinkUpdate, 64)
	opts := netlink.LinkSubscribeOptions{ErrorCallback: func(error) {}}
	if m.opt.System.NS > 0 {
		ns := m.opt.System.NS
		opts.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(ch, ctx.Done(), opts); err != nil {
		m.logf("link watch: %v (interfaces are checked every 2 s instead)", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			select {
			case m.links <- struct{}{}:
			default:
			}
		}
	}
}

// Status is the mesh as this node sees it.
func (m *Manager) Status() nodeapi.Mesh {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.id.Addresses()
	out := nodeapi.Mesh{
		Protocol:   m.settings.Protocol,
		Interfaces: append([]nodeapi.MeshInterface{}, m.ifaces...),
		Addresses: nodeapi.MeshAddresses{
			IPv4: a.IPv4.Addr().String(), IPv6: a.IPv6.Addr().String(),
			ClientIPv4: a.ClientIPv4.String(), ClientIPv6: a.ClientIPv6.String(),
			Claimed: m.id.Claimed, Rolls: int(m.id.Roll),
		},
		Keyed:      m.settings.Key != "",
		Neighbours: []nodeapi.MeshNeighbour{},
		Routes:     []nodeapi.MeshRoute{},
		Gateway:    nodeapi.MeshGateway{Share: m.settings.Share, Uplink: m.settings.Uplink},
	}
	out.Engine = babel.StateOff
	if m.sup != nil {
		out.Engine, out.EngineError, _ = m.sup.Status()
	}
	p := m.settings.Protocol
	if usesBatman(p) && m.opt.Batman != nil {
		out.Interfaces = append(out.Interfaces, m.cloudInterface(m.settings, m.ifaces))
	}
	if p == nodeapi.MeshBatman && m.opt.Batman != nil {
		m.batmanStatus(&out)
		out.Joined = len(out.Neighbours) > 0 && len(out.Routes) > 0
		if m.opt.Gateway != nil {
			m.opt.Gateway(&out.Gateway)
		}
		out.Summary = m.summary(out, len(out.Routes)/2)
		return out
	}
	if p == nodeapi.MeshBoth && m.batErr != "" && out.EngineError == "" {
		out.EngineError = "batman-adv: " + m.batErr
	}
	for _, n := range m.state.NeighbourList() {
		if n.Cost >= babel.Infinity {
			continue
		}
		out.Neighbours = append(out.Neighbours, nodeapi.MeshNeighbour{
			Address: n.Address.String(), Interface: n.Interface, Cost: n.Cost, Reach: fmt.Sprintf("%04x", n.Reach),
		})
	}
	others := 0
	for _, r := range m.state.RouteList() {
		if !r.Reachable() {
			continue
		}
		out.Routes = append(out.Routes, nodeapi.MeshRoute{
			Prefix: r.Prefix.String(), Via: r.Via.String(), Interface: r.Interface,
			Metric: r.Metric, Installed: r.Installed, RouterID: r.RouterID.String(),
		})
		if r.Installed && r.Prefix.Bits() > 0 {
			others++
		}
		if r.Installed && r.Prefix.Bits() == 0 && r.Prefix.Addr().Is4() {
			out.Gateway.InUse = fmt.Sprintf("%s (%s)", r.Via, r.Interface)
			out.Gateway.InUseMetric = r.Metric
		}
	}
	if m.opt.Gateway != nil {
		m.opt.Gateway(&out.Gateway)
	}
	out.Joined = len(out.Neighbours) > 0 && others > 0
	out.Summary = m.summary(out, others)
	return out
}

func (m *Manager) summary(s nodeapi.Mesh, others int) string {
	meshing := names(s.Interfaces)
	switch {
	case s.Engine != babel.StateRunning:
		engine := "babeld"
		if s.Protocol == nodeapi.MeshBatman {
			engine = "batman-adv"
		}
		msg := "not meshing: " + engine + " is " + s.Engine
		if s.EngineError != "" {
			msg += " (" + s.EngineError + ")"
		}
		return msg
	case meshing == "none":
		return "alone: no mesh interface (plug in a cable or a radio that can mesh)"
	case len(s.Neighbours) == 0:
		since := m.since
		if !m.lastHeard.IsZero() {
			since = m.lastHeard
		}
		return fmt.Sprintf("alone: no neighbour heard on %s for %d s", meshing, int(time.Since(since).Seconds()))
	case !s.Joined:
		return fmt.Sprintf("%d neighbour(s) heard, no route to another node yet", len(s.Neighbours))
	}
	nodes := map[string]bool{}
	for _, r := range s.Routes {
		if r.Installed {
			nodes[r.RouterID] = true
		}
	}
	return fmt.Sprintf("joined: %d neighbour(s), %d other node(s) reachable", len(s.Neighbours), len(nodes))
}

// EngineStarts is the supervisor's state, last error and start count.
func (m *Manager) EngineStarts() (state, lastErr string, starts int) {
	m.mu.Lock()
	sup := m.sup
	m.mu.Unlock()
	if sup == nil {
		return babel.StateOff, "", 0
	}
	return sup.Status()
}
