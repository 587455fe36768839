package initsys

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// LoadFunc loads one kernel module file.
type LoadFunc func(path string) error

// loadModules loads the modules named in the list file, in order. It is
// best-effort: a module that fails is logged and the rest are still tried
// (a missing driver should cost one device, not the boot). A module that
// is already loaded counts as loaded.
func loadModules(root string, load LoadFunc, logf Logf) (loaded, failed []string) {
	list, err := os.Open(filepath.Join(root, ModuleListPath))
	if errors.Is(err, os.ErrNotExist) {
		logf("no %s: loading no kernel modules", ModuleListPath)
		return nil, nil
	}
	if err != nil {
		logf("warning: reading the module list: %v", err)
		return nil, nil
	}
	defer list.Close()
	sc := bufio.NewScanner(list)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || p[0] == '#' {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(p), ".ko")
		if err := load(filepath.Join(root, p)); err != nil && !errors.Is(err, unix.EEXIST) {
			logf("warning: module %s: %v", name, err)
			failed = append(failed, name)
			continue
		}
		loaded = append(loaded, name)
	}
	if err := sc.Err(); err != nil {
		logf("warning: reading the module list: %v", err)
	}
	return loaded, failed
}

// loadedModules returns the names in /proc/modules, sorted.
func loadedModules(root string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "proc/modules"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	sort.Strings(names)
	return names, nil
}
