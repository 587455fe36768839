// Package meshsim simulates a mesh on one host: each node is a network
// namespace running the real mesh manager (runtime/mesh, in this process,
// its netlink calls aimed at the node's namespace) and the real babeld
// (started in the namespace with ip netns exec), linked to its neighbours
// by veth pairs. Tests build lines, grids and random geometric graphs,
// check that every node reaches every other over the mesh addresses, and
// time convergence; the benchmark measures it for 10 to 100 nodes.
package meshsim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"byzantium/runtime/mesh"
	"byzantium/runtime/mesh/addr"
	"byzantium/runtime/mesh/babel"
	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

// Probe is the TCP port every node listens on for reachability probes.
const Probe = 7007

// Node is one simulated node.
type Node struct {
	Index   int
	NS      string
	Handle  netns.NsHandle
	Manager *mesh.Manager
	Dir     string
	sys     *mesh.System
	nl      *netlink.Handle // for the simulator's own checks
	ln      []net.Listener
	done    chan struct{}
}

// Edge links nodes A and B.
type Edge struct{ A, B int }

// Sim is a running simulation.
type Sim struct {
	Prefix   string
	Nodes    []*Node
	Edges    []Edge
	Wireless bool
	Logf     func(string, ...any)
	// RoutesAt is when, in the last Converge, every node first had a
	// route to every other node's addresses.
	RoutesAt time.Duration

	dir     string
	cancel  context.CancelFunc
	sigStop func()
	once    sync.Once
}

// Options shape a simulation.
type Options struct {
	Wireless bool // tell babeld the links are radios
	Logf     func(string, ...any)
	// Seed, when set for a node index, is written as its identity before
	// it starts (collision tests).
	Seed map[int]addr.Identity
}

// ip runs the ip tool.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Sweep removes namespaces a killed simulation left (named bms<pid>-…
// for a process that is gone).
func Sweep() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(l), " ")
		rest, ok := strings.CutPrefix(name, "bms")
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		p, err := strconv.Atoi(pid)
		if err != nil || p == os.Getpid() {
			continue
		}
		if err := syscall.Kill(p, 0); errors.Is(err, syscall.ESRCH) {
			for _, q := range nsPids(name) {
				syscall.Kill(q, syscall.SIGKILL)
			}
			ip("netns", "del", name)
		}
	}
}

func nsPids(name string) []int {
	out, _ := exec.Command("ip", "netns", "pids", name).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// Start builds n nodes linked by edges and starts their managers.
func Start(n int, edges []Edge, opt Options) (*Sim, error) {
	Sweep()
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("", "meshsim")
	if err != nil {
		return nil, err
	}
	s := &Sim{Prefix: fmt.Sprintf("bms%d-", os.Getpid()), Edges: edges, Wireless: opt.Wireless, Logf: opt.Logf, dir: dir}
	// Clean up on SIGINT or SIGTERM too: namespaces outlive the process.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	s.sigStop = func() { signal.Stop(sig); close(stop) }
	go func() {
		select {
		case <-sig:
			s.Close()
			os.Exit(1)
		case <-stop:
		}
	}()
	if err := s.build(n, edges); err != nil {
		s.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, nd := range s.Nodes {
		if id, ok := opt.Seed[nd.Index]; ok {
			if err := addr.Save(filepath.Join(nd.Dir, "state"), id); err != nil {
				s.Close()
				return nil, err
			}
		}
		if err := s.startNode(ctx, nd); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Sim) ifName(a, b int) string { return fmt.Sprintf("m%d", b) }

func (s *Sim) build(n int, edges []Edge) error {
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%d", s.Prefix, i)
		if err := ip("netns", "add", name); err != nil {
			return err
		}
		h, err := netns.GetFromName(name)
		if err != nil {
			return fmt.Errorf("netns %s: %w", name, err)
		}
		nd := &Node{Index: i, NS: name, Handle: h, Dir: filepath.Join(s.dir, strconv.Itoa(i)), sys: &mesh.System{NS: h}}
		s.Nodes = append(s.Nodes, nd)
		if err := ip("-n", name, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	for _, e := range edges {
		a, b := s.Nodes[e.A], s.Nodes[e.B]
		// The interface on A towards B is mB, and the other way round.
		if err := ip("link", "add", s.ifName(e.A, e.B), "netns", a.NS, "type", "veth", "peer", "name", s.ifName(e.B, e.A), "netns", b.NS); err != nil {
			return err
		}
		if err := ip("-n", a.NS, "link", "set", s.ifName(e.A, e.B), "up"); err != nil {
			return err
		}
		if err := ip("-n", b.NS, "link", "set", s.ifName(e.B, e.A), "up"); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sim) startNode(ctx context.Context, nd *Node) error {
	ns := nd.NS
	wireless := s.Wireless
	m, err := mesh.New(mesh.Options{
		StateDir: filepath.Join(nd.Dir, "state"),
		RunDir:   filepath.Join(nd.Dir, "run"),
		Logf: func(f string, a ...any) {
			s.Logf("%s: "+f, append([]any{ns}, a...)...)
		},
		Launch: func(ctx context.Context, argv []string) (*exec.Cmd, error) {
			return exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...), nil
		},
		System:   nd.sys,
		Wireless: func(string) bool { return wireless },
	}, meshcfg.Defaults())
	if err != nil {
		return err
	}
	nd.Manager = m
	// Probe listeners on every address (the mesh addresses come and go
	// with re-rolls: listen on the wildcard).
	err = nd.sys.Do(func() error {
		for _, netw := range []string{"tcp4", "tcp6"} {
			ln, err := net.Listen(netw, fmt.Sprintf(":%d", Probe))
			if err != nil {
				return err
			}
			nd.ln = append(nd.ln, ln)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: probe listener: %w", ns, err)
	}
	nd.done = make(chan struct{})
	go func() {
		defer close(nd.done)
		if err := m.Run(ctx); err != nil {
			s.Logf("%s: manager: %v", ns, err)
		}
	}()
	return nil
}

// Close stops every manager (babeld gets SIGTERM) and deletes the
// namespaces and the temporary folder. It is safe to call twice.
func (s *Sim) Close() {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		for _, nd := range s.Nodes {
			if nd.done != nil {
				select {
				case <-nd.done:
				case <-time.After(10 * time.Second):
				}
			}
			for _, ln := range nd.ln {
				ln.Close()
			}
		}
		for _, nd := range s.Nodes {
			for _, p := range nsPids(nd.NS) {
				syscall.Kill(p, syscall.SIGKILL)
			}
			if nd.nl != nil {
				nd.nl.Close()
			}
			nd.Handle.Close()
			ip("netns", "del", nd.NS)
		}
		os.RemoveAll(s.dir)
		if s.sigStop != nil {
			s.sigStop()
		}
	})
}

// Addr is node i's current mesh address of a family.
func (s *Sim) Addr(i int, v6 bool) netip.Addr {
	a := s.Nodes[i].Manager.Identity().Addresses()
	if v6 {
		return a.IPv6.Addr()
	}
	return a.IPv4.Addr()
}

// Reach tries a TCP connection from node i to node j's mesh address.
func (s *Sim) Reach(i, j int, v6 bool, timeout time.Duration) error {
	dst := netip.AddrPortFrom(s.Addr(j, v6), Probe).String()
	return s.Nodes[i].sys.Do(func() error {
		c, err := net.DialTimeout("tcp", dst, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Unreached lists the pairs (i, j) among pending that do not connect now.
func (s *Sim) Unreached(pending []Edge, v6 bool) []Edge {
	var out []Edge
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, p := range pending {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if s.Reach(p.A, p.B, v6, time.Second) != nil {
				mu.Lock()
				out = append(out, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// AllPairs is every ordered pair of distinct nodes.
func (s *Sim) AllPairs() []Edge {
	var out []Edge
	for i := range s.Nodes {
		for j := range s.Nodes {
			if i != j {
				out = append(out, Edge{i, j})
			}
		}
	}
	return out
}

// Converge waits until every pair reaches each other over IPv4 and IPv6
// and returns how long it took, or the pairs still unreached at timeout.
// It first waits for every node's babeld to have a route to every other
// node's addresses (cheap to check), then probes every pair with a TCP
// connection (slow for many unreached pairs: each waits for its timeout).
func (s *Sim) Converge(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	p4, p6 := s.ProbePairs(), s.ProbePairs()
	routed := false
	for {
		if routed || s.routesComplete() {
			if !routed {
				routed = true
				s.RoutesAt = time.Since(start)
			}
			p4 = s.Unreached(p4, false)
			p6 = s.Unreached(p6, true)
			if len(p4) == 0 && len(p6) == 0 {
				return time.Since(start), nil
			}
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("after %v (routes complete: %v; %s), %d IPv4 and %d IPv6 pairs unreached (first: %v %v)", timeout, routed, s.worst(), len(p4), len(p6), first(p4), first(p6))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ProbePairs are the pairs Converge probes: all of them up to 20 nodes;
// beyond, every node to and from node 0 and the last node, and 200 pairs
// drawn at random (seeded), since N² probes would take minutes.
func (s *Sim) ProbePairs() []Edge {
	n := len(s.Nodes)
	if n <= 20 {
		return s.AllPairs()
	}
	seen := map[Edge]bool{}
	var out []Edge
	add := func(e Edge) {
		if e.A != e.B && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	for i := 0; i < n; i++ {
		add(Edge{0, i})
		add(Edge{i, 0})
		add(Edge{n - 1, i})
		add(Edge{i, n - 1})
	}
	r := rand.New(rand.NewSource(int64(n)))
	for k := 0; k < 200; k++ {
		add(Edge{r.Intn(n), r.Intn(n)})
	}
	return out
}

// worst describes the node with the fewest routes, for a failure.
func (s *Sim) worst() string {
	best, bi := -1, 0
	for i := range s.Nodes {
		n := 0
		for _, r := range s.Status(i).Routes {
			if r.Installed {
				n++
			}
		}
		if best < 0 || n < best {
			best, bi = n, i
		}
	}
	st := s.Status(bi)
	_, _, starts := s.Nodes[bi].Manager.EngineStarts()
	return fmt.Sprintf("node %d has %d installed routes of %d, %d neighbours, engine %s (%d starts) %s: %s", bi, best, 4*(len(s.Nodes)-1), len(st.Neighbours), st.Engine, starts, st.EngineError, st.Summary)
}

// routesComplete says whether every node's kernel has a route from
// babeld to every other node's two addresses: what forwarding uses, read
// from the routing tables (two netlink dumps a node, stopping at the
// first node that lacks one) rather than from the managers' views or by
// probing N² pairs.
func (s *Sim) routesComplete() bool {
	want := make([]netip.Prefix, 0, 2*len(s.Nodes))
	for i := range s.Nodes {
		a := s.Nodes[i].Manager.Identity().Addresses()
		want = append(want, a.IPv4, a.IPv6)
	}
	for i, nd := range s.Nodes {
		have, err := nd.babelRoutes()
		if err != nil {
			s.Logf("%s: reading routes: %v", nd.NS, err)
			return false
		}
		for j, p := range want {
			if j/2 != i && !have[p] {
				return false
			}
		}
	}
	return true
}

// ViewsComplete says whether every manager's status lists an installed,
// reachable route to every other node's two addresses: the managers'
// views of babeld (what the API and the panel show, and what the
// collision check reads) caught up with the kernels'.
func (s *Sim) ViewsComplete() bool {
	want := map[string]bool{}
	for i := range s.Nodes {
		a := s.Nodes[i].Manager.Identity().Addresses()
		want[a.IPv4.String()] = true
		want[a.IPv6.String()] = true
	}
	for i := range s.Nodes {
		a := s.Nodes[i].Manager.Identity().Addresses()
		have := 0
		for _, r := range s.Status(i).Routes {
			if r.Installed && want[r.Prefix] && r.Prefix != a.IPv4.String() && r.Prefix != a.IPv6.String() {
				have++
			}
		}
		if have < 2*(len(s.Nodes)-1) {
			return false
		}
	}
	return true
}

// babelRoutes are the destinations of the unicast routes babeld
// installed in the node's main table.
func (nd *Node) babelRoutes() (map[netip.Prefix]bool, error) {
	if nd.nl == nil {
		h, err := netlink.NewHandleAt(nd.Handle)
		if err != nil {
			return nil, err
		}
		nd.nl = h
	}
	have := map[netip.Prefix]bool{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := nd.nl.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: babelProto}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.Dst == nil || r.Type != unix.RTN_UNICAST {
				continue // babeld keeps retracted routes as unreachable ones
			}
			ones, _ := r.Dst.Mask.Size()
			if a, ok := netip.AddrFromSlice(r.Dst.IP); ok {
				have[netip.PrefixFrom(a.Unmap(), ones)] = true
			}
		}
	}
	return have, nil
}

// babelProto is the kernel route protocol babeld installs with.
const babelProto = 42

func first(e []Edge) any {
	if len(e) == 0 {
		return "-"
	}
	return e[0]
}

// SetLink brings the veth pair of edge e down or up (both ends).
func (s *Sim) SetLink(e Edge, up bool) error {
	st := "down"
	if up {
		st = "up"
	}
	if err := ip("-n", s.Nodes[e.A].NS, "link", "set", s.ifName(e.A, e.B), st); err != nil {
		return err
	}
	return ip("-n", s.Nodes[e.B].NS, "link", "set", s.ifName(e.B, e.A), st)
}

// Status is node i's mesh status.
func (s *Sim) Status(i int) nodeapi.Mesh { return s.Nodes[i].Manager.Status() }

// BabeldRSS is the resident memory of node i's babeld, in bytes.
func (s *Sim) BabeldRSS(i int) int64 {
	var total int64
	for _, p := range nsPids(s.Nodes[i].NS) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		if strings.TrimSpace(string(comm)) != "babeld" {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb * 1024
			}
		}
	}
	return total
}

// Line is 0–1–…–(n-1).
func Line(n int) []Edge {
	var e []Edge
	for i := 0; i+1 < n; i++ {
		e = append(e, Edge{i, i + 1})
	}
	return e
}

// Grid is a w×h grid, row by row.
func Grid(w, h int) []Edge {
	var e []Edge
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			if x+1 < w {
				e = append(e, Edge{i, i + 1})
			}
			if y+1 < h {
				e = append(e, Edge{i, i + w})
			}
		}
	}
	return e
}

// Geometric is a random geometric graph: n points in the unit square,
// linked when closer than radius, drawn from seed again until connected.
func Geometric(n int, radius float64, seed int64) []Edge {
	r := rand.New(rand.NewSource(seed))
	for {
		xs, ys := make([]float64, n), make([]float64, n)
		for i := range xs {
			xs[i], ys[i] = r.Float64(), r.Float64()
		}
		var e []Edge
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				if math.Hypot(xs[i]-xs[j], ys[i]-ys[j]) < radius {
					e = append(e, Edge{i, j})
				}
			}
		}
		if connected(n, e) {
			return e
		}
	}
}

func connected(n int, e []Edge) bool {
	adj := make([][]int, n)
	for _, x := range e {
		adj[x.A] = append(adj[x.A], x.B)
		adj[x.B] = append(adj[x.B], x.A)
	}
	seen := make([]bool, n)
	stack := []int{0}
	seen[0] = true
	count := 1
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, w := range adj[v] {
			if !seen[w] {
				seen[w] = true
				count++
				stack = append(stack, w)
			}
		}
	}
	return count == n
}

var _ = babel.Infinity
