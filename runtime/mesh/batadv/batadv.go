// Package batadv configures batman-adv from Go: the mesh interface (bat0)
// and its hard interfaces over rtnetlink, the mesh's settings and its
// tables (neighbours, originators, gateways) over the generic netlink
// family "batadv". batman-adv on kernel 6.1 has no sysfs files left and
// batctl is only a front end to the same netlink calls.
//
// Everything works in the calling thread's network namespace.
package batadv

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ErrNotInKernel means batman-adv is missing: the kernel could not load
// the module (it tries by itself on the first rtnetlink or generic netlink
// request), so there is no link kind "batadv" and no family "batadv".
var ErrNotInKernel = errors.New("batman-adv is not in this kernel")

// Defaults.
const (
	MeshInterface = "bat0"
	// HardMTU is the MTU batman-adv wants on a hard interface: 1500 plus
	// its 32-byte header, so bat0 can carry full 1500-byte frames
	// without fragmenting.
	HardMTU = 1532
	// AlgoBATMANIV is the routing algorithm, batman-adv's default and the
	// one every deployed mesh (Gluon, LibreMesh) runs.
	AlgoBATMANIV = "BATMAN_IV"
	AlgoBATMANV  = "BATMAN_V"
)

// newMeshLinkRequest is the RTM_NEWLINK body (struct ifinfomsg, then
// attributes) that creates a batman-adv interface, as `ip link add bat0
// type batadv` sends it, with the routing algorithm named.
func newMeshLinkRequest(name, algo string) []byte {
	ifinfo := make([]byte, unix.SizeofIfInfomsg) // AF_UNSPEC, everything zero
	var e encoder
	e.Put(iflaIfname, append([]byte(name), 0))
	e.Nested(iflaLinkinfo, func(li *encoder) {
		li.Put(iflaInfoKind, []byte(familyName))
		li.Nested(iflaInfoData, func(d *encoder) {
			d.Put(iflaBatadvAlgoName, append([]byte(algo), 0))
		})
	})
	return append(ifinfo, e.Bytes()...)
}

// CreateMesh creates the batman-adv interface name with the routing
// algorithm algo ("" for BATMAN_IV) and returns its index. An existing
// batman-adv interface of that name is kept (its algorithm cannot change
// without deleting it); an existing interface of another kind is an error.
func CreateMesh(name, algo string) (int, error) {
	if algo == "" {
		algo = AlgoBATMANIV
	}
	if algo != AlgoBATMANIV && algo != AlgoBATMANV {
		return 0, fmt.Errorf("batadv: routing algorithm %q: want %s or %s", algo, AlgoBATMANIV, AlgoBATMANV)
	}
	if len(name) == 0 || len(name) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("batadv: interface name %q: 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddRawData(newMeshLinkRequest(name, algo))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	switch {
	case errors.Is(err, syscall.EOPNOTSUPP):
		return 0, fmt.Errorf("%w: create %s: the kernel has no link kind batadv (modprobe batman-adv failed): %v", ErrNotInKernel, name, err)
	case errors.Is(err, syscall.EEXIST):
		// Fall through to the check below.
	case err != nil:
		return 0, fmt.Errorf("batadv: create %s: %w", name, err)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("batadv: find %s after creating it: %w", name, err)
	}
	if l.Type() != familyName {
		return 0, fmt.Errorf("batadv: %s exists and is a %s interface, not batman-adv", name, l.Type())
	}
	return l.Attrs().Index, nil
}

// DeleteMesh removes the batman-adv interface; its hard interfaces are
// released by the kernel. A missing interface is not an error.
func DeleteMesh(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("batadv: find %s: %w", name, err)
	}
	if l.Type() != familyName {
		return fmt.Errorf("batadv: %s is a %s interface, not batman-adv: not deleting it", name, l.Type())
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("batadv: delete %s: %w", name, err)
	}
	return nil
}

// HardResult says what AddHard could do beyond enslaving.
type HardResult struct {
	// MTU is the hard interface's MTU afterwards; MTUNote says why it is
	// not HardMTU when the driver refused it (batman-adv then fragments).
	MTU     int
	MTUNote string
}

// AddHard makes hard a hard interface of the batman-adv interface mesh:
// MTU 1532 where the driver allows it, master set to mesh, both up.
func AddHard(mesh, hard string) (HardResult, error) {
	m, err := netlink.LinkByName(mesh)
	if err != nil {
		return HardResult{}, fmt.Errorf("batadv: find %s: %w", mesh, err)
	}
	if m.Type() != familyName {
		return HardResult{}, fmt.Errorf("batadv: %s is a %s interface, not batman-adv", mesh, m.Type())
	}
	h, err := netlink.LinkByName(hard)
	if err != nil {
		return HardResult{}, fmt.Errorf("batadv: find %s: %w", hard, err)
	}
	var res HardResult
	res.MTU = h.Attrs().MTU
	if res.MTU < HardMTU {
		if err := netlink.LinkSetMTU(h, HardMTU); err != nil {
			res.MTUNote = fmt.Sprintf("%s keeps MTU %d (the driver refused %d: %v); batman-adv fragments larger frames", hard, res.MTU, HardMTU, err)
		} else {
			res.MTU = HardMTU
		}
	}
	if err := netlink.LinkSetMasterByIndex(h, m.Attrs().Index); err != nil {
		return res, fmt.Errorf("batadv: make %s a hard interface of %s: %w", hard, mesh, err)
	}
	if err := netlink.LinkSetUp(h); err != nil {
		return res, fmt.Errorf("batadv: bring %s up: %w", hard, err)
	}
	if err := netlink.LinkSetUp(m); err != nil {
		return res, fmt.Errorf("batadv: bring %s up: %w", mesh, err)
	}
	return res, nil
}

// RemoveHard releases a hard interface from its batman-adv interface.
func RemoveHard(hard string) error {
	h, err := netlink.LinkByName(hard)
	if err != nil {
		return fmt.Errorf("batadv: find %s: %w", hard, err)
	}
	if err := netlink.LinkSetNoMaster(h); err != nil {
		return fmt.Errorf("batadv: release %s: %w", hard, err)
	}
	return nil
}
