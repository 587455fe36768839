package modules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"byzantium/modules/deps"
	"byzantium/modules/manifest"
	"byzantium/overlays"
)

// ErrNoModules reports arguments that hold no module at all.
var ErrNoModules = errors.New("no modules found")

// ModuleFile is a module file to read, in a folder or inside a disk image.
type ModuleFile struct {
	// FS holds the file at Name; nil means Path is a file on disk.
	FS   fs.FS
	Name string
	// Path says where the user finds it: a path, or IMAGE:PATH.
	Path string
	// Folder is base, modules or optional for a module of a media tree,
	// "" for one given on its own.
	Folder string
}

// Resolved is one module in stacking order.
type Resolved struct {
	Name    string   `json:"name"`
	Version string   `json:"version,omitempty"`
	Depends []string `json:"depends,omitempty"`
	File    string   `json:"file"`
	Folder  string   `json:"folder,omitempty"`
	// NoManifest marks a module that carries no manifest (one not made by
	// byz, a Porteus module): it is named after its file and taken as
	// depending on nothing.
	NoManifest bool `json:"no_manifest,omitempty"`
}

// Stack is a set of modules in the order they stack, bottom first.
type Stack struct {
	// Sources says what was read, for people: "the media tree in out/media".
	Sources []string
	Modules []Resolved
	// Notes are what stacks but may not be what was meant: a dependency
	// stacked above the module needing it, a boot module needing an
	// optional one.
	Notes []string
}

// StackOptions tunes ResolveStack.
type StackOptions struct {
	// OpenDisk opens the media tree inside a disk image (a USB image, a
	// stick): its file system, with byzantium/ at its root, a name for it
	// in messages, and what to close when done. Without it disk images
	// are not read. (Reading them needs image/, which modules must not
	// import; the CLI passes it in.)
	OpenDisk func(path string) (fsys fs.FS, name string, c io.Closer, err error)
}

// ResolveStack finds the modules args name and returns them in the order
// byz-init stacks them, checking that every dependency is there.
//
// An argument may be a module file; a media tree (a folder holding
// byzantium/, or the byzantium/ folder itself), whose modules stack as
// overlays.Folders says; a disk image holding one (with OpenDisk); a
// build's output folder, searched for a media tree in its folders, then
// for a disk image; or any other folder, standing for every .xzm file below it.
// Modules of media trees come first, argument by argument; the others
// follow in file-name order, which is how modules stack.
//
// It fails on a dependency no module provides, a cycle, a conflict or two
// files holding one module, naming them; and with ErrNoModules, saying
// what it looked for, when the arguments hold no module.
func ResolveStack(args []string, opts StackOptions) (*Stack, error) {
	l := &locator{opts: opts}
	defer l.close()
	for _, a := range args {
		if err := l.arg(a); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(l.loose, func(a, b ModuleFile) int {
		return strings.Compare(filepath.Base(a.Path), filepath.Base(b.Path))
	})
	files := append(l.media, l.loose...)
	if len(l.loose) > 0 {
		l.sources = append(l.sources, fmt.Sprintf("%d module file(s), in file-name order", len(l.loose)))
	}
	st, err := resolveFiles(files)
	if err != nil {
		return nil, err
	}
	st.Sources = l.sources
	return st, nil
}

// locator gathers the module files of the arguments.
type locator struct {
	opts    StackOptions
	media   []ModuleFile // in stacking order
	loose   []ModuleFile // sorted at the end
	sources []string
	closers []io.Closer
}

func (l *locator) close() {
	for _, c := range l.closers {
		c.Close()
	}
}

// fileKind sniffs what a file is: a module, an ISO image, or something
// else (perhaps a disk image).
func fileKind(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b := make([]byte, 4)
	if n, _ := f.ReadAt(b, 0); n == 4 && string(b) == "hsqs" {
		return "module", nil
	}
	b = make([]byte, 5) // ISO 9660: "CD001" in the first volume descriptor
	if n, _ := f.ReadAt(b, 32769); n == 5 && string(b) == "CD001" {
		return "iso", nil
	}
	return "other", nil
}

// errISO explains why an ISO is not read.
func errISO(p string) error {
	return fmt.Errorf("%s is an ISO image: byz reads the modules of a media folder or a USB image (or stick), not those inside an ISO; "+
		"give the build's USB image, or a folder (outputs: dir: in the spec), or mount the ISO and give its folder", p)
}

func (l *locator) arg(a string) error {
	fi, err := os.Stat(a)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return l.dir(a)
	}
	kind, err := fileKind(a)
	if err != nil {
		return err
	}
	switch {
	case kind == "module":
		l.loose = append(l.loose, ModuleFile{Path: a})
		return nil
	case kind == "iso":
		return errISO(a)
	case l.opts.OpenDisk != nil:
		if err := l.disk(a); err != nil {
			return fmt.Errorf("%s: neither a module nor a disk image with a media tree: %w", a, err)
		}
		return nil
	}
	l.loose = append(l.loose, ModuleFile{Path: a}) // reading it says what is wrong
	return nil
}

// isDir reports whether p is a directory (following symlinks).
func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// dir takes a folder: a media tree, the byzantium/ folder of one, a
// build's output folder, or a folder of modules.
func (l *locator) dir(d string) error {
	if isDir(filepath.Join(d, overlays.MediaRoot)) {
		return l.mediaTree(os.DirFS(d), overlays.MediaRoot, d, "the media tree in "+d)
	}
	for _, f := range overlays.Folders() {
		if isDir(filepath.Join(d, f)) {
			return l.mediaTree(os.DirFS(d), ".", d, "the media folder "+d)
		}
	}
	// A build's output folder: media trees (outputs: dir:) in its
	// folders, else disk images (outputs: usb:); ISOs are noted.
	ents, err := os.ReadDir(d)
	if err != nil {
		return err
	}
	var trees, disks, isos []string
	for _, e := range ents {
		p := filepath.Join(d, e.Name())
		switch {
		case isDir(p) && isDir(filepath.Join(p, "byzantium")):
			trees = append(trees, p)
		case e.Type().IsRegular() && strings.HasSuffix(strings.ToLower(e.Name()), ".img"):
			disks = append(disks, p)
		case e.Type().IsRegular() && strings.HasSuffix(strings.ToLower(e.Name()), ".iso"):
			isos = append(isos, p)
		}
	}
	also := func(skipped []string) string {
		if len(skipped) == 0 {
			return ""
		}
		return " (also there, not read: " + strings.Join(skipped, ", ") + ")"
	}
	switch {
	case len(trees) > 1:
		return fmt.Errorf("%s holds %d media trees (%s): name the one to read", d, len(trees), strings.Join(trees, ", "))
	case len(trees) == 1:
		return l.mediaTree(os.DirFS(trees[0]), "byzantium", trees[0], "the media tree in "+trees[0]+also(append(disks, isos...)))
	case len(disks) > 1 && l.opts.OpenDisk != nil:
		return fmt.Errorf("%s holds %d disk images (%s): name the one to read", d, len(disks), strings.Join(disks, ", "))
	case len(disks) == 1 && l.opts.OpenDisk != nil:
		if err := l.disk(disks[0]); err != nil {
			return fmt.Errorf("%s: %w", disks[0], err)
		}
		l.sources[len(l.sources)-1] += also(isos)
		return nil
	}
	n := len(l.loose)
	err = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(strings.ToLower(e.Name()), ".xzm") {
			l.loose = append(l.loose, ModuleFile{Path: p})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(l.loose) > n {
		return nil
	}
	err = fmt.Errorf("%w in %s: looked for a media tree (byzantium/base, modules, optional) in it and in its folders, "+
		"for a USB image (*.img) in it and for *.xzm files below it", ErrNoModules, d)
	if len(isos) > 0 {
		return fmt.Errorf("%w; %w", err, errISO(strings.Join(isos, ", ")))
	}
	return err
}

// disk reads the media tree inside a disk image.
func (l *locator) disk(p string) error {
	fsys, name, c, err := l.opts.OpenDisk(p)
	if err != nil {
		return err
	}
	l.closers = append(l.closers, c)
	return l.mediaTree(fsys, "byzantium", p+":", "the media tree in "+name)
}

// mediaTree lists the modules under root (the byzantium/ folder) of fsys
// in stacking order; label prefixes their paths.
func (l *locator) mediaTree(fsys fs.FS, root, label, source string) error {
	n := 0
	for _, folder := range overlays.Folders() {
		dir := path.Join(root, folder)
		ents, err := fs.ReadDir(fsys, dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", source, err)
		}
		for _, e := range ents { // sorted by name
			if e.IsDir() || !overlays.IsModuleFile(e.Name()) {
				continue
			}
			name := path.Join(dir, e.Name())
			p := filepath.Join(label, filepath.FromSlash(name))
			if strings.HasSuffix(label, ":") {
				p = label + name
			}
			l.media = append(l.media, ModuleFile{FS: fsys, Name: name, Path: p, Folder: folder})
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w in %s: its byzantium/base, modules and optional folders hold no .xzm file", ErrNoModules, source)
	}
	l.sources = append(l.sources, source)
	return nil
}

// resolveFiles reads the manifests of files, given in stacking order, and
// checks that their dependencies are met.
func resolveFiles(files []ModuleFile) (*Stack, error) {
	st := &Stack{}
	var ms []*manifest.Manifest
	fileOf := map[string]string{}
	for _, f := range files {
		var m *Module
		var err error
		if f.FS != nil {
			m, err = OpenFS(f.FS, f.Name, f.Path)
		} else {
			m, err = Open(f.Path)
		}
		if err != nil {
			return nil, err
		}
		mfs, err := m.Manifests()
		m.Close()
		if err != nil {
			return nil, err
		}
		r := Resolved{File: f.Path, Folder: f.Folder}
		mf := &manifest.Manifest{Name: NameFromFile(f.Path)}
		if len(mfs) == 0 {
			r.NoManifest = true
		} else {
			// A module merged from others carries several manifests;
			// the one named after the file speaks for it, else the first.
			mf = mfs[0]
			for _, c := range mfs {
				if c.Name == NameFromFile(f.Path) {
					mf = c
				}
			}
		}
		if prev, dup := fileOf[mf.Name]; dup {
			return nil, fmt.Errorf("%w: module %s is in both %s and %s", deps.ErrDuplicate, mf.Name, prev, f.Path)
		}
		fileOf[mf.Name] = f.Path
		r.Name, r.Version, r.Depends = mf.Name, mf.Version, mf.Depends
		ms = append(ms, mf)
		st.Modules = append(st.Modules, r)
	}
	g, err := deps.New(ms)
	if err != nil {
		return nil, err
	}
	if _, err := g.Order(); err != nil {
		return nil, err
	}
	pos := map[string]int{}
	for i, r := range st.Modules {
		pos[r.Name] = i
	}
	for i, r := range st.Modules {
		for _, d := range r.Depends {
			p, _ := g.Provider(d) // Order found every one
			dep := st.Modules[pos[p]]
			switch {
			case r.Folder != "optional" && dep.Folder == "optional":
				st.Notes = append(st.Notes, fmt.Sprintf("%s needs %s, which is in optional/ (%s): it stacks only when load= names it or byzd activates it",
					r.Name, d, dep.File))
			case pos[p] > i:
				st.Notes = append(st.Notes, fmt.Sprintf("%s needs %s, which stacks above it (%s after %s): give it a lower number (in a spec, list it first) to stack it below",
					r.Name, d, filepath.Base(dep.File), filepath.Base(r.File)))
			}
		}
	}
	return st, nil
}

// WriteText prints the stack for people: one module a line, bottom first:
// name, version and file (whose path shows the media folder).
func (st *Stack) WriteText(w io.Writer) error {
	var b bytes.Buffer
	for _, m := range st.Modules {
		ver := m.Version
		if strings.TrimSpace(ver) == "" {
			ver = "-"
		}
		fmt.Fprintf(&b, "%s\t%s\t%s", m.Name, ver, m.File)
		if m.NoManifest {
			b.WriteString("\t(no manifest: not built by byz; taken to depend on nothing)")
		}
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}
