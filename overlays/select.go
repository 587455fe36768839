package overlays

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// Selection is what the kernel command line says about which modules to
// stack.
type Selection struct {
	// BaseOnly (base_only) stacks base/ alone: no modules/, no
	// optional/, and the load list is ignored.
	BaseOnly bool
	// Load names optional modules to stack (load=), Noload modules to
	// leave out of any folder (noload=); see MatchAny.
	Load, Noload []string
}

// Select lists the modules to stack from the media tree fsys, as
// media-relative paths, bottom layer first: every base/*.xzm, then
// modules/*.xzm (unless BaseOnly), then the optional/*.xzm that Load or
// the media's LoadList names, leaving out anything Noload names. A
// missing folder holds nothing.
func Select(fsys fs.FS, sel Selection) ([]string, error) {
	nextBoot := map[string]bool{}
	if !sel.BaseOnly {
		if b, err := fs.ReadFile(fsys, LoadList); err == nil {
			for _, name := range ParseLoadList(b) {
				nextBoot[name] = true
			}
		}
	}
	var out []string
	for _, folder := range Folders() {
		if folder == FolderModules && sel.BaseOnly {
			continue
		}
		if folder == FolderOptional && len(sel.Load) == 0 && len(nextBoot) == 0 {
			continue
		}
		files, err := List(fsys, folder)
		if err != nil {
			return nil, err
		}
		for _, file := range files {
			name := path.Base(file)
			if folder == FolderOptional && !MatchAny(name, sel.Load) && !nextBoot[NameFromFile(name)] {
				continue
			}
			if MatchAny(name, sel.Noload) {
				continue
			}
			out = append(out, file)
		}
	}
	return out, nil
}

// List lists the module files of one folder of the media tree fsys, as
// media-relative paths ("byzantium/base/000-core.xzm"), in file-name
// order (bytewise, as a directory listing sorts). Folders inside it and
// files without the .xzm suffix (in any case) are left out; a missing
// folder holds nothing.
func List(fsys fs.FS, folder string) ([]string, error) {
	dir := FolderPath(folder)
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries { // ReadDir sorts by name
		if e.IsDir() || !IsModuleFile(e.Name()) {
			continue
		}
		out = append(out, dir+"/"+e.Name())
	}
	return out, nil
}

// IsModuleFile reports whether a file name ends in .xzm, in any case.
func IsModuleFile(name string) bool {
	return strings.HasSuffix(strings.ToLower(name), ModuleExt)
}

// ParseLoadList returns the module names of a LoadList: one per line,
// blank lines and lines starting with # left out, spaces trimmed.
func ParseLoadList(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// MatchAny reports whether a module file name matches one of the load=
// or noload= patterns. Porteus feeds them to `egrep -i`, so a pattern is
// a case-insensitive substring ("kde" matches 003-kde.xzm) and may use
// extended regexp syntax; a pattern that is not a valid regexp is taken
// literally.
func MatchAny(name string, patterns []string) bool {
	for _, p := range patterns {
		if p == "" {
			continue
		}
		re, err := regexp.Compile("(?i)" + p)
		if err != nil {
			re = regexp.MustCompile("(?i)" + regexp.QuoteMeta(p))
		}
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// NameFromFile is a module's name when its manifest cannot be read: its
// file name without the directory, the extension and a numeric NNN-
// prefix ("byzantium/base/000-busy-box.xzm" is "busy-box"). Case is
// kept: the load list names modules as they are spelled.
func NameFromFile(file string) string {
	base := path.Base(file)
	base = strings.TrimSuffix(base, path.Ext(base))
	if i := strings.IndexByte(base, '-'); i > 0 && strings.Trim(base[:i], "0123456789") == "" {
		base = base[i+1:]
	}
	return base
}
