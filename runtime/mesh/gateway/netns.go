package gateway

import (
	"fmt"
	"runtime"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// netNS is the network namespace the gateway works in: the process's own
// (path "") or a named one, which is how the tests, and the mesh simulator
// running many nodes in one process, use it.
type netNS struct {
	path string
	h    netns.NsHandle // -1 for the process's own
}

func openNetNS(path string) (*netNS, error) {
	if path == "" {
		return &netNS{h: netns.None()}, nil
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: network namespace %s: %w", path, err)
	}
	return &netNS{path: path, h: h}, nil
}

func (n *netNS) close() {
	if n.h.IsOpen() {
		n.h.Close()
	}
}

// handle is a netlink handle in the namespace.
func (n *netNS) handle() (*netlink.Handle, error) {
	if !n.h.IsOpen() {
		return netlink.NewHandle()
	}
	return netlink.NewHandleAt(n.h)
}

// nft is an nftables connection in the namespace.
func (n *netNS) nft() (*nftables.Conn, error) {
	if !n.h.IsOpen() {
		return nftables.New()
	}
	return nftables.New(nftables.WithNetNSFd(int(n.h)))
}

// do runs f on a thread inside the namespace: sockets f makes, and the
// /proc/sys/net files it opens, belong to that namespace. The goroutine
// stays locked to its thread for f's whole run; if the thread cannot be
// switched back, it is left locked so that the runtime discards it rather
// than reuse a thread in the wrong namespace.
func (n *netNS) do(f func() error) error {
	if !n.h.IsOpen() {
		return f()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("gateway: current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("gateway: entering %s: %w", n.path, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("gateway: leaving %s: %w", n.path, err)
	}
	runtime.UnlockOSThread()
	return ferr
}
