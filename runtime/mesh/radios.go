package mesh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"byzantium/runtime/mesh/babel"
	"byzantium/runtime/mesh/radio"
	"byzantium/runtime/nodeapi"
)

// The radio manager: each wifi card the interface pick finds is read
// (nl80211 capabilities), given a mode by radio.ChooseMode from the
// settings (SSID, channel, key), configured once, and configured again
// only when the settings change or a failed configuration is due for
// another try, never on the 2 s tick. On a keyed 802.11s mesh,
// wpa_supplicant does SAE and joins; the manager supervises it.

// radioClient is what the radio manager needs of nl80211: *radio.Client,
// or the tests' fake (Options.radioClient).
type radioClient interface {
	Wiphys(sysRoot string) ([]radio.Capabilities, error)
	InterfaceWiphy(ifindex int) (int, error)
	Configure(ifname string, mode radio.Mode, s radio.Settings) (joined bool, err error)
	LeaveMesh(ifindex int) error
	LeaveIBSS(ifindex int) error
}

// radioRetry is how long a radio whose configuration failed waits for
// the next try (a card busy after a reset, a driver still loading its
// firmware).
const radioRetry = 30 * time.Second

// supplicantArgv0 is the name the supplicant launcher gets as argv[0]
// when Options.Supplicant is empty.
const supplicantArgv0 = "wpa_supplicant"

// radioWant is what a radio's configuration depends on.
type radioWant struct {
	ssid    string
	channel int
	key     string
}

func (w radioWant) settings() radio.Settings {
	return radio.Settings{SSID: w.ssid, Channel: w.channel, Keyed: w.key != ""}
}

// radioState is one radio (a network interface of a wiphy) as the
// manager last configured it.
type radioState struct {
	index int
	want  radioWant
	// notCard: nl80211 does not know the interface (the simulator's
	// veths, which Options.Wireless calls radios): it is reported as a
	// radio link and never configured.
	notCard bool
	mi      nodeapi.MeshInterface
	tried   time.Time
	failed  bool // the configuration failed: again after radioRetry
	sup     *supplicant
}

// supplicant is one radio's supervised wpa_supplicant.
type supplicant struct {
	sup    *babel.Supervisor
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *supplicant) stop() {
	s.cancel()
	<-s.done
}

// startError is the supervisor's error while wpa_supplicant has never
// started (not in the image, not executable); "" once it has. It stays
// the same from one try to the next, so the interface's reason (which
// restarts babeld when it changes) does not flap with the backoff.
func (s *supplicant) startError() string {
	_, lastErr, starts := s.sup.Status()
	if starts > 0 {
		return ""
	}
	return lastErr
}

// radioSet is the manager's radios by interface name. Only the goroutine
// that picks the interfaces uses it (Run's), and stopRadios after it.
type radioSet struct {
	client radioClient
	byName map[string]*radioState
}

// radioInterface is what the mesh does with a wireless link l: a card's
// mode and reason, configured if the settings changed since the last
// time; ok false if nl80211 does not know the link (not a card).
func (m *Manager) radioInterface(l netlink.Link, links []netlink.Link, s nodeapi.MeshSettings) (nodeapi.MeshInterface, bool) {
	r := &m.radios
	if r.byName == nil {
		r.byName = map[string]*radioState{}
	}
	r.prune(links, s.Interfaces)
	a := l.Attrs()
	want := radioWant{ssid: s.SSID, channel: s.Channel, key: s.Key}
	st := r.byName[a.Name]
	if st == nil {
		st = &radioState{index: a.Index}
		r.byName[a.Name] = st
		client, err := m.radioClient()
		if err == nil {
			err = m.opt.System.Do(func() error {
				_, err := client.InterfaceWiphy(a.Index)
				return err
			})
		}
		if err != nil {
			st.notCard = true
			m.logf("%s: a radio link nl80211 does not know (%v): babeld uses it as it is", a.Name, err)
		}
	}
	if st.notCard {
		return nodeapi.MeshInterface{}, false
	}
	if st.want != want || st.tried.IsZero() || (st.failed && time.Since(st.tried) >= radioRetry) {
		m.configureRadio(a.Name, st, want)
	}
	return st.report(), true
}

// prune forgets radios that are gone, whose name now belongs to another
// link (a card unplugged, another plugged in) or that the settings no
// longer name, stopping their wpa_supplicant.
func (r *radioSet) prune(links []netlink.Link, named []string) {
	present := map[string]int{}
	for _, l := range links {
		present[l.Attrs().Name] = l.Attrs().Index
	}
	for name, st := range r.byName {
		idx, ok := present[name]
		if ok && idx == st.index && (len(named) == 0 || slices.Contains(named, name)) {
			continue
		}
		r.forget(name)
	}
}

func (r *radioSet) forget(name string) {
	if st := r.byName[name]; st != nil && st.sup != nil {
		st.sup.stop()
	}
	delete(r.byName, name)
}

// releaseRadio forgets a radio that became the uplink: its wpa_supplicant
// stops, and the card is left as whoever made it the uplink set it.
func (m *Manager) releaseRadio(name string) {
	if _, ok := m.radios.byName[name]; ok {
		m.logf("%s is the uplink now: no longer a mesh radio", name)
		m.radios.forget(name)
	}
}

// stopRadios stops every wpa_supplicant (the manager is stopping).
func (m *Manager) stopRadios() {
	for _, st := range m.radios.byName {
		if st.sup != nil {
			st.sup.stop()
			st.sup = nil
		}
	}
}

// radioClient opens nl80211 once it is there (cfg80211 may load after
// byzd, with a USB card's driver).
func (m *Manager) radioClient() (radioClient, error) {
	if m.radios.client != nil {
		return m.radios.client, nil
	}
	if m.opt.radioClient != nil {
		m.radios.client = m.opt.radioClient
		return m.radios.client, nil
	}
	var c *radio.Client
	err := m.opt.System.Do(func() error {
		var err error
		c, err = radio.Open()
		return err
	})
	if err != nil {
		return nil, err
	}
	m.radios.client = c
	return c, nil
}

// report is the radio's interface as the panel shows it: the mode and
// reason of its last configuration, and wpa_supplicant's failure to
// start if that is why the radio is not joined.
func (st *radioState) report() nodeapi.MeshInterface {
	mi := st.mi
	if st.sup != nil {
		if e := st.sup.startError(); e != "" {
			mi.Reason += "; but wpa_supplicant, which joins a keyed mesh, could not start: " + e
		}
	}
	return mi
}

// capabilities reads the card behind interface index: its wiphy's
// capabilities, as Options.RadioCapabilities (a test seam) changes them.
func (m *Manager) capabilities(c radioClient, name string, index int) (radio.Capabilities, error) {
	var caps radio.Capabilities
	err := m.opt.System.Do(func() error {
		wiphy, err := c.InterfaceWiphy(index)
		if err != nil {
			return err
		}
		all, err := c.Wiphys("")
		if err != nil {
			return err
		}
		for _, w := range all {
			if w.Wiphy == wiphy {
				caps = w
				return nil
			}
		}
		return fmt.Errorf("wiphy %d of %s is not in the wiphy dump", wiphy, name)
	})
	if err == nil && m.opt.RadioCapabilities != nil {
		m.opt.RadioCapabilities(name, &caps)
	}
	return caps, err
}

// configureRadio reads the card, chooses its mode and sets it up:
// nothing a card does is fatal, the reason says what went wrong.
func (m *Manager) configureRadio(name string, st *radioState, want radioWant) {
	// wpa_supplicant must let go of the radio before its type changes,
	// and a new key needs a new one anyway.
	if st.sup != nil {
		st.sup.stop()
		st.sup = nil
	}
	wasJoined, wasMode := st.mi.Meshing, st.mi.Mode
	st.want, st.tried, st.failed = want, time.Now(), false
	failed := func(reason string) {
		st.failed = true
		st.mi = nodeapi.MeshInterface{Name: name, Kind: "wifi", Mode: string(radio.ModeNone), Reason: reason}
		m.logf("%s: %s", name, reason)
	}
	client, err := m.radioClient()
	if err != nil {
		failed(fmt.Sprintf("nl80211: %v (again in %v)", err, radioRetry))
		return
	}
	caps, err := m.capabilities(client, name, st.index)
	if err != nil {
		failed(fmt.Sprintf("could not read the card's capabilities: %v (again in %v)", err, radioRetry))
		return
	}
	rs := want.settings()
	mi := radio.Interface(name, caps, rs)
	mode := radio.Mode(mi.Mode)
	if mode == radio.ModeNone {
		st.mi = mi
		m.logf("%s (%s, driver %q): not meshing: %s", name, caps.Name, caps.Driver, mi.Reason)
		if wasJoined {
			// It meshed under the former settings: leave that mesh.
			err := m.opt.System.Do(func() error {
				if wasMode == string(radio.ModeIBSS) {
					return client.LeaveIBSS(st.index)
				}
				return client.LeaveMesh(st.index)
			})
			if err != nil {
				m.logf("%s: leaving the former mesh: %v", name, err)
			}
		}
		return
	}
	conf := rs
	sae := false
	if mode == radio.ModeMeshPoint && rs.Keyed {
		switch {
		case !caps.SAE():
			conf.Keyed = false // ChooseMode's reason says the key protects routing only
		case m.opt.LaunchSupplicant == nil:
			conf.Keyed = false
			mi = radio.Interface(name, caps, conf)
			mi.Reason += "; no wpa_supplicant here to do SAE, so the radio joins open and the mesh key protects routing only: babel's HMAC keeps strangers' routes out"
		default:
			sae = true
		}
	}
	var joined bool
	err = m.opt.System.Do(func() error {
		var err error
		joined, err = client.Configure(name, mode, conf)
		return err
	})
	if err != nil {
		failed(fmt.Sprintf("%s chosen, but setting the card up failed: %v (again in %v)", mode, err, radioRetry))
		return
	}
	if sae {
		if joined {
			failed("the card joined a keyed mesh without wpa_supplicant: not meshing rather than meshing open")
			return
		}
		st.sup = m.startSupplicant(name, want)
	}
	st.mi = mi
	m.logf("%s (%s, driver %q): %s", name, caps.Name, caps.Driver, mi.Reason)
}

// supplicantDir is where wpa_supplicant's configuration files and control
// sockets go.
func (m *Manager) supplicantDir() string {
	if m.opt.SupplicantDir != "" {
		return m.opt.SupplicantDir
	}
	return filepath.Join(m.opt.RunDir, "wpa")
}

// SupplicantArgv is the command line the manager hands
// Options.LaunchSupplicant for a radio: argv0 on the interface with the
// nl80211 driver and the configuration file conf.
func SupplicantArgv(argv0, ifname, conf string) []string {
	return []string{argv0, "-i", ifname, "-D", "nl80211", "-c", conf}
}

// startSupplicant supervises wpa_supplicant on a keyed 802.11s radio: it
// does SAE with the mesh key and joins (radio.WPASupplicantMeshConfig),
// restarted with backoff when it exits.
func (m *Manager) startSupplicant(name string, want radioWant) *supplicant {
	dir := m.supplicantDir()
	argv0 := m.opt.Supplicant
	if argv0 == "" {
		argv0 = supplicantArgv0
	}
	conf := filepath.Join(dir, "wpa-"+name+".conf")
	sup := &babel.Supervisor{
		Name:   "wpa_supplicant on " + name,
		Launch: m.opt.LaunchSupplicant,
		Logf:   m.opt.Logf,
		// Written before every start: the folder is on a tmpfs that
		// someone may have cleaned.
		Prepare: func() ([]string, error) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("mesh: %w", err)
			}
			b, err := radio.WPASupplicantMeshConfig(filepath.Join(dir, "ctrl-"+name), want.ssid, want.channel, want.key)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(conf, b, 0o600); err != nil {
				return nil, fmt.Errorf("mesh: %w", err)
			}
			// A killed wpa_supplicant leaves its control socket, and the
			// next one refuses to start over it.
			os.Remove(filepath.Join(dir, "ctrl-"+name, name))
			return SupplicantArgv(argv0, name, conf), nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &supplicant{sup: sup, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sup.Run(ctx)
	}()
	return s
}

// ErrNoSupplicant is the supplicant launcher's error when the image has
// no wpa_supplicant (cmd/byzd's launcher wraps it).
var ErrNoSupplicant = errors.New("wpa_supplicant is not in this image (the wifi module: the wpasupplicant package)")

// FindSupplicant is the first of paths that is an executable file, or
// ErrNoSupplicant naming them.
func FindSupplicant(paths ...string) (string, error) {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: looked for %s", ErrNoSupplicant, strings.Join(paths, ", "))
}
