package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"byzantium/ci/qemu"
	"byzantium/runtime/nodeapi"
)

// meshNode is one booted node of a mesh test, reached through its own
// forwarded HTTPS port.
type meshNode struct {
	name string
	opts qemu.Options
	*liveNode
	auth map[string]string
}

// meshUplinkHost is where a node's user network reaches the VM host
// (QEMU's user network gives the host the subnet's .2): only node C's
// user network goes past the host.
func meshUplinkHost(subnet string) string {
	return strings.TrimSuffix(subnet, "0/24") + "2"
}

// TestMeshLine boots three default-image nodes linked in a line A–B–C by
// point-to-point links on 127.0.0.1 and checks that they mesh, first with
// the real babeld, then with batman-adv, switched at run time through the
// API: A reaches C through B by C's mesh address; C shares its uplink and
// A reaches the uplink's host through C; C's uplink is cut and A's
// default route goes; B is stopped and A loses C; B boots again (fresh,
// no persistence) and the mesh heals. Last, both together (babeld over
// the batman-adv cloud): A reaches C again. One boot of three nodes
// serves every assertion.
func TestMeshLine(t *testing.T) {
	fig := meshLine(t)
	t.Logf("figures: %v", fig)
}

// BenchmarkMeshLine runs TestMeshLine's scenario and reports its times
// (make bench): the goals are 30 s for each.
func BenchmarkMeshLine(b *testing.B) {
	for i := 0; i < b.N; i++ {
		fig := meshLine(b)
		for _, k := range slices.Sorted(maps.Keys(fig)) {
			b.ReportMetric(fig[k].Seconds(), k+"-s")
		}
	}
}

// meshFigures are the scenario's times, by name.
type meshFigures map[string]time.Duration

// meshLine is TestMeshLine's scenario; it returns how long each step
// took to be seen.
func meshLine(t testing.TB) meshFigures {
	fig := meshFigures{}
	img := genericImages(t)
	udp := qemu.MustFreeUDPPorts(t, 4)
	// The uplink's host: an HTTP server on the VM host's loopback, which
	// C's user network reaches as 10.0.30.2.
	token := fmt.Sprintf("byz-uplink-%d", time.Now().UnixNano())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, token+"\n") }),
		ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	hostPort := ln.Addr().(*net.TCPAddr).Port

	mk := func(name, subnet string, restrict bool, links ...qemu.Link) *meshNode {
		https := freePort(t)
		return &meshNode{name: name, opts: withCredential(qemu.Options{
			Disk:    scratchCopy(t, img.usb),
			Forward: []string{fmt.Sprintf("%d:443", https)},
			// Each its own MAC: batman-adv names a node by its first
			// port's address (QEMU's default is one for all).
			UserNet: qemu.UserNet{Net: subnet, Restrict: restrict, MAC: "52:54:00:0a:00:0" + strings.ToLower(name[:1])},
			Links:   links, Monitor: true,
		}), liveNode: &liveNode{base: "https://127.0.0.1:" + strconv.Itoa(https)}}
	}
	a := mk("A", "10.0.10.0/24", true, qemu.Link{ID: "ab", Local: udp[0], Peer: udp[1], MAC: "52:54:00:ac:00:01"})
	b := mk("B", "10.0.20.0/24", true, qemu.Link{ID: "ab", Local: udp[1], Peer: udp[0], MAC: "52:54:00:ac:00:02"},
		qemu.Link{ID: "bc", Local: udp[2], Peer: udp[3], MAC: "52:54:00:ac:00:03"})
	c := mk("C", "10.0.30.0/24", false, qemu.Link{ID: "bc", Local: udp[3], Peer: udp[2], MAC: "52:54:00:ac:00:04"})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	nodes := []*meshNode{a, b, c}
	for _, n := range nodes {
		n.start(t)
	}
	var lastStart time.Time
	for _, n := range nodes {
		n.serve(ctx, t)
		lastStart = time.Now()
	}

	// A reaches C through B by C's mesh address.
	ca := waitMesh(ctx, t, c, "C has mesh addresses", func(m nodeapi.Mesh) bool { return m.Addresses.IPv4 != "" }).Addresses
	ba := waitMesh(ctx, t, b, "B has mesh addresses", func(m nodeapi.Mesh) bool { return m.Addresses.IPv4 != "" }).Addresses
	am := waitMesh(ctx, t, a, "A has a route to C", func(m nodeapi.Mesh) bool { return hasRoute(m, ca.IPv4) })
	fig["babel-converge"] = time.Since(lastStart)
	t.Logf("A reaches C's address %s in the routes %v after the last byzd served (at most)", ca.IPv4, time.Since(lastStart).Round(time.Second))
	if !am.Joined || am.Protocol != nodeapi.MeshBabel || am.Engine != "running" {
		t.Errorf("A: joined %v, protocol %q, engine %q: want joined, babel, running (%s)", am.Joined, am.Protocol, am.Engine, am.Summary)
	}
	if slices.Contains([]string{ba.IPv4, ca.IPv4}, am.Addresses.IPv4) || ba.IPv4 == ca.IPv4 {
		t.Errorf("the nodes share mesh addresses: A %s, B %s, C %s", am.Addresses.IPv4, ba.IPv4, ca.IPv4)
	}
	bm := waitMesh(ctx, t, b, "B hears both neighbours", func(m nodeapi.Mesh) bool { return len(m.Neighbours) >= 2 })
	t.Logf("B: %s", bm.Summary)
	a.reach(ctx, t, c, ca.IPv4)

	// C shares its uplink once its Internet check (the host's server)
	// passes; A's default route then goes through the mesh to C.
	var set nodeapi.MeshSettings
	if code, body := call(t, c.c, "GET", c.base+nodeapi.MeshSettingsPath, nil, c.auth, &set); code != http.StatusOK {
		t.Fatalf("C: GET %s: %d %s", nodeapi.MeshSettingsPath, code, body)
	}
	set.Check = []string{fmt.Sprintf("tcp:%s:%d", meshUplinkHost("10.0.30.0/24"), hostPort)}
	set.Share, set.KeepKey = nodeapi.ShareAuto, true
	body, _ := json.Marshal(set)
	if code, out := call(t, c.c, "PUT", c.base+nodeapi.MeshSettingsPath, strings.NewReader(string(body)), c.auth, nil); code != http.StatusOK {
		t.Fatalf("C: PUT %s: %d %s", nodeapi.MeshSettingsPath, code, out)
	}
	cm := waitMesh(ctx, t, c, "C shares its uplink", func(m nodeapi.Mesh) bool { return m.Gateway.Sharing })
	if cm.Gateway.Uplink != "eth0" {
		t.Errorf("C's uplink is %q, want eth0 (its user network)", cm.Gateway.Uplink)
	}
	waitMesh(ctx, t, a, "A uses a mesh gateway", func(m nodeapi.Mesh) bool { return m.Gateway.InUse != "" })
	// busybox's wget segfaults on this image (static glibc); nc speaks
	// the HTTP by hand. The routing table goes to the console first, for
	// the log when it fails.
	a.console(ctx, t, fmt.Sprintf(`ip -4 route show table all | grep -v ' table local'; `+
		`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 10 %s %d`, meshUplinkHost("10.0.30.0/24"), hostPort), token)
	if am := mesh(t, a); am.Gateway.Sharing {
		t.Errorf("A shares an uplink it cannot get out of: %+v", am.Gateway)
	}

	fig["babel-gateway-loss"] = cutUplink(ctx, t, a, c)
	fig["babel-node-loss"], fig["babel-reboot-heal"] = loseAndHeal(ctx, t, a, b, c, ca.IPv4, "")

	// batman-adv, switched at run time on every node.
	switched := time.Now()
	for _, n := range nodes {
		setProtocol(t, n, nodeapi.MeshBatman)
	}
	am = waitMesh(ctx, t, a, "A reaches C over batman-adv", func(m nodeapi.Mesh) bool {
		return m.Protocol == nodeapi.MeshBatman && hasRoute(m, ca.IPv4)
	})
	fig["batman-switch-converge"] = time.Since(switched)
	t.Logf("batman-adv: the switch to A's route to C: %v (%s)", time.Since(switched).Round(time.Second), am.Summary)
	if !am.Joined || am.Engine != "running" || !hasCloud(am) {
		t.Errorf("A on batman-adv: joined %v, engine %q, interfaces %+v: want joined, running, bat0", am.Joined, am.Engine, am.Interfaces)
	}
	a.reach(ctx, t, c, ca.IPv4)
	am = waitMesh(ctx, t, a, "A uses C as its batman-adv gateway", func(m nodeapi.Mesh) bool { return strings.HasPrefix(m.Gateway.InUse, ca.IPv4+" ") })
	a.console(ctx, t, fmt.Sprintf(`ip -4 route; printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 10 %s %d`, meshUplinkHost("10.0.30.0/24"), hostPort), token)
	fig["batman-gateway-loss"] = cutUplink(ctx, t, a, c)
	fig["batman-node-loss"], fig["batman-reboot-heal"] = loseAndHeal(ctx, t, a, b, c, ca.IPv4, nodeapi.MeshBatman)

	// Both: A and B in one batman-adv cloud with babeld over it, and
	// the B–C link kept out of the cloud (B's eth2, C's eth1: QEMU names
	// the user network eth0, then the links in order), babeld on it
	// directly: between clouds.
	switched = time.Now()
	babelOnly := map[*meshNode][]string{b: {"eth2"}, c: {"eth1"}}
	for _, n := range nodes {
		setProtocol(t, n, nodeapi.MeshBoth, babelOnly[n]...)
	}
	am = waitMesh(ctx, t, a, "A reaches C with babeld over batman-adv", func(m nodeapi.Mesh) bool {
		return m.Protocol == nodeapi.MeshBoth && hasRouteOn(m, ca.IPv4, "bat0")
	})
	waitMesh(ctx, t, b, "B reaches C between clouds (babeld on eth2)", func(m nodeapi.Mesh) bool { return hasRouteOn(m, ca.IPv4, "eth2") })
	fig["both-switch-converge"] = time.Since(switched)
	t.Logf("both: the switch to A's route to C over bat0: %v (%s)", time.Since(switched).Round(time.Second), am.Summary)
	if !am.Joined || !hasCloud(am) {
		t.Errorf("A on both: joined %v, interfaces %+v: want joined, bat0", am.Joined, am.Interfaces)
	}
	a.reach(ctx, t, c, ca.IPv4)

	// A radio appears (the generic kernel's simulated one): byzd reads
	// it over nl80211, puts it in 802.11s mesh point mode with the
	// mesh's settings and meshes on it, in the batman-adv cloud here.
	a.console(ctx, t, "modprobe mac80211_hwsim radios=1 && echo hwsim-$((1+1))", "hwsim-2")
	plugged := time.Now()
	am = waitMesh(ctx, t, a, "A meshes on the radio", func(m nodeapi.Mesh) bool {
		for _, i := range m.Interfaces {
			if i.Kind == "wifi" && i.Mode == "mesh-point" && i.Meshing {
				return true
			}
		}
		return false
	})
	fig["radio-plugged-meshing"] = time.Since(plugged)
	for _, i := range am.Interfaces {
		t.Logf("A: %s %s %s meshing=%v: %s", i.Name, i.Kind, i.Mode, i.Meshing, i.Reason)
	}
	return fig
}

// cutUplink cuts C's uplink (QEMU's set_link): C withdraws its default
// route and A's goes, after the time it returns. Then it restores it and
// waits for C to share again.
func cutUplink(ctx context.Context, t testing.TB, a, c *meshNode) time.Duration {
	t.Helper()
	if out, err := c.vm.Monitor("set_link up off"); err != nil || out != "" {
		t.Fatalf("C: set_link up off: %q %v", out, err)
	}
	cut := time.Now()
	// C's API is out of reach now: its forwarded port is on that user
	// network. A tells.
	waitMesh(ctx, t, a, "A's mesh default route goes", func(m nodeapi.Mesh) bool { return m.Gateway.InUse == "" })
	took := time.Since(cut)
	t.Logf("C's uplink cut to A's default route gone: %v", took.Round(time.Second))
	if out, err := c.vm.Monitor("set_link up on"); err != nil || out != "" {
		t.Fatalf("C: set_link up on: %q %v", out, err)
	}
	waitMesh(ctx, t, c, "C shares its uplink again", func(m nodeapi.Mesh) bool { return m.Gateway.Sharing })
	return took
}

// loseAndHeal stops B: A loses C. B boots again without persistence (a
// new router id, the spec's protocol), is switched to proto when that is
// not "", and the mesh heals. It returns the times from B's stop to C
// gone from A's routes and from B's byzd serving (and switched) to A's
// route to C.
func loseAndHeal(ctx context.Context, t testing.TB, a, b, c *meshNode, caIPv4, proto string) (lost, healed time.Duration) {
	t.Helper()
	b.vm.Kill()
	gone := time.Now()
	waitMesh(ctx, t, a, "A loses C with B gone", func(m nodeapi.Mesh) bool { return !hasRoute(m, caIPv4) })
	lost = time.Since(gone)
	t.Logf("B stopped to C gone from A's routes: %v", lost.Round(time.Second))
	b.start(t)
	b.serve(ctx, t)
	if proto != "" {
		setProtocol(t, b, proto)
	}
	back := time.Now()
	am := waitMesh(ctx, t, a, "A reaches C again through the rebooted B", func(m nodeapi.Mesh) bool { return hasRoute(m, caIPv4) })
	healed = time.Since(back)
	t.Logf("B's byzd serving again to A reaching C: %v (%s)", healed.Round(time.Second), am.Summary)
	a.reach(ctx, t, c, caIPv4)
	return lost, healed
}

// setProtocol switches a node's mesh protocol through the API, with the
// interfaces kept out of the batman-adv cloud (both), keeping its other
// settings.
func setProtocol(t testing.TB, n *meshNode, proto string, babelOnly ...string) {
	t.Helper()
	var set nodeapi.MeshSettings
	if code, body := call(t, n.c, "GET", n.base+nodeapi.MeshSettingsPath, nil, n.auth, &set); code != http.StatusOK {
		t.Fatalf("%s: GET %s: %d %s", n.name, nodeapi.MeshSettingsPath, code, body)
	}
	set.Protocol, set.BabelOnly, set.KeepKey = proto, babelOnly, true
	body, _ := json.Marshal(set)
	if code, out := call(t, n.c, "PUT", n.base+nodeapi.MeshSettingsPath, strings.NewReader(string(body)), n.auth, nil); code != http.StatusOK {
		t.Fatalf("%s: PUT %s protocol %s: %d %s", n.name, nodeapi.MeshSettingsPath, proto, code, out)
	}
}

// hasCloud reports whether m lists batman-adv's soft interface, meshing.
func hasCloud(m nodeapi.Mesh) bool {
	for _, i := range m.Interfaces {
		if i.Name == "bat0" && i.Kind == "batman-adv" && i.Meshing {
			return true
		}
	}
	return false
}

// hasRouteOn is hasRoute through one interface.
func hasRouteOn(m nodeapi.Mesh, addr, iface string) bool {
	for _, r := range m.Routes {
		if r.Installed && r.Interface == iface && (r.Prefix == addr+"/32" || r.Prefix == addr+"/128") {
			return true
		}
	}
	return false
}

// reach asks, on n's console, the node to's byzd for its status through
// the mesh at addr, with byz and to's login token, pinned to to's
// certificate: the answer names to's certificate, so it came from to.
func (n *meshNode) reach(ctx context.Context, t testing.TB, to *meshNode, addr string) {
	t.Helper()
	token := strings.TrimPrefix(to.auth["Authorization"], "Bearer ")
	// tr makes the answer's fingerprint differ from the typed command's,
	// which the console echoes.
	n.console(ctx, t, fmt.Sprintf(`BYZ_TOKEN=%s byz node --url https://%s --fingerprint %s status --json >/tmp/st 2>&1; `+
		`tr -d ' ' </tmp/st | grep -o '"tls_fingerprint":"[^"]*' | tr : -; head -c 300 /tmp/st`, token, addr, to.fp),
		strings.ReplaceAll(to.fp, ":", "-"))
}

// start boots the node's VM (again, for a node that was stopped).
func (n *meshNode) start(t testing.TB) {
	n.vm = qemu.StartT(t, qemu.Config{Options: n.opts,
		SerialLog: filepath.Join(t.TempDir(), "serial-"+n.name+".log"), FailOn: []string{"Kernel panic"}})
}

// serve waits for byzd and logs in.
func (n *meshNode) serve(ctx context.Context, t testing.TB) {
	t.Helper()
	line, err := n.vm.Expect(ctx, "byzd: TLS certificate sha256 fingerprint")
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	n.fp = fingerprintLine.FindStringSubmatch(line)[1]
	waitHealth(ctx, t, n.vm, n.base, n.fp)
	n.c = pinnedClient(ctx, t, n.base, n.fp)
	n.auth = n.login(t, e2ePassword)
}

// console runs a command on the node's root shell (genericImages' serial
// console) and waits for want in its output.
func (n *meshNode) console(ctx context.Context, t testing.TB, cmd, want string) {
	t.Helper()
	if err := n.vm.Type(cmd + "; echo done-$((20+1))\n"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := n.vm.Expect(cctx, want); err != nil {
		t.Fatalf("%s: %s: no %q in the output: %v", n.name, cmd, want, err)
	}
	if _, err := n.vm.Expect(cctx, "done-21"); err != nil {
		t.Fatalf("%s: %s: %v", n.name, cmd, err)
	}
}

// mesh is GET /api/v1/mesh. A request that gets no answer is tried
// again, three times in all, and logged: a stall is a finding, three a
// failure.
func mesh(t testing.TB, n *meshNode) nodeapi.Mesh {
	t.Helper()
	var err error
	for try := 0; try < 3; try++ {
		var req *http.Request
		req, err = http.NewRequest("GET", n.base+nodeapi.MeshPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range n.auth {
			req.Header.Set(k, v)
		}
		var resp *http.Response
		resp, err = n.c.Do(req)
		if err != nil {
			t.Logf("%s: GET %s: %v (try %d)\n%s", n.name, nodeapi.MeshPath, err, try+1, strings.Join(n.vm.Tail(15), "\n"))
			continue
		}
		var m nodeapi.Mesh
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: GET %s: %s %s", n.name, nodeapi.MeshPath, resp.Status, b)
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: GET %s: %v in %s", n.name, nodeapi.MeshPath, err, b)
		}
		return m
	}
	t.Fatalf("%s: GET %s: %v", n.name, nodeapi.MeshPath, err)
	return nodeapi.Mesh{}
}

// waitMesh asks the node's mesh every 2 s until ok holds, failing with
// the last answer and the console's tail after 5 minutes.
func waitMesh(ctx context.Context, t testing.TB, n *meshNode, what string, ok func(nodeapi.Mesh) bool) nodeapi.Mesh {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	for {
		m := mesh(t, n)
		if ok(m) {
			t.Logf("%s: %s after %v", n.name, what, time.Since(start).Round(100*time.Millisecond))
			return m
		}
		select {
		case <-ctx.Done():
			j, _ := json.MarshalIndent(m, "", "  ")
			t.Fatalf("%s: not %s after %v: %s\n%s", n.name, what, time.Since(start).Round(time.Second), j, strings.Join(n.vm.Tail(40), "\n"))
		case <-time.After(2 * time.Second):
		}
	}
}

// hasRoute reports whether m has an installed route to the address addr.
func hasRoute(m nodeapi.Mesh, addr string) bool {
	for _, r := range m.Routes {
		if r.Installed && (r.Prefix == addr+"/32" || r.Prefix == addr+"/128") {
			return true
		}
	}
	return false
}
