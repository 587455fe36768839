package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

var fakeMesh = nodeapi.Mesh{Joined: true, Summary: "joined: 1 neighbour, 2 nodes reachable", Protocol: "babel", Engine: "running",
	Interfaces: []nodeapi.MeshInterface{{Name: "eth1", Kind: "wired", Mode: "wired", Meshing: true},
		{Name: "wlan0", Kind: "wifi", Mode: "none", Reason: "the card offers neither mesh point nor ad-hoc"}},
	Addresses: nodeapi.MeshAddresses{IPv4: "10.23.45.1", IPv6: "fd12:3456:789a:172d::1", ClientIPv4: "10.23.45.0/24",
		ClientIPv6: "fd12:3456:789a:172d::/64", Claimed: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), Rolls: 1},
	Neighbours: []nodeapi.MeshNeighbour{{Address: "fe80::1", Interface: "eth1", Cost: 96, Reach: "ffff"}},
	Routes: []nodeapi.MeshRoute{{Prefix: "10.1.2.0/24", Via: "fe80::1", Interface: "eth1", Metric: 96, Installed: true},
		{Prefix: "10.1.3.0/24", Via: "fe80::1", Interface: "eth1", Metric: 192, Installed: false}},
	Gateway: nodeapi.MeshGateway{Share: "auto", Uplink: "eth0", Check: "no answer from 9.9.9.9:53", InUse: "fe80::1", InUseMetric: 96}}

// meshNode is byzd's mesh routes: the status above and settings that a
// PUT replaces (the key kept aside, as byzd does).
type meshNode struct {
	mu   sync.Mutex
	set  nodeapi.MeshSettings
	key  string
	puts int
}

func (m *meshNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch r.Method + " " + r.URL.Path {
	case "GET " + nodeapi.MeshPath:
		reply(w, 200, fakeMesh)
	case "GET " + nodeapi.MeshSettingsPath:
		s := m.set
		s.Keyed = m.key != ""
		reply(w, 200, s)
	case "PUT " + nodeapi.MeshSettingsPath:
		var s nodeapi.MeshSettings
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			reply(w, 400, nodeapi.ErrorBody{Error: err.Error()})
			return
		}
		if s.Keyed {
			reply(w, 400, nodeapi.ErrorBody{Error: "keyed is not for a PUT"})
			return
		}
		if !s.KeepKey {
			m.key = s.Key
		}
		s.Key, s.KeepKey = "", false
		m.set, m.puts = s, m.puts+1
		s.Keyed = m.key != ""
		reply(w, 200, s)
	default:
		reply(w, 404, nodeapi.ErrorBody{Error: "no route"})
	}
}

func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "byz")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "byzd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

// TestNodeMesh: byz node mesh prints the one line first, then each
// section; --json is byzd's answer as is.
func TestNodeMesh(t *testing.T) {
	sock := serveUnix(t, &meshNode{set: meshcfg.Defaults()})
	r := runByz(t, nil, "node", "--socket", sock, "mesh")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if first, _, _ := strings.Cut(r.stdout, "\n"); first != "This node has joined a mesh: 1 neighbour heard, 2 routes to other nodes." {
		t.Errorf("first line %q", first)
	}
	for _, want := range []string{
		"Protocol:  babel\nEngine:    running\nMesh key:  none: an open mesh\n",
		"  NAME   KIND   MODE   MESHING  WHY\n  eth1   wired  wired  yes      -\n  wlan0  wifi   none   no       the card offers neither mesh point nor ad-hoc\n",
		"  mesh IPv4:     10.23.45.1\n",
		"  clients IPv6:  fd12:3456:789a:172d::/64\n",
		"  taken:         2026-12-01 08:00 UTC (changed 1 time after a clash)\n",
		"  ADDRESS  INTERFACE  COST  REACH\n  fe80::1  eth1       96    ffff\n",
		"  10.1.3.0/24  fe80::1  eth1       192     no\n",
		"This node does not share an Internet connection with the mesh: it has an uplink (eth0), but the Internet check fails: no answer from 9.9.9.9:53.",
		"It reaches the Internet through the mesh gateway fe80::1 (metric 96).",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in\n%s", want, r.stdout)
		}
	}
	r = runByz(t, nil, "node", "--socket", sock, "--json", "mesh")
	var got nodeapi.Mesh
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || !reflect.DeepEqual(got, fakeMesh) {
		t.Errorf("--json: exit %d\n%s", r.code, r.stdout)
	}
}

func TestMeshLine(t *testing.T) {
	for _, tt := range []struct {
		m    nodeapi.Mesh
		want string
	}{
		{nodeapi.Mesh{Summary: "alone: the mesh manager is not running"}, "This node has not joined a mesh: the mesh manager is not running."},
		{nodeapi.Mesh{Summary: "alone: no neighbour heard on eth1 for 40 s."}, "This node has not joined a mesh: no neighbour heard on eth1 for 40 s."},
		{nodeapi.Mesh{}, "This node has not joined a mesh: it hears no other node."},
		{nodeapi.Mesh{Joined: true, Neighbours: make([]nodeapi.MeshNeighbour, 2), Routes: make([]nodeapi.MeshRoute, 1)},
			"This node has joined a mesh: 2 neighbours heard, 1 route to other nodes."},
	} {
		if got := meshLine(tt.m); got != tt.want {
			t.Errorf("meshLine(%+v) = %q, want %q", tt.m, got, tt.want)
		}
	}
	var off strings.Builder
	writeMesh(&off, nodeapi.Mesh{Summary: "alone: the mesh manager is not running", Protocol: "babel", Engine: "off", Gateway: nodeapi.MeshGateway{Share: "auto"}})
	if !strings.HasPrefix(off.String(), "This node has not joined a mesh: the mesh manager is not running.\n") ||
		!strings.Contains(off.String(), "Internet:\n  Not shared: the mesh manager is not running.\n") || strings.Contains(off.String(), "no uplink") {
		t.Errorf("without a manager:\n%s", off.String())
	}
	for _, tt := range []struct {
		g    nodeapi.MeshGateway
		want string
	}{
		{nodeapi.MeshGateway{Share: "on", Uplink: "eth0", Sharing: true}, "This node shares its Internet connection (eth0) with the mesh."},
		{nodeapi.MeshGateway{Share: "off", Uplink: "eth0"}, "sharing is off"},
		{nodeapi.MeshGateway{Share: "auto"}, "it has no uplink"},
		{nodeapi.MeshGateway{Share: "auto", Uplink: "eth0"}, "the Internet check has not passed yet"},
	} {
		if got := strings.Join(gatewayLines(tt.g), "\n"); !strings.Contains(got, tt.want) {
			t.Errorf("gatewayLines(%+v) = %q, want %q", tt.g, got, tt.want)
		}
	}
}

// TestNodeMeshSet: only the flags given change; the key comes from a
// file or standard input and is never printed; --open removes it; bad
// values and contradicting flags are usage errors before any PUT.
func TestNodeMeshSet(t *testing.T) {
	node := &meshNode{set: meshcfg.Defaults()}
	sock := serveUnix(t, node)
	set := func(stdin string, args ...string) nodeResult {
		t.Helper()
		var in *strings.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		if in == nil {
			return runByz(t, nil, append([]string{"node", "--socket", sock, "mesh", "set"}, args...)...)
		}
		return runByz(t, in, append([]string{"node", "--socket", sock, "mesh", "set"}, args...)...)
	}
	r := set("", "--channel", "11", "--interfaces", "eth1,wlan0")
	if r.code != 0 || !strings.Contains(r.stdout, "Channel:     11\n") || !strings.Contains(r.stdout, "Interfaces:  eth1,wlan0\n") {
		t.Fatalf("set: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if node.set.SSID != meshcfg.DefaultSSID || node.set.Protocol != "babel" || node.set.Channel != 11 {
		t.Errorf("saved %+v: want the other settings kept", node.set)
	}

	r = set("", "--protocol", "both", "--babel-only", "eth1")
	if r.code != 0 || !strings.Contains(r.stdout, "Babel only:  eth1 (kept out") || !slices.Equal(node.set.BabelOnly, []string{"eth1"}) {
		t.Fatalf("set --babel-only: exit %d, saved %+v\n%s%s", r.code, node.set, r.stdout, r.stderr)
	}
	if r = set("", "--babel-only", "eth2"); r.code != 2 || !strings.Contains(r.stderr, "babel_only[0]: ") {
		t.Errorf("--babel-only a port that does not mesh: exit %d\n%s", r.code, r.stderr)
	}
	r = set("a long mesh key\n", "--key-file", "-")
	if r.code != 0 || node.key != "a long mesh key" || strings.Contains(r.stdout+r.stderr, "a long mesh key") || !strings.Contains(r.stdout, "Mesh key:    set") {
		t.Fatalf("key from stdin: exit %d, key %q\n%s%s", r.code, node.key, r.stdout, r.stderr)
	}
	r = set("", "--share", "off")
	if r.code != 0 || node.key != "a long mesh key" || node.set.Share != "off" {
		t.Errorf("another change lost the key: exit %d, key %q", r.code, node.key)
	}
	keyFile := filepath.Join(t.TempDir(), "mesh.key")
	os.WriteFile(keyFile, []byte("another long key\r\n"), 0o600)
	if r := set("", "--key-file", keyFile); r.code != 0 || node.key != "another long key" {
		t.Errorf("key file: exit %d, key %q: %s", r.code, node.key, r.stderr)
	}
	if r := set("", "--open"); r.code != 0 || node.key != "" || !strings.Contains(r.stdout, "none (an open mesh)") {
		t.Errorf("--open: exit %d, key %q", r.code, node.key)
	}
	if r := set("", "--all-interfaces", "--find-uplink"); r.code != 0 || len(node.set.Interfaces) != 0 || node.set.Uplink != "" {
		t.Errorf("--all-interfaces: exit %d, %+v", r.code, node.set)
	}

	puts := node.puts
	for _, tc := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"", nil, 2, "nothing to change"},
		{"", []string{"--channel", "14"}, 2, "channel: 14: want 1 to 13"},
		{"", []string{"--ssid", strings.Repeat("x", 33)}, 2, "ssid: "},
		{"", []string{"--protocol", "olsr"}, 2, `protocol: "olsr"`},
		{"", []string{"--share", "yes"}, 2, "share: "},
		{"", []string{"--interfaces", "eth/1"}, 2, "interfaces[0]: "},
		{"", []string{"--interfaces", "eth1", "--all-interfaces"}, 2, "--interfaces and --all-interfaces: give one"},
		{"", []string{"--key-file", "-", "--open"}, 2, "--key-file and --open"},
		{"short\n", []string{"--key-file", "-"}, 1, "5 bytes: at least 8"},
		{"\n", []string{"--key-file", "-"}, 1, "is empty"},
		{"", []string{"--key-file", "/nonexistent/key"}, 1, "the key file: open /nonexistent/key"},
		{"", []string{"--channel", "six"}, 2, "--channel"},
	} {
		r := set(tc.stdin, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("set %v: exit %d, stderr %q; want exit %d naming %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if node.puts != puts {
		t.Errorf("refused settings were sent (%d PUTs)", node.puts-puts)
	}
}
