package babel

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Infinity is babeld's unreachable metric: a retracted route keeps its
// entry (and an unreachable kernel route) for a while with this metric.
const Infinity = 0xFFFF

// MaxLine bounds a line from babeld's socket: babeld formats every line
// into a 512-byte buffer. A longer line is not babeld's.
const MaxLine = 512

// Kind is what an event does: add, change or flush.
type Kind uint8

// The event kinds babeld's socket sends.
const (
	Add Kind = iota + 1
	Change
	Flush
)

func (k Kind) String() string {
	switch k {
	case Add:
		return "add"
	case Change:
		return "change"
	case Flush:
		return "flush"
	}
	return "?"
}

// Neighbour is a router babeld hears on one of its interfaces.
type Neighbour struct {
	Handle    string // babeld's identifier for the entry (a pointer)
	Address   netip.Addr
	Interface string
	Reach     uint16 // multicast hello history, one bit per hello
	UReach    uint16 // unicast hello history
	RxCost    int
	TxCost    int
	Cost      int
}

// Route is one route babeld learned from a neighbour: several per prefix
// (one per neighbour offering it); the installed one is in use.
type Route struct {
	Handle    string
	Prefix    netip.Prefix
	From      netip.Prefix // source prefix, ::/0 or 0.0.0.0/0
	Installed bool
	RouterID  RouterID // the router that originated it
	Metric    int
	RefMetric int
	Via       netip.Addr
	Interface string
}

// Reachable says whether the route leads somewhere (not retracted).
func (r Route) Reachable() bool { return r.Metric < Infinity }

// XRoute is a route this node announces (redistributed).
type XRoute struct {
	Prefix netip.Prefix
	From   netip.Prefix
	Metric int
}

// Interface is one of babeld's interfaces as it reports it.
type InterfaceState struct {
	Name string
	Up   bool
	IPv6 netip.Addr // link-local, when up
	IPv4 netip.Addr // when it has one
}

// Event is one line of a dump or monitor: exactly one of the pointers is
// set.
type Event struct {
	Kind      Kind
	Interface *InterfaceState
	Neighbour *Neighbour
	Route     *Route
	XRoute    *XRoute
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("babel: unreadable line")

func syntaxErr(line, why string) error {
	if len(line) > 80 {
		line = line[:80] + "…"
	}
	return fmt.Errorf("%w: %s: %q", ErrSyntax, why, line)
}

// kv is "key value key value …" after an entry's leading words, looked
// up in place: a line has a dozen keys at most, and a map per line was
// most of what parsing a busy monitor cost.
type kv []string

// lookup is the value of key k and whether it is there.
func (f kv) lookup(k string) (string, bool) {
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == k {
			return f[i+1], true
		}
	}
	return "", false
}

// get is the value of key k, "" when absent.
func (f kv) get(k string) string {
	v, _ := f.lookup(k)
	return v
}

// fields reads "key value key value …" after the entry's leading words.
// Unknown keys are kept (a later babeld may add some) but bounded; a key
// given twice is refused.
func fields(words []string) (kv, bool) {
	if len(words)%2 != 0 || len(words) > 40 {
		return nil, false
	}
	for i := 2; i < len(words); i += 2 {
		for j := 0; j < i; j += 2 {
			if words[i] == words[j] {
				return nil, false
			}
		}
	}
	return kv(words), true
}

// ParseLine reads one event line (without its newline). The header lines
// and the "ok"/"no"/"bad" terminators are not events: see Client.
func ParseLine(line string) (Event, error) {
	if len(line) > MaxLine {
		return Event{}, syntaxErr(line, "too long")
	}
	w := strings.Fields(line)
	if len(w) < 3 {
		return Event{}, syntaxErr(line, "too short")
	}
	var ev Event
	switch w[0] {
	case "add":
		ev.Kind = Add
	case "change":
		ev.Kind = Change
	case "flush":
		ev.Kind = Flush
	default:
		return Event{}, syntaxErr(line, "unknown verb")
	}
	var err error
	switch w[1] {
	case "interface":
		ev.Interface, err = parseInterface(w[2], w[3:])
	case "neighbour":
		ev.Neighbour, err = parseNeighbour(w[2], w[3:])
	case "route":
		ev.Route, err = parseRoute(w[2], w[3:])
	case "xroute":
		ev.XRoute, err = parseXRoute(w[3:])
	default:
		return Event{}, syntaxErr(line, "unknown object")
	}
	if err != nil {
		return Event{}, syntaxErr(line, err.Error())
	}
	return ev, nil
}

func parseInterface(name string, rest []string) (*InterfaceState, error) {
	f, ok := fields(rest)
	if !ok || !validName(name) {
		return nil, errors.New("bad interface")
	}
	s := &InterfaceState{Name: name}
	switch f.get("up") {
	case "true":
		s.Up = true
	case "false":
	default:
		return nil, errors.New("bad up")
	}
	var err error
	if v, ok := f.lookup("ipv6"); ok {
		if s.IPv6, err = netip.ParseAddr(v); err != nil || !s.IPv6.Is6() {
			return nil, errors.New("bad ipv6")
		}
	}
	if v, ok := f.lookup("ipv4"); ok {
		if s.IPv4, err = netip.ParseAddr(v); err != nil || !s.IPv4.Is4() {
			return nil, errors.New("bad ipv4")
		}
	}
	return s, nil
}

func handle(h string) bool {
	if h == "" || len(h) > 16 {
		return false
	}
	_, err := strconv.ParseUint(h, 16, 64)
	return err == nil
}

func cost(s string) (int, bool) {
	v, err := strconv.Atoi(s)
	return v, err == nil && v >= 0 && v <= Infinity
}

func hex16(s string) (uint16, bool) {
	v, err := strconv.ParseUint(s, 16, 16)
	return uint16(v), err == nil && len(s) == 4
}

func parseNeighbour(h string, rest []string) (*Neighbour, error) {
	f, ok := fields(rest)
	if !ok || !handle(h) {
		return nil, errors.New("bad neighbour")
	}
	n := &Neighbour{Handle: h, Interface: f.get("if")}
	var err error
	if n.Address, err = netip.ParseAddr(f.get("address")); err != nil {
		return nil, errors.New("bad address")
	}
	if !validName(n.Interface) {
		return nil, errors.New("bad if")
	}
	var ok1, ok2, ok3, ok4, ok5 bool
	n.Reach, ok1 = hex16(f.get("reach"))
	n.UReach, ok2 = hex16(f.get("ureach"))
	n.RxCost, ok3 = cost(f.get("rxcost"))
	n.TxCost, ok4 = cost(f.get("txcost"))
	n.Cost, ok5 = cost(f.get("cost"))
	if !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return nil, errors.New("bad reach or cost")
	}
	return n, nil
}

func parseRoute(h string, rest []string) (*Route, error) {
	f, ok := fields(rest)
	if !ok || !handle(h) {
		return nil, errors.New("bad route")
	}
	r := &Route{Handle: h, Interface: f.get("if")}
	var err error
	if r.Prefix, err = netip.ParsePrefix(f.get("prefix")); err != nil {
		return nil, errors.New("bad prefix")
	}
	if r.From, err = netip.ParsePrefix(f.get("from")); err != nil {
		return nil, errors.New("bad from")
	}
	switch f.get("installed") {
	case "yes":
		r.Installed = true
	case "no":
	default:
		return nil, errors.New("bad installed")
	}
	if r.RouterID, err = ParseRouterID(f.get("id")); err != nil {
		return nil, errors.New("bad id")
	}
	var ok1, ok2 bool
	r.Metric, ok1 = cost(f.get("metric"))
	r.RefMetric, ok2 = cost(f.get("refmetric"))
	if !ok1 || !ok2 {
		return nil, errors.New("bad metric")
	}
	if r.Via, err = netip.ParseAddr(f.get("via")); err != nil {
		return nil, errors.New("bad via")
	}
	if !validName(r.Interface) {
		return nil, errors.New("bad if")
	}
	return r, nil
}

// parseXRoute reads "KEY prefix P from S metric M": the key is the
// prefix and source joined by "-", redundant with the fields.
func parseXRoute(rest []string) (*XRoute, error) {
	f, ok := fields(rest)
	if !ok {
		return nil, errors.New("bad xroute")
	}
	x := &XRoute{}
	var err error
	if x.Prefix, err = netip.ParsePrefix(f.get("prefix")); err != nil {
		return nil, errors.New("bad prefix")
	}
	if x.From, err = netip.ParsePrefix(f.get("from")); err != nil {
		return nil, errors.New("bad from")
	}
	if x.Metric, ok = cost(f.get("metric")); !ok {
		return nil, errors.New("bad metric")
	}
	return x, nil
}
