package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

// fakeMesh is a mesh manager that reports a fixed status and records
// what it was told to apply.
type fakeMesh struct {
	mu      sync.Mutex
	status  nodeapi.Mesh
	applied []nodeapi.MeshSettings
	fail    error
}

func (f *fakeMesh) Status() nodeapi.Mesh {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeMesh) Apply(s nodeapi.MeshSettings) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, s)
	return f.fail
}

func (f *fakeMesh) last() nodeapi.MeshSettings {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) == 0 {
		return nodeapi.MeshSettings{}
	}
	return f.applied[len(f.applied)-1]
}

var joinedMesh = nodeapi.Mesh{Joined: true, Summary: "joined: 2 neighbours, 3 nodes reachable", Protocol: nodeapi.MeshBabel, Engine: "running",
	Interfaces: []nodeapi.MeshInterface{{Name: "eth1", Kind: "wired", Mode: "wired", Meshing: true},
		{Name: "wlan0", Kind: "wifi", Mode: "none", Reason: "the card offers neither mesh point nor ad-hoc"}},
	Addresses:  nodeapi.MeshAddresses{IPv4: "10.23.45.1", IPv6: "fd12:3456:789a:172d::1", ClientIPv4: "10.23.45.0/24", ClientIPv6: "fd12:3456:789a:172d::/64"},
	Neighbours: []nodeapi.MeshNeighbour{{Address: "fe80::1", Interface: "eth1", Cost: 96, Reach: "ffff"}, {Address: "fe80::2", Interface: "eth1", Cost: 256}},
	Routes: []nodeapi.MeshRoute{{Prefix: "10.1.2.0/24", Via: "fe80::1", Interface: "eth1", Metric: 96, Installed: true},
		{Prefix: "10.1.3.0/24", Via: "fe80::1", Interface: "eth1", Metric: 192, Installed: true}, {Prefix: "0.0.0.0/0", Via: "fe80::2", Interface: "eth1", Metric: 256, Installed: true}},
	Gateway: nodeapi.MeshGateway{Share: nodeapi.ShareAuto, Uplink: "eth0", Sharing: false, Check: "no answer from 9.9.9.9:53", InUse: "fe80::2", InUseMetric: 256}}

func jsonBody(v any) (*bytes.Reader, map[string]string) {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b), map[string]string{"Content-Type": "application/json"}
}

// TestMeshAPI: GET /api/v1/mesh is the manager's status; the settings
// are the image's until a PUT, which is checked field by field, saved
// (0600: the key) so a restart keeps them, and applied at once; the key
// is never returned, and keep_key keeps it. /healthz says joined or
// alone.
func TestMeshAPI(t *testing.T) {
	tw := newTestWeb(t)
	fm := &fakeMesh{status: joinedMesh}
	tw.Mesh = fm
	state := filepath.Dir(tw.MeshSettings.path)
	c := tw.srv.Client()
	auth := map[string]string{"Authorization": "Bearer " + tw.apiToken(t, "mesh")}
	with := func(h map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range auth {
			out[k] = v
		}
		for k, v := range h {
			out[k] = v
		}
		return out
	}

	r := tw.do(t, c, "GET", nodeapi.MeshPath, nil, auth)
	var st nodeapi.Mesh
	if r.code != 200 || json.Unmarshal([]byte(r.body), &st) != nil || !reflect.DeepEqual(st, joinedMesh) {
		t.Fatalf("GET mesh = %d %s, want the manager's status", r.code, r.body)
	}
	if r := tw.do(t, c, "GET", "/healthz", nil, nil); r.body != `{"status":"ok","mesh":"joined"}`+"\n" {
		t.Errorf("healthz = %q, want joined", r.body)
	}

	r = tw.do(t, c, "GET", nodeapi.MeshSettingsPath, nil, auth)
	var got nodeapi.MeshSettings
	if r.code != 200 || json.Unmarshal([]byte(r.body), &got) != nil || !reflect.DeepEqual(got, meshcfg.Defaults()) {
		t.Fatalf("GET mesh settings = %d %s, want the defaults", r.code, r.body)
	}

	const key = "a long mesh key"
	put := nodeapi.MeshSettings{Protocol: nodeapi.MeshBoth, SSID: "town-mesh", Channel: 11, Interfaces: []string{"eth1", "wlan0"},
		Share: nodeapi.ShareOff, Uplink: "eth0", Key: key}
	body, hdr := jsonBody(put)
	r = tw.do(t, c, "PUT", nodeapi.MeshSettingsPath, body, with(hdr))
	if r.code != 200 || strings.Contains(r.body, key) {
		t.Fatalf("PUT = %d %s, want 200 without the key", r.code, r.body)
	}
	json.Unmarshal([]byte(r.body), &got)
	want := put
	want.Key, want.Keyed = "", true
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PUT answered %+v, want %+v", got, want)
	}
	if a := fm.last(); a.Key != key || a.SSID != "town-mesh" || a.KeepKey || a.Keyed {
		t.Errorf("applied %+v, want the settings with the key", a)
	}
	if r := tw.do(t, c, "GET", nodeapi.MeshSettingsPath, nil, auth); strings.Contains(r.body, key) || !strings.Contains(r.body, `"keyed":true`) {
		t.Errorf("GET after PUT = %s: want keyed and no key", r.body)
	}
	fi, err := os.Stat(filepath.Join(state, "mesh.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mesh.json: %v, mode %v; want 0600", err, fi.Mode())
	}
	// A restart (persistence kept the state folder) has the same settings.
	if again := OpenMeshSettings(state, meshcfg.Defaults(), nil).Get(); again.Key != key || again.Channel != 11 || !reflect.DeepEqual(again.Interfaces, put.Interfaces) {
		t.Errorf("after a restart: %+v", again)
	}

	// keep_key keeps the key; a new channel is applied.
	keep := put
	keep.Key, keep.KeepKey, keep.Channel = "", true, 36
	body, hdr = jsonBody(keep)
	if r := tw.do(t, c, "PUT", nodeapi.MeshSettingsPath, body, with(hdr)); r.code != 200 {
		t.Fatalf("PUT keep_key = %d %s", r.code, r.body)
	}
	if a := fm.last(); a.Key != key || a.Channel != 36 {
		t.Errorf("keep_key applied %+v, want the old key and channel 36", a)
	}
	// Neither key nor keep_key: an open mesh.
	open := keep
	open.KeepKey = false
	body, hdr = jsonBody(open)
	if r := tw.do(t, c, "PUT", nodeapi.MeshSettingsPath, body, with(hdr)); r.code != 200 || !strings.Contains(r.body, `"protocol"`) || strings.Contains(r.body, "keyed") {
		t.Fatalf("PUT open = %d %s", r.code, r.body)
	}
	if a := fm.last(); a.Key != "" {
		t.Errorf("open mesh applied key %q", a.Key)
	}

	before := len(fm.applied)
	for _, tc := range []struct {
		name, body, field string
	}{
		{"channel", `{"protocol":"babel","ssid":"x","channel":14,"share":"auto"}`, "channel: 14"},
		{"protocol", `{"protocol":"olsr","ssid":"x","channel":6,"share":"auto"}`, `protocol: \"olsr\"`},
		{"ssid", `{"protocol":"babel","ssid":"` + strings.Repeat("s", 33) + `","channel":6,"share":"auto"}`, "ssid: "},
		{"share", `{"protocol":"babel","ssid":"x","channel":6,"share":"always"}`, `share: \"always\"`},
		{"interface", `{"protocol":"babel","ssid":"x","channel":6,"share":"auto","interfaces":["eth1","../x"]}`, "interfaces[1]: "},
		{"uplink", `{"protocol":"babel","ssid":"x","channel":6,"share":"auto","uplink":"eth0 eth1"}`, "uplink: "},
		{"key", `{"protocol":"babel","ssid":"x","channel":6,"share":"auto","key":"short"}`, "key: 5 bytes"},
		{"key and keep_key", `{"protocol":"babel","ssid":"x","channel":6,"share":"auto","key":"long enough key","keep_key":true}`, "keep_key: "},
		{"missing fields", `{}`, "protocol: "},
		{"unknown field", `{"protocol":"babel","ssid":"x","channel":6,"share":"auto","txpower":30}`, "unknown field"},
		{"channel as text", `{"protocol":"babel","ssid":"x","channel":"6","share":"auto"}`, "channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tw.do(t, c, "PUT", nodeapi.MeshSettingsPath, strings.NewReader(tc.body), with(map[string]string{"Content-Type": "application/json"}))
			if r.code != http.StatusBadRequest || !strings.Contains(r.body, tc.field) {
				t.Errorf("PUT %s = %d %s, want 400 naming %q", tc.body, r.code, r.body, tc.field)
			}
		})
	}
	if len(fm.applied) != before {
		t.Errorf("refused settings were applied: %+v", fm.applied[before:])
	}
	if got := OpenMeshSettings(state, meshcfg.Defaults(), nil).Get(); got.Channel != 36 || got.Key != "" {
		t.Errorf("refused settings changed the file: %+v", got)
	}

	// The manager's failure comes after the save: 500, saying so.
	fm.fail = errors.New("wlan0: channel 36 needs radar detection")
	body, hdr = jsonBody(put)
	if r := tw.do(t, c, "PUT", nodeapi.MeshSettingsPath, body, with(hdr)); r.code != 500 || !strings.Contains(r.body, "saved, but the mesh manager did not apply them: wlan0") {
		t.Errorf("PUT with a failing manager = %d %s", r.code, r.body)
	}

	// No manager: the status says so, the node is alone, settings still save.
	tw.Mesh = nil
	r = tw.do(t, c, "GET", nodeapi.MeshPath, nil, auth)
	if r.code != 200 || !strings.Contains(r.body, `"engine":"off"`) || !strings.Contains(r.body, "not running") || !strings.Contains(r.body, `"neighbours":[]`) {
		t.Errorf("GET mesh without a manager = %d %s", r.code, r.body)
	}
	if r := tw.do(t, c, "GET", "/healthz", nil, nil); r.body != `{"status":"ok","mesh":"alone"}`+"\n" {
		t.Errorf("healthz without a manager = %q", r.body)
	}
}

// TestMeshSocket: byz on the node reaches the mesh routes over the unix
// socket without a login.
func TestMeshSocket(t *testing.T) {
	tw := newTestWeb(t)
	tw.Mesh = &fakeMesh{status: joinedMesh}
	h, err := tw.LocalHandler()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", nodeapi.MeshPath, nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"joined":true`) {
		t.Errorf("socket GET mesh = %d %s", rec.Code, rec.Body)
	}
	b, _ := json.Marshal(nodeapi.MeshSettings{Protocol: "babel", SSID: "s", Channel: 1, Share: "on", KeepKey: true})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", nodeapi.MeshSettingsPath, bytes.NewReader(b)))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"share":"on"`) {
		t.Errorf("socket PUT mesh settings = %d %s", rec.Code, rec.Body)
	}
}

// TestOpenMeshSettingsHostile: mesh.json is read as settings.json is: a
// value that is not valid falls back to the image's, field by field; a
// file that is not a small regular JSON file of the settings' fields is
// not used; each reason is logged.
func TestOpenMeshSettingsHostile(t *testing.T) {
	def := meshcfg.Defaults()
	def.SSID = "from-the-image"
	good := `{"protocol":"batman-adv","ssid":"saved","channel":11,"share":"off","key":"a long mesh key"}`
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		want func(*nodeapi.MeshSettings) // from def
		log  string
	}{
		{"none", func(*testing.T, string) {}, func(*nodeapi.MeshSettings) {}, ""},
		{"valid", file(good), func(s *nodeapi.MeshSettings) {
			s.Protocol, s.SSID, s.Channel, s.Share, s.Key = "batman-adv", "saved", 11, "off", "a long mesh key"
		}, ""},
		{"a bad channel", file(`{"protocol":"babel","ssid":"saved","channel":15,"share":"auto"}`), func(s *nodeapi.MeshSettings) { s.SSID = "saved" }, "channel not used: 15"},
		{"a newline in the SSID", file(`{"protocol":"babel","ssid":"a\nbyzd: forged","channel":1,"share":"auto"}`), func(s *nodeapi.MeshSettings) { s.Channel = 1 }, "ssid not used"},
		{"a bad key", file(`{"protocol":"babel","ssid":"x","channel":1,"share":"auto","key":"short"}`), func(s *nodeapi.MeshSettings) { s.SSID, s.Channel = "x", 1 }, "the mesh is OPEN"},
		{"bad interfaces", file(`{"protocol":"babel","ssid":"x","channel":1,"share":"auto","interfaces":["a/b"]}`), func(s *nodeapi.MeshSettings) { s.SSID, s.Channel = "x", 1 }, "interfaces[0] not used"},
		{"an unknown field", file(`{"protocol":"babel","ssid":"x","channel":1,"share":"auto","admin":true}`), func(*nodeapi.MeshSettings) {}, "unknown field"},
		{"a string channel", file(`{"channel":"6"}`), func(*nodeapi.MeshSettings) {}, "not used"},
		{"not JSON", file(`{"ssid":`), func(*nodeapi.MeshSettings) {}, "not used"},
		{"too large", file(strings.Repeat(" ", 1<<20) + good), func(*nodeapi.MeshSettings) {}, "larger than 64 KiB"},
		{"a symlink", func(t *testing.T, p string) {
			real := filepath.Join(t.TempDir(), "real.json")
			os.WriteFile(real, []byte(good), 0o600)
			os.Symlink(real, p)
		}, func(*nodeapi.MeshSettings) {}, "symbolic link"},
		{"a folder", func(t *testing.T, p string) { os.Mkdir(p, 0o700) }, func(*nodeapi.MeshSettings) {}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.make(t, filepath.Join(dir, "mesh.json"))
			var log bytes.Buffer
			got := OpenMeshSettings(dir, def, slog.New(slog.NewTextHandler(&log, nil))).Get()
			want := def
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if tc.log == "" && log.Len() != 0 || !strings.Contains(log.String(), tc.log) {
				t.Errorf("log %q, want %q", log.String(), tc.log)
			}
			if strings.Contains(log.String(), "a long mesh key") {
				t.Errorf("the log shows the key: %s", log.String())
			}
		})
	}
}

// TestMeshPage: the Mesh page shows the one line, the neighbours, the
// routes and the gateway in plain words, and its form changes the
// settings with the CSRF token; a bad value is refused naming it. The
// status page shows the line too.
func TestMeshPage(t *testing.T) {
	tw := newTestWeb(t)
	fm := &fakeMesh{status: joinedMesh}
	tw.Mesh = fm
	c, csrf := tw.claim(t, "long enough pass")
	r := tw.do(t, c, "GET", "/mesh", nil, nil)
	for _, want := range []string{"This node has joined a mesh: 2 neighbours heard, 3 routes to other nodes.", "fe80::1</code> · on eth1 · cost 96", "10.1.3.0/24",
		"10.23.45.0/24", "does not share an Internet connection", "the Internet check fails: no answer from 9.9.9.9:53",
		"through the mesh, by fe80::2 (metric 256)", "anyone&#39;s router can join", `href="/mesh" aria-current="page"`,
		"the card offers neither mesh point nor ad-hoc"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("GET /mesh: no %q", want)
		}
	}
	if r := tw.do(t, c, "GET", "/", nil, nil); !strings.Contains(r.body, "This node has joined a mesh") {
		t.Error("the status page does not say the node joined a mesh")
	}

	body, hdr := form("csrf", csrf, "protocol", "babel", "ssid", "river", "channel", "1", "interfaces", "eth1, eth2", "share", "on",
		"uplink", "", "key_action", "set", "key", "a long mesh key")
	if r := tw.do(t, c, "POST", "/mesh", body, hdr); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/mesh?done=mesh.settings.done" {
		t.Fatalf("POST /mesh = %d %s", r.code, r.hdr.Get("Location"))
	}
	if a := fm.last(); a.SSID != "river" || a.Channel != 1 || !reflect.DeepEqual(a.Interfaces, []string{"eth1", "eth2"}) || a.Key != "a long mesh key" || a.Share != "on" {
		t.Errorf("applied %+v", a)
	}
	if r := tw.do(t, c, "GET", "/mesh", nil, nil); strings.Contains(r.body, "a long mesh key") || !strings.Contains(r.body, "Keep the current key") {
		t.Error("the page shows the key, or does not offer to keep it")
	}
	// A key typed with the choice left at keep is the new key.
	body, hdr = form("csrf", csrf, "protocol", "babel", "ssid", "river", "channel", "1", "share", "on", "key_action", "keep", "key", "typed but not chosen")
	tw.do(t, c, "POST", "/mesh", body, hdr)
	if a := fm.last(); a.Key != "typed but not chosen" {
		t.Errorf("a typed key with keep: applied key %q", a.Key)
	}
	body, hdr = form("csrf", csrf, "protocol", "babel", "ssid", "river", "channel", "1", "share", "on", "key_action", "set", "key", "a long mesh key")
	tw.do(t, c, "POST", "/mesh", body, hdr)
	// keep (the default) keeps the key.
	body, hdr = form("csrf", csrf, "protocol", "babel", "ssid", "river", "channel", "6", "share", "on", "key_action", "keep")
	tw.do(t, c, "POST", "/mesh", body, hdr)
	if a := fm.last(); a.Key != "a long mesh key" || a.Channel != 6 {
		t.Errorf("keep applied %+v", a)
	}
	for _, tc := range []struct{ kv []string }{
		{[]string{"channel", "14"}},
		{[]string{"channel", "six"}},
		{[]string{"ssid", strings.Repeat("s", 33)}},
		{[]string{"key_action", "set", "key", ""}},
		{[]string{"key_action", "reveal"}},
		{[]string{"key_action", "open", "key", "a long mesh key"}},
		{[]string{"key", "short"}},
	} {
		kv := map[string]string{"csrf": csrf, "protocol": "babel", "ssid": "river", "channel": "6", "share": "on"}
		for i := 0; i < len(tc.kv); i += 2 {
			kv[tc.kv[i]] = tc.kv[i+1]
		}
		var flat []string
		for k, v := range kv {
			flat = append(flat, k, v)
		}
		body, hdr := form(flat...)
		if r := tw.do(t, c, "POST", "/mesh", body, hdr); r.code != http.StatusBadRequest || !strings.Contains(r.body, "The mesh settings were not changed") {
			t.Errorf("POST %v = %d, want 400 with the reason", tc.kv, r.code)
		}
	}
	// Without the CSRF token: refused.
	body, hdr = form("protocol", "babel", "ssid", "evil", "channel", "6", "share", "on")
	if r := tw.do(t, c, "POST", "/mesh", body, hdr); r.code != http.StatusForbidden {
		t.Errorf("POST /mesh without CSRF = %d", r.code)
	}
	if a := fm.last(); a.SSID == "evil" {
		t.Error("a form without the CSRF token changed the SSID")
	}

	// Spanish and French pages render the line in their language.
	for lang, want := range map[string]string{"es": "Este nodo se ha unido a una malla", "fr": "Ce nœud a rejoint un maillage"} {
		if r := tw.do(t, c, "GET", "/mesh", nil, map[string]string{"Accept-Language": lang}); !strings.Contains(r.body, want) {
			t.Errorf("%s: no %q", lang, want)
		}
	}
	tw.Mesh = nil
	if r := tw.do(t, c, "GET", "/mesh", nil, nil); !strings.Contains(r.body, "This node has not joined a mesh: the mesh manager is not running.") ||
		!strings.Contains(r.body, "Not shared: the mesh manager is not running.") || strings.Contains(r.body, "no uplink found") {
		t.Error("without a manager the page does not say it is not running")
	}
}

// TestRunMeshDefaults: Run takes the mesh's defaults from the image's
// file (meshcfg.ImageFile, which the build writes from the spec), hands
// them to the manager at the start, and later a PUT's settings, which a
// restart keeps over the image's.
func TestRunMeshDefaults(t *testing.T) {
	state, root := t.TempDir(), t.TempDir()
	im := meshcfg.Image{Settings: nodeapi.MeshSettings{Protocol: nodeapi.MeshBatman, SSID: "from-the-spec", Channel: 1, Share: nodeapi.ShareOff}}
	b, err := im.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "etc/byzantium"), 0o755)
	os.WriteFile(filepath.Join(root, meshcfg.ImageFile), b, 0o644)
	fm := &fakeMesh{status: joinedMesh}
	d := startDaemon(t, state, root, func(c *Config) { c.Mesh = fm })
	if got := fm.last(); !reflect.DeepEqual(got, im.Settings) {
		t.Errorf("applied at the start %+v, want the image's %+v", got, im.Settings)
	}
	c := nodeapi.LocalClient(filepath.Join(state, "byzd.sock"))
	ctx := t.Context()
	if got, err := c.MeshSettings(ctx); err != nil || !reflect.DeepEqual(got, im.Settings) {
		t.Errorf("MeshSettings = %+v, %v; want the image's", got, err)
	}
	if m, err := c.Mesh(ctx); err != nil || !m.Joined {
		t.Errorf("Mesh = %+v, %v", m, err)
	}
	next := im.Settings
	next.SSID, next.Key = "changed", "a long mesh key"
	if got, err := c.SetMeshSettings(ctx, next); err != nil || got.SSID != "changed" || !got.Keyed || got.Key != "" {
		t.Fatalf("SetMeshSettings = %+v, %v", got, err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	fm2 := &fakeMesh{}
	startDaemon(t, state, root, func(c *Config) { c.Mesh = fm2 })
	if got := fm2.last(); got.SSID != "changed" || got.Key != "a long mesh key" {
		t.Errorf("after a restart, applied %+v: want the saved settings with their key", got)
	}
}
