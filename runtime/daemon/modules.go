package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"byzantium/modules/manifest"
)

// LoadedModules returns the sorted names of the modules stacked into the
// running root: every module carries its manifest at
// /usr/share/byzantium/modules/<name>.json, and the overlay merges them
// all into that one directory, so reading it under rootDir ("" means "/")
// sees exactly what was loaded, with no help from the init. A manifest
// that does not parse is logged and left out, not fatal: health reporting
// must not fail on one bad module. log may be nil.
func LoadedModules(rootDir string, log *slog.Logger) ([]string, error) {
	if rootDir == "" {
		rootDir = "/"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(rootDir, manifest.Dir)
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("daemon: listing %s: %w", dir, err)
	}
	var names []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			var m *manifest.Manifest
			if m, err = manifest.Parse(b); err == nil {
				names = append(names, m.Name)
				continue
			}
		}
		log.Warn("skipping module manifest", "file", p, "err", err)
	}
	sort.Strings(names)
	return names, nil
}
