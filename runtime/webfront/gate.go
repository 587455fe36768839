package webfront

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
)

// gate shares an app between its clients: a client (a source network)
// has at most perClient requests in the app, and its further requests
// wait in a queue of its own, so a client holding its turns with slow
// requests delays itself and nobody else; the app has at most total
// requests, taken in arrival order by clients that have a turn.
type gate struct {
	total     chan struct{}
	perClient int

	mu      sync.Mutex
	clients map[netip.Prefix]*clientQueue
}

type clientQueue struct {
	turns chan struct{}
	users int // holding a turn or waiting for one
}

// queueFactor bounds a client's waiting requests: beyond perClient ×
// queueFactor in all, the client gets 429 at once.
const queueFactor = 4

var (
	errClientBusy = errors.New("too many requests from this client at once")
	errAppBusy    = errors.New("no turn came in time")
)

func newGate(total, perClient int) *gate {
	return &gate{total: make(chan struct{}, total), perClient: perClient, clients: map[netip.Prefix]*clientQueue{}}
}

// enter waits for the client's turn and then the app's, until ctx ends
// (errAppBusy). It returns the function that gives both back.
func (g *gate) enter(ctx context.Context, client netip.Prefix) (func(), error) {
	g.mu.Lock()
	q := g.clients[client]
	if q == nil {
		q = &clientQueue{turns: make(chan struct{}, g.perClient)}
		g.clients[client] = q
	}
	if q.users >= g.perClient*queueFactor {
		g.mu.Unlock()
		return nil, errClientBusy
	}
	q.users++
	g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		if q.users--; q.users == 0 {
			delete(g.clients, client)
		}
		g.mu.Unlock()
	}
	select {
	case q.turns <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, errAppBusy
	}
	select {
	case g.total <- struct{}{}:
	case <-ctx.Done():
		<-q.turns
		leave()
		return nil, errAppBusy
	}
	return func() {
		<-g.total
		<-q.turns
		leave()
	}, nil
}

// inUse is how many requests hold a turn (for tests and the panel).
func (g *gate) inUse() int { return len(g.total) }

// sourceNet is the network a client is counted under: an IPv4 address,
// an IPv6 address's /64 (one host has a whole /64 to pick from), as
// runtime/daemon counts connections.
func sourceNet(remoteAddr string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		host, _, herr := net.SplitHostPort(remoteAddr)
		if herr != nil {
			return netip.Prefix{}
		}
		a, perr := netip.ParseAddr(host)
		if perr != nil {
			return netip.Prefix{}
		}
		ap = netip.AddrPortFrom(a, 0)
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}
