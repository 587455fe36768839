package mesh

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"byzantium/runtime/mesh/radio"
	"byzantium/runtime/nodeapi"
)

// recordedCard parses a recorded card's split wiphy dump
// (runtime/mesh/radio/testdata, written from radio's fixtures) as
// wiphy n.
func recordedCard(t *testing.T, driver string, n int) radio.Capabilities {
	t.Helper()
	f, err := os.Open(filepath.Join("radio", "testdata", "wiphy-"+driver+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b, err := hex.DecodeString(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	caps, err := radio.ParseWiphyDump(msgs)
	if err != nil || len(caps) != 1 {
		t.Fatalf("%s: %d wiphys, %v", driver, len(caps), err)
	}
	c := caps[0]
	c.Wiphy, c.Name, c.Driver = n, fmt.Sprintf("phy%d", n), driver
	return c
}

type configureCall struct {
	ifname string
	mode   radio.Mode
	s      radio.Settings
}

// fakeNL80211 answers as nl80211 would for the cards given, interface
// index i on wiphy i-10, and records the configurations.
type fakeNL80211 struct {
	mu    sync.Mutex
	cards []radio.Capabilities
	fail  error // Configure's error
	calls []configureCall
	dumps int
}

func (f *fakeNL80211) Wiphys(string) ([]radio.Capabilities, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dumps++
	return slices.Clone(f.cards), nil
}

func (f *fakeNL80211) InterfaceWiphy(ifindex int) (int, error) {
	for _, c := range f.cards {
		if c.Wiphy == ifindex-10 {
			return c.Wiphy, nil
		}
	}
	return 0, fmt.Errorf("nl80211 get interface %d: no such device", ifindex)
}

func (f *fakeNL80211) Configure(ifname string, mode radio.Mode, s radio.Settings) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, configureCall{ifname, mode, s})
	if f.fail != nil {
		return false, f.fail
	}
	return !(mode == radio.ModeMeshPoint && s.Keyed), nil
}

func (f *fakeNL80211) LeaveMesh(ifindex int) error { return f.leave("leave-mesh", ifindex) }
func (f *fakeNL80211) LeaveIBSS(ifindex int) error { return f.leave("leave-ibss", ifindex) }

func (f *fakeNL80211) leave(what string, ifindex int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, configureCall{fmt.Sprint(ifindex), radio.Mode(what), radio.Settings{}})
	return nil
}

func (f *fakeNL80211) takeCalls() []configureCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func link(name string, index int) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name, Index: index}}
}

func settings(ssid string, channel int, key string) nodeapi.MeshSettings {
	return nodeapi.MeshSettings{Protocol: nodeapi.MeshBabel, SSID: ssid, Channel: channel, Key: key, Share: nodeapi.ShareOff}
}

func newRadioManager(t *testing.T, nl *fakeNL80211, opt Options) *Manager {
	t.Helper()
	opt.StateDir, opt.RunDir = t.TempDir(), t.TempDir()
	opt.Launch = func(context.Context, []string) (*exec.Cmd, error) { return nil, errors.New("no babeld in this test") }
	opt.radioClient = nl
	opt.Logf = t.Logf
	m, err := New(opt, settings("byz", 6, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stopRadios)
	return m
}

// TestRadioDecisions walks radios through the settings a node sees:
// which are configured, in which mode, when again, and what the panel is
// told.
func TestRadioDecisions(t *testing.T) {
	type step struct {
		name  string
		s     nodeapi.MeshSettings
		links []netlink.Link // the links present; the first ones are asked about
		ask   []string       // the radios asked about, in order
		age   time.Duration  // the last try is made this much older first
		fail  error
		want  map[string]nodeapi.MeshInterface // Reason: a substring
		calls []configureCall
	}
	s6 := radio.Settings{SSID: "byz", Channel: 6}
	s11 := radio.Settings{SSID: "byz", Channel: 11}
	wlan0, wlan1, wlan2 := link("wlan0", 10), link("wlan1", 11), link("wlan2", 12)
	all := []netlink.Link{wlan0, wlan1, wlan2}
	steps := []step{
		{name: "first look: ath9k meshes 802.11s, iwlwifi ad-hoc, mt7921 cannot", s: settings("byz", 6, ""), links: all, ask: []string{"wlan0", "wlan1", "wlan2"},
			want: map[string]nodeapi.MeshInterface{
				"wlan0": {Mode: "mesh-point", Meshing: true, Reason: "802.11s mesh point on channel 6 (2437 MHz), the card's own mesh forwarding off"},
				"wlan1": {Mode: "ibss", Meshing: true, Reason: "the card offers no mesh point: ad-hoc (IBSS) on channel 6"},
				"wlan2": {Mode: "none", Meshing: false, Reason: "neither mesh point nor ad-hoc (access point and client only)"},
			},
			calls: []configureCall{{"wlan0", radio.ModeMeshPoint, s6}, {"wlan1", radio.ModeIBSS, s6}}},
		{name: "the next ticks touch nothing", s: settings("byz", 6, ""), links: all, ask: []string{"wlan0", "wlan1", "wlan2"},
			want: map[string]nodeapi.MeshInterface{"wlan0": {Mode: "mesh-point", Meshing: true}, "wlan2": {Mode: "none"}}},
		{name: "a new channel reconfigures every card", s: settings("byz", 11, ""), links: all, ask: []string{"wlan0", "wlan1", "wlan2"},
			want: map[string]nodeapi.MeshInterface{
				"wlan0": {Mode: "mesh-point", Meshing: true, Reason: "channel 11 (2462 MHz)"},
				"wlan1": {Mode: "ibss", Meshing: true, Reason: "BSSID " + radio.IBSSBSSID("byz", 11).String()},
			},
			calls: []configureCall{{"wlan0", radio.ModeMeshPoint, s11}, {"wlan1", radio.ModeIBSS, s11}}},
		{name: "a DFS channel: neither meshes, both leave their mesh", s: settings("byz", 100, ""), links: all, ask: []string{"wlan0", "wlan1"},
			want: map[string]nodeapi.MeshInterface{
				"wlan0": {Mode: "none", Reason: "needs radar detection (DFS)"},
				"wlan1": {Mode: "none", Reason: "needs radar detection (DFS)"},
			},
			calls: []configureCall{{"10", "leave-mesh", radio.Settings{}}, {"11", "leave-ibss", radio.Settings{}}}},
		{name: "a key: ad-hoc says the key protects routing only", s: settings("byz", 6, "secret"), links: all, ask: []string{"wlan1"},
			want: map[string]nodeapi.MeshInterface{
				"wlan1": {Mode: "ibss", Meshing: true, Reason: "ad-hoc has no link-layer key (no SAE), so the mesh key protects routing only: babel's HMAC keeps strangers' routes out"},
			},
			calls: []configureCall{{"wlan1", radio.ModeIBSS, radio.Settings{SSID: "byz", Channel: 6, Keyed: true}}}},
		{name: "no supplicant launcher: a keyed 802.11s radio joins open", s: settings("byz", 6, "secret"), links: all, ask: []string{"wlan0"},
			want: map[string]nodeapi.MeshInterface{
				"wlan0": {Mode: "mesh-point", Meshing: true, Reason: "no wpa_supplicant here to do SAE, so the radio joins open and the mesh key protects routing only"},
			},
			calls: []configureCall{{"wlan0", radio.ModeMeshPoint, s6}}},
		{name: "a card that fails to set up is reported, not fatal", s: settings("byz2", 6, ""), links: all, ask: []string{"wlan0"},
			fail: errors.New("device busy"),
			want: map[string]nodeapi.MeshInterface{
				"wlan0": {Mode: "none", Meshing: false, Reason: "mesh-point chosen, but setting the card up failed: device busy (again in 30s)"},
			},
			calls: []configureCall{{"wlan0", radio.ModeMeshPoint, radio.Settings{SSID: "byz2", Channel: 6}}}},
		{name: "and not tried again on every tick", s: settings("byz2", 6, ""), links: all, ask: []string{"wlan0"}, age: 20 * time.Second,
			want: map[string]nodeapi.MeshInterface{"wlan0": {Mode: "none", Reason: "device busy"}}},
		{name: "but after 30 s", s: settings("byz2", 6, ""), links: all, ask: []string{"wlan0"}, age: 11 * time.Second,
			want:  map[string]nodeapi.MeshInterface{"wlan0": {Mode: "mesh-point", Meshing: true}},
			calls: []configureCall{{"wlan0", radio.ModeMeshPoint, radio.Settings{SSID: "byz2", Channel: 6}}}},
		{name: "a card unplugged and another plugged in under its name is read afresh", s: settings("byz2", 6, ""),
			links: []netlink.Link{link("wlan0", 11), wlan2}, ask: []string{"wlan0"},
			want:  map[string]nodeapi.MeshInterface{"wlan0": {Mode: "ibss", Meshing: true}},
			calls: []configureCall{{"wlan0", radio.ModeIBSS, radio.Settings{SSID: "byz2", Channel: 6}}}},
	}
	nl := &fakeNL80211{cards: []radio.Capabilities{recordedCard(t, "ath9k", 0), recordedCard(t, "iwlwifi", 1), recordedCard(t, "mt7921e", 2)}}
	m := newRadioManager(t, nl, Options{})
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			for _, r := range m.radios.byName {
				r.tried = r.tried.Add(-st.age)
			}
			nl.mu.Lock()
			nl.fail = st.fail
			nl.mu.Unlock()
			for _, name := range st.ask {
				var l netlink.Link
				for _, x := range st.links {
					if x.Attrs().Name == name {
						l = x
					}
				}
				mi, ok := m.radioInterface(l, st.links, st.s)
				if !ok {
					t.Fatalf("%s: not taken for a card", name)
				}
				want, check := st.want[name]
				if !check {
					continue
				}
				if mi.Name != name || mi.Kind != "wifi" || mi.Mode != want.Mode || mi.Meshing != want.Meshing || !strings.Contains(mi.Reason, want.Reason) {
					t.Errorf("%s: %+v, want mode %s meshing %v and a reason with %q", name, mi, want.Mode, want.Meshing, want.Reason)
				}
			}
			if got := nl.takeCalls(); !slices.Equal(got, st.calls) {
				t.Errorf("configured %+v, want %+v", got, st.calls)
			}
		})
	}
}

// TestRadioNotACard: a link Options.Wireless calls a radio that nl80211
// does not know (the simulator's veths) is left to the old path.
func TestRadioNotACard(t *testing.T) {
	nl := &fakeNL80211{cards: []radio.Capabilities{recordedCard(t, "ath9k", 0)}}
	m := newRadioManager(t, nl, Options{})
	veth := link("m1", 40)
	for i := 0; i < 2; i++ {
		if mi, ok := m.radioInterface(veth, []netlink.Link{veth}, settings("byz", 6, "")); ok {
			t.Fatalf("a veth taken for a card: %+v", mi)
		}
	}
	if len(nl.takeCalls()) != 0 || nl.dumps != 0 {
		t.Errorf("the veth was configured or its card read")
	}
}

// TestRadioCapabilitiesSeam: the test seam masks 802.11s out and the
// card goes ad-hoc.
func TestRadioCapabilitiesSeam(t *testing.T) {
	nl := &fakeNL80211{cards: []radio.Capabilities{recordedCard(t, "mac80211_hwsim", 0)}}
	m := newRadioManager(t, nl, Options{RadioCapabilities: func(_ string, c *radio.Capabilities) {
		c.Iftypes = slices.DeleteFunc(c.Iftypes, func(t int) bool { return t == radio.IftypeMeshPoint })
	}})
	mi, ok := m.radioInterface(link("wlan0", 10), []netlink.Link{link("wlan0", 10)}, settings("byz", 6, ""))
	if !ok || mi.Mode != "ibss" || !mi.Meshing {
		t.Fatalf("%+v, want ad-hoc", mi)
	}
}

// launches records the supplicant launcher's command lines and runs a
// stand-in that lives until it is stopped.
type launches struct {
	mu   sync.Mutex
	argv [][]string
	err  error
}

func (l *launches) launch(_ context.Context, argv []string) (*exec.Cmd, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.argv = append(l.argv, slices.Clone(argv))
	if l.err != nil {
		return nil, l.err
	}
	return exec.Command("sleep", "60"), nil
}

func (l *launches) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.argv)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("no %s in 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRadioSupplicant: a keyed 802.11s radio is set up without joining
// and wpa_supplicant runs on it with the key in its configuration; a new
// key restarts it with the new one, an open mesh stops it, a card gone
// stops it, and a missing wpa_supplicant is said in the reason.
func TestRadioSupplicant(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep to stand in for wpa_supplicant")
	}
	nl := &fakeNL80211{cards: []radio.Capabilities{recordedCard(t, "ath9k", 0)}}
	l := &launches{}
	m := newRadioManager(t, nl, Options{LaunchSupplicant: l.launch, Supplicant: "/sbin/wpa_supplicant"})
	wlan0 := link("wlan0", 10)
	links := []netlink.Link{wlan0}
	conf := filepath.Join(m.supplicantDir(), "wpa-wlan0.conf")
	keyIn := func(key string) func() bool {
		return func() bool {
			b, err := os.ReadFile(conf)
			return err == nil && strings.Contains(string(b), "sae_password="+hex.EncodeToString([]byte(key))+"\n")
		}
	}

	mi, _ := m.radioInterface(wlan0, links, settings("byz", 6, "first key"))
	if mi.Mode != "mesh-point" || !mi.Meshing || !strings.Contains(mi.Reason, "the mesh key is used for SAE (wpa_supplicant)") {
		t.Errorf("keyed: %+v", mi)
	}
	if got := nl.takeCalls(); !slices.Equal(got, []configureCall{{"wlan0", radio.ModeMeshPoint, radio.Settings{SSID: "byz", Channel: 6, Keyed: true}}}) {
		t.Errorf("configured %+v, want a keyed mesh point (set up, not joined)", got)
	}
	waitUntil(t, "wpa_supplicant start", func() bool { return l.count() == 1 })
	if want := SupplicantArgv("/sbin/wpa_supplicant", "wlan0", conf); !slices.Equal(l.argv[0], want) {
		t.Errorf("argv %q, want %q", l.argv[0], want)
	}
	waitUntil(t, "configuration with the first key", keyIn("first key"))
	if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key's file: %v, %v; want mode 0600", fi.Mode(), err)
	}

	m.radioInterface(wlan0, links, settings("byz", 6, "first key"))
	time.Sleep(200 * time.Millisecond)
	if l.count() != 1 || len(nl.takeCalls()) != 0 {
		t.Errorf("the same settings restarted wpa_supplicant or reconfigured the card")
	}

	m.radioInterface(wlan0, links, settings("byz", 6, "second key"))
	waitUntil(t, "a second wpa_supplicant", func() bool { return l.count() == 2 })
	waitUntil(t, "configuration with the second key", keyIn("second key"))

	mi, _ = m.radioInterface(wlan0, links, settings("byz", 6, ""))
	if m.radios.byName["wlan0"].sup != nil || !mi.Meshing || strings.Contains(mi.Reason, "SAE") {
		t.Errorf("open mesh: %+v, supervisor %v; want joined open, no wpa_supplicant", mi, m.radios.byName["wlan0"].sup)
	}
	if got := nl.takeCalls(); len(got) != 2 || got[1].s.Keyed {
		t.Errorf("configured %+v, want a keyed then an open mesh point", got)
	}

	l.mu.Lock()
	l.err = fmt.Errorf("%w: looked for /sbin/wpa_supplicant", ErrNoSupplicant)
	l.mu.Unlock()
	m.radioInterface(wlan0, links, settings("byz", 6, "third key"))
	waitUntil(t, "the missing wpa_supplicant in the reason", func() bool {
		mi, _ = m.radioInterface(wlan0, links, settings("byz", 6, "third key"))
		return strings.Contains(mi.Reason, "wpa_supplicant, which joins a keyed mesh, could not start") && strings.Contains(mi.Reason, "not in this image")
	})
	first := mi.Reason
	time.Sleep(1500 * time.Millisecond) // the supervisor tries again
	if mi, _ = m.radioInterface(wlan0, links, settings("byz", 6, "third key")); mi.Reason != first {
		t.Errorf("the reason changed with the retries (babeld would restart): %q then %q", first, mi.Reason)
	}

	// The radio made the uplink: wpa_supplicant stops, the card is not
	// touched.
	sup := m.radios.byName["wlan0"].sup
	nl.takeCalls()
	m.releaseRadio("wlan0")
	if _, ok := m.radios.byName["wlan0"]; ok || !isDone(sup.done) {
		t.Errorf("wlan0 the uplink: still managed, or its wpa_supplicant still supervised")
	}
	m.radioInterface(wlan0, links, settings("byz", 6, "third key"))
	if got := nl.takeCalls(); len(got) != 1 {
		t.Errorf("configured %+v, want one configuration of wlan0 back from being the uplink", got)
	}

	// Not named by the settings any more.
	sup = m.radios.byName["wlan0"].sup
	s := settings("byz", 6, "third key")
	s.Interfaces = []string{"eth0", "wlan9"}
	m.radioInterface(link("wlan9", 19), []netlink.Link{wlan0, link("wlan9", 19)}, s)
	if _, ok := m.radios.byName["wlan0"]; ok || !isDone(sup.done) {
		t.Errorf("wlan0 no longer named: still managed, or its wpa_supplicant still supervised")
	}

	m.radioInterface(wlan0, links, settings("byz", 6, "third key"))
	sup = m.radios.byName["wlan0"].sup
	m.radioInterface(link("wlan1", 10), []netlink.Link{link("wlan1", 10)}, settings("byz", 6, "third key"))
	if _, ok := m.radios.byName["wlan0"]; ok {
		t.Errorf("wlan0 gone, still managed")
	}
	if !isDone(sup.done) {
		t.Errorf("wlan0 gone, its wpa_supplicant still supervised")
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestFindSupplicant: the first executable path, else an error naming
// them.
func TestFindSupplicant(t *testing.T) {
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "wpa_supplicant"), filepath.Join(dir, "not-exec")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(plain, []byte(""), 0o644)
	if p, err := FindSupplicant(filepath.Join(dir, "none"), plain, exe); p != exe || err != nil {
		t.Errorf("FindSupplicant = %q, %v; want %s", p, err, exe)
	}
	_, err := FindSupplicant(filepath.Join(dir, "none"), plain)
	if !errors.Is(err, ErrNoSupplicant) || !strings.Contains(err.Error(), plain) {
		t.Errorf("FindSupplicant of nothing: %v", err)
	}
}
