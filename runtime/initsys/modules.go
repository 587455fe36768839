package initsys

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"byzantium/overlays"

	"golang.org/x/sys/unix"
)

// LoadFunc loads one kernel module file.
type LoadFunc func(path string) error

// moduleLoad is what loadModules did.
type moduleLoad struct {
	loaded, failed []string
	// noDevice names the modules whose init found nothing to drive
	// (ENODEV, ENXIO): the builder carries every provider of what the
	// kernel may ask for (aesni_intel and padlock_aes for "aes",
	// crc32c_intel for "crc32c"), as modprobe would try them all, and
	// those for a CPU feature the machine lacks decline to load. That is
	// not a failure: a generic provider is carried too.
	noDevice []string
}

// loadModules loads the modules named in the list file, in order: the
// builder wrote it from the kernel's dependencies and softdeps, each
// module after what it needs. It is best-effort: a module that fails is
// logged and the rest are still tried (a missing driver should cost one
// device, not the boot). A module that is already loaded counts as
// loaded.
func loadModules(root string, load LoadFunc, logf Logf) (res moduleLoad) {
	list, err := os.Open(filepath.Join(root, overlays.ModuleListPath))
	if errors.Is(err, os.ErrNotExist) {
		logf("no %s: loading no kernel modules", overlays.ModuleListPath)
		return res
	}
	if err != nil {
		logf("warning: reading the module list: %v", err)
		return res
	}
	defer list.Close()
	sc := bufio.NewScanner(list)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || p[0] == '#' {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(p), ".ko")
		err := load(filepath.Join(root, p))
		switch {
		case err == nil || errors.Is(err, unix.EEXIST):
			res.loaded = append(res.loaded, name)
		case errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO):
			res.noDevice = append(res.noDevice, name)
		default:
			logf("warning: module %s: %v", name, err)
			res.failed = append(res.failed, name)
		}
	}
	if err := sc.Err(); err != nil {
		logf("warning: reading the module list: %v", err)
	}
	return res
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
