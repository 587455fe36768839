package gateway

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

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

	// mu keeps close from pulling the handle from under a do in flight
	// (an HTTP transport may still be dialling after its request ended).
	mu     sync.RWMutex
	closed bool
}

var errNSClosed = errors.New("gateway: network namespace handle closed")

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
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed && n.h.IsOpen() {
		n.h.Close()
	}
	n.closed = true
}

// own tells whether this is the process's own namespace.
func (n *netNS) own() bool { return n.path == "" }

// handle is a netlink handle in the namespace.
func (n *netNS) handle() (*netlink.Handle, error) {
	if n.own() {
		return netlink.NewHandle()
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return nil, errNSClosed
	}
	return netlink.NewHandleAt(n.h)
}

// nft is an nftables connection in the namespace.
func (n *netNS) nft() (*nftables.Conn, error) {
	if n.own() {
		return nftables.New()
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return nil, errNSClosed
	}
	// The connection dials netlink afresh for each operation with this
	// descriptor: it is used only from Run's goroutine, before Run closes
	// the namespace.
	return nftables.New(nftables.WithNetNSFd(int(n.h)))
}

// do runs f on a thread inside the namespace: sockets f makes, and the
// /proc/sys/net files it opens, belong to that namespace. The goroutine
// stays locked to its thread for f's whole run; if the thread cannot be
// switched back, it is left locked so that the runtime discards it rather
// than reuse a thread in the wrong namespace.
func (n *netNS) do(f func() error) error {
	if n.own() {
		return f()
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return errNSClosed
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
