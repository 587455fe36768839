package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"byzantium/runtime/mesh/meshcfg"
	"byzantium/runtime/nodeapi"
)

// Mesh is the mesh manager as byzd's API and panel see it (runtime/mesh
// implements it; Config.Mesh passes one in).
type Mesh interface {
	// Status is the mesh as the node sees it now. Anyone may cause a
	// call (/healthz): it must return the manager's last snapshot, not
	// ask the routing engine.
	Status() nodeapi.Mesh
	// Apply makes s the mesh's settings without a reboot. s is valid
	// (meshcfg.ValidateSettings) and holds the key itself: "" is an open
	// mesh; KeepKey and Keyed are false. Run calls it once before it
	// serves, and the API and the panel wait for it: it should hand the
	// settings over and return, not wait for the engine to converge (an
	// error is for what the manager refuses outright).
	Apply(s nodeapi.MeshSettings) error
}

// MeshSettings are the mesh's settings: the image's (meshcfg.ImageFile)
// until the panel or the API saves others in the state folder, which
// persistence keeps across reboots. The file holds the mesh key, so it
// is the owner's alone (0600).
type MeshSettings struct {
	path string
	mu   sync.Mutex
	v    nodeapi.MeshSettings
}

// meshSettingsFile is the file's name in the state folder, next to
// settings.json.
const meshSettingsFile = "mesh.json"

// OpenMeshSettings reads dir/mesh.json over def (the image's settings).
// As OpenSettings does for settings.json, a file that is not a plain
// readable file of at most 64 KiB, or not JSON of the settings' fields
// alone, is not used at all; a field that is not valid is replaced by
// def's. Each reason is logged, and the node starts whatever the file
// holds.
func OpenMeshSettings(dir string, def nodeapi.MeshSettings, log *slog.Logger) *MeshSettings {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	def.KeepKey, def.Keyed = false, false
	s := &MeshSettings{path: filepath.Join(dir, meshSettingsFile), v: def}
	b, err := readSettingsFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s
	}
	warn := func(msg string) {
		log.Warn("mesh settings: "+msg+": the image's apply until the mesh settings are saved again", "file", s.path)
	}
	if err != nil {
		warn("not used: " + err.Error())
		return s
	}
	v := def
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		warn("not used: " + err.Error())
		return s
	}
	v.KeepKey, v.Keyed = false, false
	if err := meshcfg.ValidateSettings(v); err != nil {
		// Field by field, as settings.json: a bad channel does not
		// undo a good SSID.
		for _, e := range unjoin(err) {
			var fe *meshcfg.FieldError
			if !errors.As(e, &fe) {
				continue
			}
			switch field, _, _ := strings.Cut(fe.Field, "["); field {
			case "protocol":
				v.Protocol = def.Protocol
			case "ssid":
				v.SSID = def.SSID
			case "channel":
				v.Channel = def.Channel
			case "share":
				v.Share = def.Share
			case "interfaces":
				v.Interfaces = def.Interfaces
			case "babel_only":
				v.BabelOnly = def.BabelOnly
			case "uplink":
				v.Uplink = def.Uplink
			case "key":
				v.Key = ""
				log.Warn("mesh settings: the mesh key is not valid: the mesh is OPEN until a key is set again", "file", s.path)
			}
			log.Warn("mesh settings: "+fe.Field+" not used: "+fe.Err.Error(), "file", s.path)
		}
		if err := meshcfg.ValidateSettings(v); err != nil {
			// The image's interfaces and another field's uplink may
			// still clash: the image's whole.
			warn("not used: " + err.Error())
			return s
		}
	}
	s.v = v
	return s
}

// unjoin lists the errors errors.Join put together (or err alone).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Get returns the settings with the key.
func (s *MeshSettings) Get() nodeapi.MeshSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.v
	v.Interfaces = append([]string(nil), v.Interfaces...)
	v.BabelOnly = append([]string(nil), v.BabelOnly...)
	return v
}

// Public returns the settings as GET shows them: the key blanked, Keyed
// saying whether there is one.
func (s *MeshSettings) Public() nodeapi.MeshSettings {
	v := s.Get()
	v.Keyed, v.Key = v.Key != "", ""
	return v
}

// Resolve turns settings as a client sends them (KeepKey: the current
// key) into the ones to save and apply, and checks them.
func (s *MeshSettings) Resolve(v nodeapi.MeshSettings) (nodeapi.MeshSettings, error) {
	if v.KeepKey {
		if v.Key != "" {
			return v, &meshcfg.FieldError{Field: "keep_key", Err: errors.New("send a new key or keep_key, not both")}
		}
		v.Key = s.Get().Key
	}
	v.KeepKey, v.Keyed = false, false
	if len(v.Interfaces) == 0 {
		v.Interfaces = nil
	}
	if len(v.BabelOnly) == 0 {
		v.BabelOnly = nil
	}
	return v, meshcfg.ValidateSettings(v)
}

// Set validates and saves v (as Resolve returns it): a temporary file
// renamed into place, 0600 for the key.
func (s *MeshSettings) Set(v nodeapi.MeshSettings) error {
	if err := meshcfg.ValidateSettings(v); err != nil {
		return err
	}
	v.KeepKey, v.Keyed = false, false
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		return errors.New("mesh settings: not saved: byzd has no state folder")
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("mesh settings: %w", err)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	tmp := s.path + ".tmp"
	os.Remove(tmp) // a file left by a crash may have another mode
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("mesh settings: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mesh settings: %w", err)
	}
	s.v = v
	return nil
}

// meshStatus is the mesh's status, or when no manager runs, what can be
// said without one: the settings, and that the node is alone.
func (w *Web) meshStatus() (st nodeapi.Mesh, running bool) {
	if w.Mesh != nil {
		st = w.Mesh.Status()
		running = true
	} else {
		set := w.MeshSettings.Public()
		st = nodeapi.Mesh{Summary: "alone: the mesh manager is not running", Protocol: set.Protocol, Engine: "off",
			Gateway: nodeapi.MeshGateway{Share: set.Share}, Keyed: set.Keyed}
	}
	// Lists are [] in JSON, never null: scripts index them.
	if st.Interfaces == nil {
		st.Interfaces = []nodeapi.MeshInterface{}
	}
	if st.Neighbours == nil {
		st.Neighbours = []nodeapi.MeshNeighbour{}
	}
	if st.Routes == nil {
		st.Routes = []nodeapi.MeshRoute{}
	}
	return st, running
}

// meshWord is /healthz's one word on the mesh.
func (w *Web) meshWord() string {
	if w.Mesh != nil && w.Mesh.Status().Joined {
		return "joined"
	}
	return "alone"
}

func (w *Web) apiMesh(rw http.ResponseWriter, _ *http.Request) {
	st, _ := w.meshStatus()
	writeJSON(rw, http.StatusOK, st)
}

func (w *Web) apiMeshSettings(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, w.MeshSettings.Public())
}

func (w *Web) apiMeshSettingsPut(rw http.ResponseWriter, r *http.Request) {
	var v nodeapi.MeshSettings
	if !decode(rw, r, &v) {
		return
	}
	if err := w.setMesh(v); err != nil {
		writeError(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, w.MeshSettings.Public())
}

// setMesh resolves, checks, saves and applies new mesh settings: a 400
// httpError names the field that is wrong; an error of the manager's
// comes after the settings are saved (they apply at the next start).
func (w *Web) setMesh(v nodeapi.MeshSettings) error {
	v, err := w.MeshSettings.Resolve(v)
	if err != nil {
		return &httpError{http.StatusBadRequest, fmt.Errorf("mesh settings: %w", err)}
	}
	if err := w.MeshSettings.Set(v); err != nil {
		return err
	}
	w.Log.Info("mesh settings changed", "protocol", v.Protocol, "ssid", quoteShort(v.SSID), "channel", v.Channel,
		"interfaces", v.Interfaces, "share", v.Share, "uplink", v.Uplink, "keyed", v.Key != "")
	if w.Mesh == nil {
		return nil
	}
	if err := w.Mesh.Apply(v); err != nil {
		w.Log.Error("mesh settings saved but not applied", "err", err)
		return fmt.Errorf("mesh settings saved, but the mesh manager did not apply them: %w", err)
	}
	return nil
}

// meshPageData is the Mesh page's.
type meshPageData struct {
	Mesh        nodeapi.Mesh
	MeshRunning bool
	Settings    nodeapi.MeshSettings // the key blanked
	// Interfaces and BabelOnly are the settings' lists as the form shows
	// them.
	Interfaces string
	BabelOnly  string
	Channels   []int
}

func (w *Web) meshData() meshPageData {
	st, running := w.meshStatus()
	set := w.MeshSettings.Public()
	d := meshPageData{Mesh: st, MeshRunning: running, Settings: set, Interfaces: strings.Join(set.Interfaces, " "),
		BabelOnly: strings.Join(set.BabelOnly, " ")}
	for c := 1; c <= 13; c++ {
		d.Channels = append(d.Channels, c)
	}
	for c := 36; c <= 165; c++ {
		if meshcfg.Channel(c) == nil {
			d.Channels = append(d.Channels, c)
		}
	}
	return d
}

func (w *Web) meshPage(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "mesh.title")
	p.Data = w.meshData()
	w.render(rw, http.StatusOK, "mesh", p)
}

// names splits a form's list of interface names (spaces or commas).
func names(s string) []string {
	return strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' })
}

// meshPost is the Mesh page's settings form. The key field is empty
// unless one is typed: key_action keep (the default) keeps the current
// key unless one is typed, set uses the one typed, open removes it.
func (w *Web) meshPost(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "mesh.title")
	channel, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("channel")))
	if err != nil {
		channel = -1 // refused below, naming the field
	}
	v := nodeapi.MeshSettings{
		Protocol:   r.PostFormValue("protocol"),
		SSID:       r.PostFormValue("ssid"),
		Channel:    channel,
		Interfaces: names(r.PostFormValue("interfaces")),
		BabelOnly:  names(r.PostFormValue("babel_only")),
		Share:      r.PostFormValue("share"),
		Uplink:     strings.TrimSpace(r.PostFormValue("uplink")),
	}
	// A key typed is a new key whatever the choice left at its default
	// says: ignoring it would leave the mesh open while the user thinks
	// it is closed.
	key := r.PostFormValue("key")
	bad := ""
	switch r.PostFormValue("key_action") {
	case "", "keep", "set":
		switch {
		case key != "":
			v.Key = key
		case r.PostFormValue("key_action") == "set":
			bad = "key: type the new key"
		default:
			v.KeepKey = true
		}
	case "open":
		if key != "" {
			bad = "key: a key was typed, and the choice was an open mesh: choose one"
		}
	default:
		bad = "key_action: keep, set or open"
	}
	if bad != "" {
		p.Error = p.T("mesh.settings.bad", bad)
		p.Data = w.meshData()
		w.render(rw, http.StatusBadRequest, "mesh", p)
		return
	}
	if err := w.setMesh(v); err != nil {
		status := http.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			status, err = he.status, he.err
		}
		p.Error = p.T("mesh.settings.bad", err.Error())
		p.Data = w.meshData()
		w.render(rw, status, "mesh", p)
		return
	}
	done(rw, r, "/mesh", "mesh.settings.done")
}
