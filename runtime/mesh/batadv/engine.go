package batadv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"

	"byzantium/runtime/nodeapi"

	"github.com/vishvananda/netlink"
)

// Engine runs one batman-adv cloud over the mesh interfaces: the soft
// interface (bat0), its hard interfaces and its gateway mode. The mesh
// manager drives it like babeld's engine (Start on every change of
// interfaces or settings, Status for the API, Stop on a protocol switch);
// addresses on bat0 and routes through it are the manager's.
//
// The zero value is usable except MAC. Methods are safe for concurrent
// use. Everything works in the calling thread's network namespace.
type Engine struct {
	Name string // the soft interface, "bat0" when empty
	// MAC is bat0's address, set on create and on each Start when it
	// differs; nil keeps the kernel's (random) one. It is what bat0's own
	// frames carry and what the other nodes' global translation tables
	// list for this node, so a stable one lets them find it again after
	// a reboot without waiting for the old entry to time out.
	MAC  net.HardwareAddr
	Logf func(format string, args ...any)

	mu sync.Mutex
	// started is true from the first Start that created or found the
	// soft interface until Stop; lastErr is the last Start's, Stop's or
	// SetGateway's failure ("" after a clean one).
	started bool
	lastErr string
	gw      MeshSettings // Gateway is GatewayOff until SetGateway: client then
	client  *Client
}

// Engine states, as nodeapi.Mesh.Engine names them.
const (
	stateRunning  = "running"
	stateStarting = "starting"
	stateOff      = "off"
	stateFailed   = "failed"
)

func (e *Engine) name() string {
	if e.Name == "" {
		return MeshInterface
	}
	return e.Name
}

func (e *Engine) logf(format string, args ...any) {
	if e.Logf != nil {
		e.Logf("batman-adv: "+format, args...)
	}
}

// gateway is the gw_mode to apply: what SetGateway set, client before any.
func (e *Engine) gateway() MeshSettings {
	if e.gw.Gateway == GatewayOff {
		return MeshSettings{Gateway: GatewayClient}
	}
	return e.gw
}

// Start makes the batman-adv cloud match ifaces; it is idempotent and
// changes nothing the kernel already has right, so the manager may call
// it on every change. It creates the soft interface if missing, sets MAC,
// makes the hard interfaces exactly the Meshing ones of ifaces (new ones
// get MTU 1532 where the driver allows it, else a log line and
// fragmentation; ones no longer listed are released), brings them and
// the soft interface up and applies the gateway mode last set by
// SetGateway (client by default).
//
// The routing algorithm is BATMAN_IV, fixed at creation: it is
// batman-adv's default and what the community meshes we may meet run
// (Gluon, LibreMesh), and nodes on different algorithms do not see each
// other at all. Its TQ is also the link cost nodeapi shows; BATMAN_V's
// throughput comes from the wifi driver's rate estimate, which ad-hoc
// links and wired ports report poorly. An existing soft interface keeps
// its algorithm.
//
// One hard interface that cannot be added does not stop the others: Start
// goes on and returns every failure joined. Without batman-adv in the
// kernel the error wraps ErrNotInKernel. s is unused: batman-adv has no
// setting of its own in nodeapi.MeshSettings (no key: batman-adv
// authenticates nothing, the radio's SAE does).
func (e *Engine) Start(ctx context.Context, ifaces []nodeapi.MeshInterface, s nodeapi.MeshSettings) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.start(ctx, ifaces)
	e.lastErr = ""
	if err != nil {
		e.lastErr = err.Error()
	}
	return err
}

func (e *Engine) start(ctx context.Context, ifaces []nodeapi.MeshInterface) error {
	name := e.name()
	if e.MAC != nil {
		if err := checkMAC(e.MAC); err != nil {
			return err
		}
	}
	want, err := meshingNames(ifaces)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("batadv: start %s: %w", name, err)
	}
	idx, err := CreateMesh(name, AlgoBATMANIV)
	if err != nil {
		return err
	}
	e.started = true
	mesh, err := netlink.LinkByIndex(idx)
	if err != nil {
		return fmt.Errorf("batadv: find %s: %w", name, err)
	}
	if e.MAC != nil && !bytes.Equal(mesh.Attrs().HardwareAddr, e.MAC) {
		if err := netlink.LinkSetHardwareAddr(mesh, e.MAC); err != nil {
			return fmt.Errorf("batadv: set %s's address to %s: %w", name, e.MAC, err)
		}
		e.logf("%s's address %s (was %s)", name, e.MAC, mesh.Attrs().HardwareAddr)
	}

	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("batadv: list links: %w", err)
	}
	have := hardInterfaces(links, idx)
	add, remove, keep := hardPlan(want, have)
	var errs []error
	for _, h := range remove {
		if err := RemoveHard(h); err != nil {
			errs = append(errs, err)
			continue
		}
		e.logf("%s is no longer a hard interface of %s", h, name)
	}
	for _, h := range add {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("batadv: add %s to %s: %w", h, name, err))
			break
		}
		res, err := AddHard(name, h)
		if err != nil {
			e.logf("%v", err)
			errs = append(errs, err)
			continue
		}
		if res.MTUNote != "" {
			e.logf("%s", res.MTUNote)
		}
		e.logf("%s is a hard interface of %s (MTU %d)", h, name, res.MTU)
	}
	// Hard interfaces already in place are only brought back up: the
	// manager takes a radio down to change its mode.
	for _, l := range links {
		if slices.Contains(keep, l.Attrs().Name) && l.Attrs().Flags&net.FlagUp == 0 {
			if err := netlink.LinkSetUp(l); err != nil {
				errs = append(errs, fmt.Errorf("batadv: bring %s up: %w", l.Attrs().Name, err))
			}
		}
	}
	if mesh.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(mesh); err != nil {
			errs = append(errs, fmt.Errorf("batadv: bring %s up: %w", name, err))
		}
	}
	if err := e.applyGateway(idx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkMAC refuses an address bat0 cannot take (batman-adv wants a
// valid unicast Ethernet address, as is_valid_ether_addr says).
func checkMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 || mac[0]&1 != 0 || bytes.Equal(mac, make([]byte, 6)) {
		return fmt.Errorf("batadv: soft interface address %q: want a unicast Ethernet address other than zero", mac)
	}
	return nil
}

// meshingNames are the names of the Meshing interfaces, each once.
func meshingNames(ifaces []nodeapi.MeshInterface) ([]string, error) {
	var out []string
	for _, i := range ifaces {
		if !i.Meshing {
			continue
		}
		if len(i.Name) == 0 || len(i.Name) > maxIfname {
			return nil, fmt.Errorf("batadv: mesh interface name %q: 1 to %d bytes", i.Name, maxIfname)
		}
		if !slices.Contains(out, i.Name) {
			out = append(out, i.Name)
		}
	}
	return out, nil
}

// hardInterfaces are the names of the links whose master is the soft
// interface meshIndex.
func hardInterfaces(links []netlink.Link, meshIndex int) []string {
	var out []string
	for _, l := range links {
		if l.Attrs().MasterIndex == meshIndex {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// hardPlan compares the hard interfaces wanted with those the soft
// interface has: add the missing, remove the unlisted, keep the rest.
func hardPlan(want, have []string) (add, remove, keep []string) {
	for _, w := range want {
		if slices.Contains(have, w) {
			keep = append(keep, w)
		} else {
			add = append(add, w)
		}
	}
	for _, h := range have {
		if !slices.Contains(want, h) {
			remove = append(remove, h)
		}
	}
	return add, remove, keep
}

func (e *Engine) clientLocked() (*Client, error) {
	if e.client == nil {
		c, err := Open()
		if err != nil {
			return nil, err
		}
		e.client = c
	}
	return e.client, nil
}

// applyGateway sets the gateway mode when the kernel's differs, so a
// repeated Start sends batman-adv nothing.
func (e *Engine) applyGateway(idx int) error {
	c, err := e.clientLocked()
	if err != nil {
		return err
	}
	m, err := c.Mesh(idx)
	if err != nil {
		return err
	}
	want := e.gateway()
	if gatewayMatches(m, want) {
		return nil
	}
	if err := c.SetMesh(idx, want); err != nil {
		return err
	}
	if want.Gateway == GatewayServer {
		e.logf("gw_mode server, announcing %d/%d kbit/s down/up (0: batman-adv's default)", want.DownKbit, want.UpKbit)
	} else {
		e.logf("gw_mode %s (was %s)", want.Gateway, m.Gateway)
	}
	return nil
}

// gatewayMatches says whether the kernel's state m already has want: the
// mode, and for a server each bandwidth asked for, in batman-adv's
// 100 kbit/s steps.
func gatewayMatches(m Mesh, want MeshSettings) bool {
	if m.Gateway != want.Gateway {
		return false
	}
	if want.Gateway != GatewayServer {
		return true
	}
	same := func(kernel, asked uint32) bool { return asked == 0 || kernel == sat100(units100k(asked)) }
	return same(m.DownKbit, want.DownKbit) && same(m.UpKbit, want.UpKbit)
}

// SetGateway sets gw_mode server, announcing the uplink's down and up
// bandwidth in kbit/s (0: batman-adv's default), or client (server
// false): use the best gateway server the mesh announces. It applies at
// once when the engine runs and is kept for every later Start.
func (e *Engine) SetGateway(server bool, downKbit, upKbit uint32) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if server {
		e.gw = MeshSettings{Gateway: GatewayServer, DownKbit: downKbit, UpKbit: upKbit}
	} else {
		e.gw = MeshSettings{Gateway: GatewayClient}
	}
	if !e.started {
		return nil
	}
	idx, err := e.ifindexLocked()
	if err != nil {
		return err
	}
	if err := e.applyGateway(idx); err != nil {
		e.lastErr = err.Error()
		return err
	}
	return nil
}

// Stop releases the hard interfaces and deletes the soft interface; it is
// no error when the soft interface is already gone. An interface of that
// name that is not batman-adv is left alone, with an error.
func (e *Engine) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.stop()
	e.started, e.client, e.lastErr = false, nil, ""
	if err != nil {
		e.lastErr = err.Error()
	}
	return err
}

func (e *Engine) stop() error {
	name := e.name()
	mesh, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("batadv: find %s: %w", name, err)
	}
	if mesh.Type() != familyName {
		return fmt.Errorf("batadv: %s is a %s interface, not batman-adv: not stopping it", name, mesh.Type())
	}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("batadv: list links: %w", err)
	}
	var errs []error
	for _, h := range hardInterfaces(links, mesh.Attrs().Index) {
		if err := RemoveHard(h); err != nil {
			errs = append(errs, err)
		}
	}
	// Deleting releases whatever is left anyway; it runs even when a
	// release failed.
	if err := DeleteMesh(name); err != nil {
		errs = append(errs, err)
	} else {
		e.logf("%s deleted", name)
	}
	return errors.Join(errs...)
}

// Status fills m.Engine and m.EngineError, m.Neighbours and m.Routes. It
// runs a few bounded netlink requests and dumps, no more.
func (e *Engine) Status(m *nodeapi.Mesh) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m.Neighbours, m.Routes = nil, nil
	name := e.name()
	mesh, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case err != nil && !errors.As(err, &nf):
		m.Engine, m.EngineError = stateFailed, fmt.Sprintf("batadv: find %s: %v", name, err)
		return
	case err != nil:
		mesh = nil
	case mesh.Type() != familyName:
		m.Engine, m.EngineError = stateFailed, fmt.Sprintf("%s is a %s interface, not batman-adv", name, mesh.Type())
		return
	}
	var links []netlink.Link
	hards := 0
	if mesh != nil {
		if links, err = netlink.LinkList(); err != nil {
			m.Engine, m.EngineError = stateFailed, fmt.Sprintf("batadv: list links: %v", err)
			return
		}
		hards = len(hardInterfaces(links, mesh.Attrs().Index))
	}
	m.Engine, m.EngineError = engineState(e.started, e.lastErr, name, mesh != nil, mesh != nil && mesh.Attrs().Flags&net.FlagUp != 0, hards)
	if mesh == nil || hards == 0 {
		return
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	ifname := func(i int) string {
		if n, ok := names[i]; ok {
			return n
		}
		return fmt.Sprintf("if%d", i)
	}
	neigh, orig, err := e.tables(mesh.Attrs().Index)
	if err != nil {
		// batman-adv answers ENOENT until a hard interface is active
		// (its carrier up): not a failure while starting.
		if !errors.Is(err, syscall.ENOENT) && m.EngineError == "" {
			m.EngineError = err.Error()
		}
		return
	}
	m.Neighbours = MeshNeighbours(neigh, orig, ifname)
	m.Routes = MeshRoutes(orig, ifname)
}

func (e *Engine) tables(idx int) ([]Neighbour, []Originator, error) {
	c, err := e.clientLocked()
	if err != nil {
		return nil, nil, err
	}
	neigh, err := c.Neighbours(idx)
	if err != nil {
		return nil, nil, err
	}
	orig, err := c.Originators(idx)
	if err != nil {
		return nil, nil, err
	}
	return neigh, orig, nil
}

// engineState is the engine's word and error from what Status found: the
// soft interface (whether it exists, is up, how many hard interfaces it
// has), whether Start made it and the last failure.
func engineState(started bool, lastErr, name string, exists, up bool, hards int) (state, why string) {
	switch {
	case !exists && lastErr != "":
		return stateFailed, lastErr
	case !exists && started:
		return stateFailed, name + " is gone: deleted behind the engine's back"
	case !exists:
		return stateOff, ""
	case !started && lastErr == "":
		// Left by an earlier run, or made by hand: not ours until Start.
		return stateOff, ""
	case up && hards > 0:
		return stateRunning, lastErr
	case lastErr != "":
		return stateFailed, lastErr
	case hards == 0:
		return stateStarting, "no mesh interface to run " + name + " over"
	}
	return stateStarting, name + " is down"
}

// Ifindex is the soft interface's index; an error when it is missing or
// not batman-adv.
func (e *Engine) Ifindex() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ifindexLocked()
}

func (e *Engine) ifindexLocked() (int, error) {
	name := e.name()
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("batadv: find %s: %w", name, err)
	}
	if l.Type() != familyName {
		return 0, fmt.Errorf("batadv: %s is a %s interface, not batman-adv", name, l.Type())
	}
	return l.Attrs().Index, nil
}

// Gateways is the gateway servers heard in the mesh, Best the one this
// node uses as a gateway client.
func (e *Engine) Gateways() ([]Gateway, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, idx, err := e.clientAndIndex()
	if err != nil {
		return nil, err
	}
	return c.Gateways(idx)
}

// GlobalTT is the global translation table: every MAC address the other
// nodes announce, and which node announces it.
func (e *Engine) GlobalTT() ([]TTEntry, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, idx, err := e.clientAndIndex()
	if err != nil {
		return nil, err
	}
	return c.GlobalTT(idx)
}

func (e *Engine) clientAndIndex() (*Client, int, error) {
	idx, err := e.ifindexLocked()
	if err != nil {
		return nil, 0, err
	}
	c, err := e.clientLocked()
	if err != nil {
		return nil, 0, err
	}
	return c, idx, nil
}

// Iface is the soft interface's name.
func (e *Engine) Iface() string { return e.name() }

// SetHardwareAddr sets MAC, which the next Start applies: the manager
// derives it from the node's mesh identity, which it loads after making
// the engine and changes after a collision.
func (e *Engine) SetHardwareAddr(mac net.HardwareAddr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.MAC = append(net.HardwareAddr(nil), mac...)
}

// Originators is the originator table: every node heard, through each
// next hop, with how long ago.
func (e *Engine) Originators() ([]Originator, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, idx, err := e.clientAndIndex()
	if err != nil {
		return nil, err
	}
	return c.Originators(idx)
}

// KernelModule is batman-adv's kernel module, which byzd loads at start
// when the kernel has it.
const KernelModule = "batman_adv"
