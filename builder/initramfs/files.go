package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"byzantium/builder/kernel"
	"byzantium/modules/entry"
	"byzantium/overlays"
)

// File is one file of an initramfs built with Write.
type File struct {
	// Path is where it goes in the archive, relative: "init".
	Path string
	// Type is entry.TypeRegular when zero; TypeDir and TypeSymlink work too.
	Type entry.Type
	// Mode holds the permission bits; zero means 0644 (0755 for a
	// directory, 0777 for a symlink).
	Mode uint32
	// Linkname is a symlink's target.
	Linkname string
	// Data is the body of a regular file, unless Src is set.
	Data []byte
	// Src is a host file whose contents are the body (read at Write).
	Src string
}

// Write writes files as an initramfs to w: sorted by path, with every
// parent directory added (mode 0755), owned by root, and an empty
// /dev/null placeholder (see overlays.DevNullPlaceholder) unless files give
// one. The same files and options give the same bytes.
func Write(w io.Writer, files []File, opts Options) error {
	byPath := map[string]File{}
	for _, f := range files {
		p := entry.Clean(f.Path)
		if p == "." || p != strings.TrimPrefix(f.Path, "/") {
			return fmt.Errorf("initramfs: %q is not a clean file path", f.Path)
		}
		if _, dup := byPath[p]; dup {
			return fmt.Errorf("initramfs: %s is given twice", p)
		}
		f.Path = p
		byPath[p] = f
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = File{Path: d, Type: entry.TypeDir}
			}
		}
	}
	if _, ok := byPath[overlays.DevNullPlaceholder]; !ok {
		byPath[overlays.DevNullPlaceholder] = File{Path: overlays.DevNullPlaceholder, Mode: 0o666}
		byPath["dev"] = File{Path: "dev", Type: entry.TypeDir}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	// Plain string order puts every directory before what it holds ("a" <
	// "a/b"), which the kernel's unpacker needs.
	sort.Strings(paths)

	iw, err := NewWriter(w, opts)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := writeFile(iw, byPath[p]); err != nil {
			return err
		}
	}
	return iw.Close()
}

func writeFile(iw *Writer, f File) error {
	h := &entry.Header{Path: f.Path, Type: f.Type, Mode: f.Mode, Linkname: f.Linkname}
	if h.Type == 0 {
		h.Type = entry.TypeRegular
	}
	if h.Mode == 0 {
		h.Mode = 0o644
		switch h.Type {
		case entry.TypeDir:
			h.Mode = 0o755
		case entry.TypeSymlink:
			h.Mode = 0o777
		}
	}
	var body io.Reader = bytes.NewReader(f.Data)
	if h.Type == entry.TypeRegular {
		h.Size = int64(len(f.Data))
		if f.Src != "" {
			src, err := os.Open(f.Src)
			if err != nil {
				return fmt.Errorf("initramfs: %s: %w", f.Path, err)
			}
			defer src.Close()
			st, err := src.Stat()
			if err != nil {
				return fmt.Errorf("initramfs: %s: %w", f.Path, err)
			}
			h.Size, body = st.Size(), src
		}
	}
	if err := iw.WriteHeader(h); err != nil {
		return err
	}
	if h.Type != entry.TypeRegular {
		return nil
	}
	n, err := io.Copy(iw, body)
	if err == nil && n != h.Size {
		err = fmt.Errorf("%s changed size while being read: %d bytes, want %d", f.Src, n, h.Size)
	}
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w", f.Path, err)
	}
	return nil
}

// ModuleFiles returns the files that put mods (a Closure, in load order)
// into an initramfs: each .ko at lib/modules/<version>/<its path>, read
// from dir (the ModulesDir given to kernel.Extract), and the load-order
// list the init reads (overlays.ModuleListPath).
func ModuleFiles(dir, version string, mods []*kernel.Module) []File {
	var list strings.Builder
	list.WriteString("# Kernel modules for byz-init to load, dependencies first.\n")
	files := make([]File, 0, len(mods)+1)
	for _, m := range mods {
		p := path.Join("lib/modules", version, m.Path)
		files = append(files, File{Path: p, Src: filepath.Join(dir, filepath.FromSlash(m.Path))})
		list.WriteString(p + "\n")
	}
	return append(files, File{Path: overlays.ModuleListPath, Data: []byte(list.String())})
}
