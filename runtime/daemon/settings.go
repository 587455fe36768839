package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"byzantium/runtime/i18n"
	"byzantium/runtime/nodeapi"

	"golang.org/x/sys/unix"
)

// Settings are the node's own choices, kept in the state folder.
type Settings struct {
	path string
	mu   sync.Mutex
	v    nodeapi.SettingsValues
}

// maxSettingsFile bounds what OpenSettings reads: the file holds two
// short strings.
const maxSettingsFile = 64 << 10

// OpenSettings reads dir/settings.json; def fills what it lacks. The file
// is checked before any of it is used, since the node name goes into the
// certificate, the host name and every page: a file that is not a plain
// readable file (a symlink, a FIFO, a folder), larger than 64 KiB or not
// JSON is not used at all, and a value that is not valid (a node name
// that is not a DNS label, a language the panel does not have, a wrong
// type) is replaced by def's. Each reason is logged; the node starts
// whatever the file holds, and the file is left as it is until the
// settings are next saved.
func OpenSettings(dir string, def nodeapi.SettingsValues, log *slog.Logger) *Settings {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Settings{path: filepath.Join(dir, "settings.json"), v: def}
	b, err := readSettingsFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s
	}
	if err != nil {
		log.Warn("settings: not used: "+err.Error()+": the defaults apply until the settings are saved again", "file", s.path)
		return s
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		log.Warn("settings: not used: not a JSON object: "+err.Error()+": the defaults apply until the settings are saved again", "file", s.path)
		return s
	}
	for k, raw := range fields {
		var check func(string) error
		var to *string
		switch k {
		case "node_name":
			check, to = checkNodeName, &s.v.NodeName
		case "language":
			check, to = checkLanguage, &s.v.Language
		default:
			log.Warn("settings: ignoring an unknown setting "+quoteShort(k), "file", s.path)
			continue
		}
		var v string
		err := json.Unmarshal(raw, &v)
		if err == nil {
			err = check(v)
		}
		if err != nil {
			log.Warn("settings: "+k+" not used: "+err.Error(), "file", s.path)
			continue
		}
		*to = v
	}
	return s
}

// readSettingsFile reads path if it is a regular file of at most
// maxSettingsFile bytes, without following a symlink or waiting on a
// FIFO.
func readSettingsFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, errors.New("it is a symbolic link")
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("it is not a regular file (%s)", fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSettingsFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSettingsFile {
		return nil, fmt.Errorf("it is larger than %d KiB", maxSettingsFile>>10)
	}
	return b, nil
}

// quoteShort quotes a value from a file for the log: escaped, so it
// cannot add lines to the console, and cut short.
func quoteShort(v string) string {
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	return strconv.Quote(v)
}

func checkNodeName(v string) error {
	if !nodeNamePattern.MatchString(v) {
		return fmt.Errorf("node name %s: use letters, digits and inner hyphens, at most 63", quoteShort(v))
	}
	return nil
}

// panelLanguages are the languages the panel has catalogs for.
var panelLanguages = sync.OnceValue(func() []string {
	c, err := i18n.Load(webFS, "web/i18n", "en")
	if err != nil {
		return []string{"en"}
	}
	return c.Languages()
})

func checkLanguage(v string) error {
	if !slices.Contains(panelLanguages(), v) {
		return fmt.Errorf("language %s: one of %v", quoteShort(v), panelLanguages())
	}
	return nil
}

// Get returns the settings.
func (s *Settings) Get() nodeapi.SettingsValues {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v
}

// Set validates and stores new settings: a temporary file renamed into
// place, so a crash leaves the old file or the new one.
func (s *Settings) Set(v nodeapi.SettingsValues) error {
	if err := checkNodeName(v.NodeName); err != nil {
		return err
	}
	if err := checkLanguage(v.Language); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	s.v = v
	return nil
}
