package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/browser"
	"byzantium/modules/manifest"
	"byzantium/overlays"
	"byzantium/runtime/auth"
	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/service"
)

// panelLayout are the rules every page of the panel holds to at phone and
// desktop width (ci/e2e's TestPanelBrowser checks the same on a node):
// nothing reaches past the screen's right edge, no box holding a value
// is narrower than 8 characters, and a page is no taller than 70 px (three
// lines of body text) per line of its content. At 360 px the help
// paragraphs wrap to three or four lines each and cards, fields and buttons
// add their margins: the pages measure 31 to 57 px a line. When the System
// card wrapped each value one character per line, the status page measured
// 118 px a line here (5,177 px), and 127 px a line on a node (5,347 px: the
// 10,694 px of the phone's screenshot, taken at twice the scale).
var panelLayout = browser.LayoutRules{MinChars: 8, MaxHeightPerLine: 70}

// layoutNode makes a panel with what a busy node shows: a long node
// name, the fingerprint, a persistence store, a clone disk, modules with
// services and dependencies, and log lines longer than a phone is wide.
func layoutNode(t *testing.T) (*testWeb, *httptest.Server) {
	t.Helper()
	state, root := t.TempDir(), t.TempDir()
	st, err := auth.Open(state + "/auth")
	if err != nil {
		t.Fatal(err)
	}
	st.SetHashParams(auth.HashParams{Time: 1, Memory: 64, Threads: 1})
	settings := OpenSettings(state, nodeapi.SettingsValues{NodeName: "byzantiumlibraryroofnorthtowerthirdfloor", Language: "en"}, nil)
	// A USB stick to clone to.
	writeFile(t, root+"/sys/block/sdb/size", "61341696\n")
	writeFile(t, root+"/sys/block/sdb/removable", "1\n")
	writeFile(t, root+"/sys/block/sdb/device/model", "Ultra Fit        \n")
	writeFile(t, root+"/sys/block/sdb/device/serial", "4C530001231109115093\n")
	writeFile(t, root+"/"+overlays.PersistenceJSON, `{"mode":"savedat","store":"/run/byz/media/byzantium/changes/save.dat","encrypted":true}`)
	// Modules stacked at boot, as byz-init leaves them.
	var boot []overlays.Layer
	for i, m := range []manifest.Manifest{
		{Name: "busybox", Version: "1:1.35.0-4+deb12u1+b1"},
		{Name: "runtime", Version: "0.1", Depends: []string{"busybox"}},
		{Name: "ngircd", Version: "26.1-1+deb12u1", Depends: []string{"busybox"}, Services: []manifest.Service{{
			Name: "ngircd", Description: "IRC chat server for the people on the mesh", Command: []string{"/usr/sbin/ngircd", "--nodaemon"},
			User: "ircd", Ports: []string{"6667/tcp", "6697/tcp"}}}},
		{Name: "etherpad-lite-with-a-long-module-name", Version: "1.8.14+ds-1~bpo12+1", Depends: []string{"busybox", "ngircd"},
			Services: []manifest.Service{{Name: "etherpad", Description: "Collaborative documents, edited by everyone on the mesh at once",
				Command: []string{"/usr/bin/node"}, Ports: []string{"9001/tcp"}}}},
	} {
		folder := "modules"
		if len(m.Services) > 0 {
			folder = "optional"
		}
		layer := fmt.Sprintf("run/byz/layers/%03d-%s", i+1, m.Name)
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, layer, manifest.Path(m.Name)), string(b))
		boot = append(boot, overlays.Layer{Name: m.Name, File: fmt.Sprintf("byzantium/%s/%03d-%s.xzm", folder, i+1, m.Name), Layer: "/" + layer})
	}
	mj, _ := json.Marshal(boot)
	writeFile(t, root+"/run/byzantium/modules.json", string(mj))

	log := slog.New(slog.DiscardHandler)
	ring := NewLogRing(50)
	mgr := &service.Manager{Root: root, StateDir: filepath.Join(state, "services"), Self: "/nonexistent/byzd", Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	byz, _, _ := fakeByz(t, true)
	w := &Web{Auth: st, Log: ring.Tee(log), Ring: ring, Root: root, Version: "0.1-42-g8d9a30a", Settings: settings,
		Local: &Local{Root: root, Log: log}, Services: mgr, Cloner: &Cloner{Byz: byz, Log: log},
		Mesh: &fakeMesh{status: layoutMesh}, MeshSettings: OpenMeshSettings(state, meshcfg.Defaults(), nil),
		NodeID:      "9f86d081884c7d65",
		Fingerprint: "4D:43:9A:1F:0C:77:E2:5B:A8:31:6F:D0:42:9E:BB:13:C5:08:7A:E4:61:2D:F9:30:5C:8B:17:A2:EE:46:D3:90"}
	w.Log.Warn("failed panel login", "from", "fe80::5054:ff:fe12:3456%eth0")
	w.Log.Info("persistence: saved 1234 files to /run/byz/media/byzantium/changes/save.dat in 2.3s (changes=EXIT:/dev/disk/by-uuid/0123-4567/byzantium/changes)")
	w.Log.Error("service ngircd: exited with status 1: /usr/sbin/ngircd: error while loading shared libraries: libgnutls.so.30: cannot open shared object file: No such file or directory")
	// A failed clone, so its card shows.
	if _, err := w.Cloner.Start(CloneRequest{Target: "/dev/sdb"}); err != nil {
		t.Fatal(err)
	}
	waitJob(t, w.Cloner, "failed")
	h, err := w.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return &testWeb{Web: w, srv: srv}, srv
}

// TestPanelLayout renders every page of the panel in Chromium at phone
// width (360 px) and at desktop width (1280 px), and checks each against
// panelLayout. The pages run no script: the measures are taken through
// the DevTools protocol.
func TestPanelLayout(t *testing.T) {
	tw, srv := layoutNode(t)
	b := browser.New(t, browser.Options{Viewport: browser.Phone, SPKIHashes: []string{browser.SPKIHash(srv.Certificate())}, Language: "en"})
	check := func(name string) {
		t.Helper()
		for _, v := range []struct {
			name string
			vp   browser.Viewport
		}{{"phone", browser.Phone}, {"desktop", browser.Desktop}} {
			b.SetViewport(v.vp)
			l := b.Layout()
			t.Logf("%s, %s: %v", name, v.name, l)
			for _, p := range l.Check(panelLayout) {
				t.Errorf("%s, %s: %s", name, v.name, p)
			}
			b.Screenshot(v.name + "-" + name)
		}
		b.SetViewport(browser.Phone)
	}
	nav := func(path string) {
		t.Helper()
		if code := b.Navigate(srv.URL + path); code != http.StatusOK {
			t.Fatalf("GET %s: %d at %s", path, code, b.URL())
		}
	}

	nav("/setup")
	check("setup")
	b.SetField("#code", tw.Auth.SetupCode())
	b.SetField("#password", "long enough pass")
	b.SetField("#confirm", "long enough pass")
	if code := b.Click(`form[action="/setup"] button`); code != http.StatusOK {
		t.Fatalf("setup: %d", code)
	}
	check("status")
	nav("/login")
	check("login")
	nav("/modules")
	check("modules")
	nav("/services")
	check("services")
	nav("/services/ngircd/logs")
	check("service-output")
	nav("/clone")
	check("clone")
	b.SetField("#passphrase", "a stick passphrase")
	b.SetField("#confirm_passphrase", "a stick passphrase")
	if code := b.Click(`form[action="/clone"] button`); code != http.StatusOK {
		t.Fatalf("clone: %d", code)
	}
	check("clone-confirm")
	nav("/mesh")
	check("mesh")
	nav("/settings")
	check("settings")
	nav("/tokens")
	b.SetField("#name", "monitoring-script-on-the-gateway")
	b.SetField("#password", "long enough pass") // making a token asks for it
	if code := b.Click(`form[action="/tokens"] button`); code != http.StatusOK {
		t.Fatalf("new token: %d", code)
	}
	check("tokens")
	nav("/logs")
	check("logs")
	if code := b.Navigate(srv.URL + "/services/no-such-service/logs"); code != http.StatusNotFound {
		t.Errorf("a missing service's output: %d", code)
	}
	check("error")

	// Spanish and French words are longer than English ones.
	for _, lang := range []string{"es", "fr"} {
		b.SetLanguage(lang)
		for _, p := range []string{"/", "/login", "/modules", "/services", "/services/ngircd/logs", "/clone", "/mesh", "/settings", "/tokens", "/logs"} {
			nav(p)
			name := strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")
			if name == "" {
				name = "status"
			}
			check(lang + "-" + name)
		}
	}
}

// layoutMesh is a mesh with the longest values a node shows: IPv6
// addresses and prefixes, an engine error, a radio's long reason.
var layoutMesh = nodeapi.Mesh{Joined: false, Summary: "alone: no neighbour heard on eth1, enx00e04c680001, wlx00c0ca9a8b7c for 40 s",
	Protocol: nodeapi.MeshBoth, Engine: "restarting", EngineError: "babeld exited with status 1: interface enx00e04c680001: Cannot assign requested address (retrying in 8 s)",
	Interfaces: []nodeapi.MeshInterface{{Name: "enx00e04c680001", Kind: "wired", Mode: "wired", Meshing: true},
		{Name: "wlx00c0ca9a8b7c", Kind: "wifi", Mode: "none", Reason: "the card (mt7921u) offers neither an 802.11s mesh point nor ad-hoc (IBSS): access point and client only"},
		{Name: "eth0", Kind: "wired", Mode: "uplink", Reason: "DHCP gave it a default route"}},
	Addresses:  nodeapi.MeshAddresses{IPv4: "10.254.255.1", IPv6: "fd8e:1a2b:3c4d:feff::1", ClientIPv4: "10.254.255.0/24", ClientIPv6: "fd8e:1a2b:3c4d:feff::/64", Rolls: 2},
	Neighbours: []nodeapi.MeshNeighbour{{Address: "fe80::5054:ff:fe12:3456", Interface: "enx00e04c680001", Cost: 65535, Reach: "fff0"}},
	Routes:     []nodeapi.MeshRoute{{Prefix: "fd8e:1a2b:3c4d:1234::/64", Via: "fe80::5054:ff:fe12:3456", Interface: "enx00e04c680001", Metric: 65535}},
	Gateway:    nodeapi.MeshGateway{Share: nodeapi.ShareOn, Uplink: "eth0", Check: "no answer from [2620:fe::fe]:443 nor 9.9.9.9:53 within 5 s", InUse: "fe80::5054:ff:fe12:3456", InUseMetric: 65535}}
