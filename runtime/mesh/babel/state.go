package babel

import (
	"errors"
	"net/netip"
	"sort"
)

// Limits on what State keeps. Routes come from neighbours, so their
// number is a neighbour's choice: a hundred-node mesh makes about 400
// prefixes, a few routes each.
const (
	MaxInterfaces = 64
	MaxNeighbours = 512
	MaxRoutes     = 16384
	MaxXRoutes    = 1024
)

// ErrLimit is returned by State.Apply when an add would pass a limit: the
// entry is dropped and State.Truncated set.
var ErrLimit = errors.New("babel: too many entries")

type xkey struct{ p, f netip.Prefix }

// State is babeld's tables as its socket told them: a dump, kept up to
// date by monitor events. The zero value is empty and ready.
type State struct {
	Interfaces map[string]InterfaceState
	Neighbours map[string]Neighbour
	Routes     map[string]Route
	XRoutes    map[xkey]XRoute
	// Truncated is set once an entry was dropped for a limit.
	Truncated bool
}

// Apply folds one event into the state.
func (s *State) Apply(ev Event) error {
	if s.Interfaces == nil {
		s.Interfaces = map[string]InterfaceState{}
		s.Neighbours = map[string]Neighbour{}
		s.Routes = map[string]Route{}
		s.XRoutes = map[xkey]XRoute{}
	}
	switch {
	case ev.Interface != nil:
		return put(s, s.Interfaces, ev.Interface.Name, *ev.Interface, ev.Kind, MaxInterfaces)
	case ev.Neighbour != nil:
		return put(s, s.Neighbours, ev.Neighbour.Handle, *ev.Neighbour, ev.Kind, MaxNeighbours)
	case ev.Route != nil:
		return put(s, s.Routes, ev.Route.Handle, *ev.Route, ev.Kind, MaxRoutes)
	case ev.XRoute != nil:
		return put(s, s.XRoutes, xkey{ev.XRoute.Prefix, ev.XRoute.From}, *ev.XRoute, ev.Kind, MaxXRoutes)
	}
	return nil
}

func put[K comparable, V any](s *State, m map[K]V, k K, v V, kind Kind, limit int) error {
	if kind == Flush {
		delete(m, k)
		return nil
	}
	if _, ok := m[k]; !ok && len(m) >= limit {
		s.Truncated = true
		return ErrLimit
	}
	m[k] = v
	return nil
}

// Clone is a deep copy, for a reader outside the monitor's goroutine.
func (s *State) Clone() State {
	c := State{
		Interfaces: make(map[string]InterfaceState, len(s.Interfaces)),
		Neighbours: make(map[string]Neighbour, len(s.Neighbours)),
		Routes:     make(map[string]Route, len(s.Routes)),
		XRoutes:    make(map[xkey]XRoute, len(s.XRoutes)),
		Truncated:  s.Truncated,
	}
	for k, v := range s.Interfaces {
		c.Interfaces[k] = v
	}
	for k, v := range s.Neighbours {
		c.Neighbours[k] = v
	}
	for k, v := range s.Routes {
		c.Routes[k] = v
	}
	for k, v := range s.XRoutes {
		c.XRoutes[k] = v
	}
	return c
}

// NeighbourList is the neighbours sorted by interface and address.
func (s *State) NeighbourList() []Neighbour {
	out := make([]Neighbour, 0, len(s.Neighbours))
	for _, n := range s.Neighbours {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Interface != out[j].Interface {
			return out[i].Interface < out[j].Interface
		}
		return out[i].Address.Less(out[j].Address)
	})
	return out
}

// RouteList is the routes sorted by prefix, installed first, then metric.
func (s *State) RouteList() []Route {
	out := make([]Route, 0, len(s.Routes))
	for _, r := range s.Routes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Prefix != b.Prefix {
			if a.Prefix.Addr() != b.Prefix.Addr() {
				return a.Prefix.Addr().Less(b.Prefix.Addr())
			}
			return a.Prefix.Bits() < b.Prefix.Bits()
		}
		if a.Installed != b.Installed {
			return a.Installed
		}
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return a.Handle < b.Handle
	})
	return out
}

// XRouteList is this node's announced prefixes, sorted.
func (s *State) XRouteList() []XRoute {
	out := make([]XRoute, 0, len(s.XRoutes))
	for _, x := range s.XRoutes {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Prefix.Addr() != out[j].Prefix.Addr() {
			return out[i].Prefix.Addr().Less(out[j].Prefix.Addr())
		}
		return out[i].Prefix.Bits() < out[j].Prefix.Bits()
	})
	return out
}
