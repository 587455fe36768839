package npm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"byzantium/modules/entry"
)

// Options configures Open. The zero value is usable.
type Options struct {
	// ModTime is the time of the folders and links the layout makes
	// (files keep their tarball's time); SOURCE_DATE_EPOCH when building.
	// The zero Time means the Unix epoch.
	ModTime time.Time
	// Limits bound each tarball.
	Limits Limits
}

// pkgFile is a file a tarball puts in the tree.
type pkgFile struct {
	n    int // the tarWalker's number of the copy laid out (the last); -1: dropped
	size int64
	crlf int64 // offset of a shebang's \r removed when the file is a bin, or -1
	bin  bool  // a bin target: mode 0755, crlf removed
}

// owner is a package whose folder is in the tree: a fetched one, or one
// bundled inside another's tarball.
type owner struct {
	pkg   *Package
	pj    []byte // its package.json, if the tarball has one
	gyp   bool   // binding.gyp at its root
	nodes []nodeFile
	// binMap is its bins: name → path in its folder.
	binMap map[string]string
}

type nodeFile struct {
	rel, desc string
	ok        bool // linux-x64 glibc
}

// fetched is a package whose tarball is read.
type fetched struct {
	pkg  *Package
	in   *Integrity
	file string
}

// plan is everything Open learnt from reading every tarball once.
type plan struct {
	app     *App
	root    string // the app's folder in the tree, "opt/app"
	pkgs    []fetched
	owners  map[string]*owner   // by lock path
	files   map[string]*pkgFile // by path in the lock's tree ("node_modules/a/index.js")
	links   []*entry.Header     // the bins, sorted
	limits  Limits
	modTime time.Time
}

// Open lays out app from the tarballs in cache and returns the tree as
// an entry stream: the folders down to app's Config.Dir, its
// node_modules as the lock's paths say, and the bin links. Every tarball
// is read and checked first — present in the cache, its integrity, its
// paths, its install steps, its package.json against the lock — so a
// refused package fails Open before the first entry is returned. The
// tarballs are hashed again as they are streamed; a file changed in
// between fails the stream.
func Open(app *App, cache Cache, opts Options) (*Reader, error) {
	pl := &plan{app: app, root: strings.TrimPrefix(app.Config.Dir, "/"), owners: map[string]*owner{},
		files: map[string]*pkgFile{}, limits: opts.Limits, modTime: opts.ModTime}
	if pl.modTime.IsZero() {
		pl.modTime = time.Unix(0, 0)
	}
	var missing []string
	for _, p := range app.Install {
		pl.owners[p.Path] = &owner{pkg: p}
		if p.InBundle {
			continue
		}
		in, err := ParseIntegrity(p.Integrity)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.ID(), err)
		}
		f := fetched{pkg: p, in: in, file: cache.Path(in)}
		if _, err := os.Stat(f.file); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, p.ID())
		}
		pl.pkgs = append(pl.pkgs, f)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: %w: %d of %d tarballs are not in %s (%s): fetch them first "+
			"(byz module fetch npm:%s, or make npm-fetch)", app.LockFile, ErrNotCached, len(missing), len(pl.pkgs),
			cache.Dir, strings.Join(first(missing, 3), ", "), app.Dir)
	}
	for _, f := range pl.pkgs {
		if err := pl.scan(f); err != nil {
			return nil, err
		}
	}
	if err := pl.check(); err != nil {
		return nil, err
	}
	if err := pl.linkBins(); err != nil {
		return nil, err
	}
	pl.dropShadowed()
	return &Reader{pl: pl, dirs: map[string]bool{}}, nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

// ownerOf says which package a file of p's tarball belongs to: p, or a
// package bundled in it (the deepest lock path above the file that is
// bundled). A file at or below another package's path that is not
// bundled is left out: that package's own tarball fills its folder.
func (pl *plan) ownerOf(p *Package, rel string) (*owner, string, bool) {
	o := pl.owners[p.Path]
	orel := rel
	parts := strings.Split(rel, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] != "node_modules" {
			continue
		}
		end := i + 2
		if strings.HasPrefix(parts[i+1], "@") {
			end++
		}
		if end > len(parts) {
			break
		}
		sub := p.Path + "/" + strings.Join(parts[:end], "/")
		lp, inLock := pl.app.Lock.Packages[sub]
		if !inLock {
			continue
		}
		if !lp.InBundle {
			return nil, "", false
		}
		if so := pl.owners[sub]; so != nil {
			o, orel = so, strings.Join(parts[end:], "/")
		}
	}
	return o, orel, true
}

// scan reads one tarball whole: its integrity first, so that no byte
// the lock does not pin is parsed, then what each file is.
func (pl *plan) scan(f fetched) error {
	file, err := os.Open(f.file)
	if err != nil {
		return err
	}
	defer file.Close()
	id := f.pkg.ID()
	h := f.in.Hash()
	if _, err := io.Copy(h, file); err != nil {
		return fmt.Errorf("%s: %w", f.file, err)
	}
	if err := f.in.check(h, id, f.file); err != nil {
		return err
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	err = walkTarball(file, id, pl.limits, func(tf *tarFile, body io.Reader) error {
		o, orel, keep := pl.ownerOf(f.pkg, tf.rel)
		if !keep {
			return nil
		}
		pf := &pkgFile{n: tf.n, size: tf.size, crlf: -1}
		pl.files[f.pkg.Path+"/"+tf.rel] = pf
		switch {
		case orel == "package.json":
			b, err := io.ReadAll(io.LimitReader(body, 16<<20))
			if err != nil {
				return fmt.Errorf("%s: %s: %w", id, tf.rel, err)
			}
			o.pj = b
			return nil
		case strings.HasSuffix(orel, ".node"):
			desc, ok, err := nodeKind(body, tf.size)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", id, tf.rel, err)
			}
			o.nodes = append(o.nodes, nodeFile{rel: orel, desc: desc, ok: ok})
			return nil
		case orel == "binding.gyp":
			o.gyp = true
		}
		var head [2048]byte
		n, err := io.ReadFull(body, head[:])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return fmt.Errorf("%s: %s: %w", id, tf.rel, err)
		}
		pf.crlf = crlfShebang(head[:n])
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", f.file, err)
	}
	return nil
}

// manifest is what byz reads of a package's package.json.
type manifest struct {
	Name        string          `json:"name"`
	Version     string          `json:"version"`
	Bin         json.RawMessage `json:"bin"`
	Directories struct {
		Bin string `json:"bin"`
	} `json:"directories"`
	Scripts map[string]json.RawMessage `json:"scripts"`
	Gypfile *bool                      `json:"gypfile"`

	bins map[string]string // normalised: bin name → path in the package
}

// installScripts are the lifecycle scripts npm runs when it installs a
// package; byz runs none.
var installScripts = []string{"preinstall", "install", "postinstall"}

// check reads every package's package.json and refuses what byz cannot
// lay out as npm would: a package.json naming another package or version
// than the lock (the digest pins other bytes than the lock says), a
// native add-on or an install script the app did not allow, and allow
// entries that allow nothing.
func (pl *plan) check() error {
	cfg := pl.app.Config
	var errs []string
	used := map[string]bool{}
	for _, path := range sortedKeys(pl.owners) {
		o := pl.owners[path]
		p := o.pkg
		m := &manifest{}
		if o.pj != nil {
			if err := json.Unmarshal(o.pj, m); err != nil {
				errs = append(errs, fmt.Sprintf("%s (%s): package.json: %v", p.ID(), path, err))
				continue
			}
			if m.Name != p.Name || (p.Version != "" && m.Version != p.Version) {
				errs = append(errs, fmt.Sprintf("%s (%s): its tarball's package.json is %s@%s, not what the lock says",
					p.ID(), path, m.Name, m.Version))
				continue
			}
		}
		m.normaliseBins(p, pl.files)
		o.binMap = m.bins

		var scripts []string
		for _, s := range installScripts {
			if v, ok := m.Scripts[s]; ok && string(v) != `""` && string(v) != "null" {
				scripts = append(scripts, fmt.Sprintf("%s: %s", s, v))
			}
		}
		gyp := o.gyp && (m.Gypfile == nil || *m.Gypfile) && m.Scripts["install"] == nil && m.Scripts["preinstall"] == nil
		native := gyp || m.Gypfile != nil && *m.Gypfile || len(o.nodes) > 0
		switch {
		case native && allows(cfg.Prebuilt, p):
			markUsed(used, "prebuilt", cfg.Prebuilt, p)
			good := false
			var seen []string
			for _, n := range o.nodes {
				good = good || n.ok
				seen = append(seen, n.rel+" ("+n.desc+")")
			}
			if !good {
				errs = append(errs, fmt.Sprintf("%s (%s) is listed in byzantium.prebuilt but ships no .node file for %s-%s %s (found: %s): "+
					"provide one, or choose a package that ships prebuilds", p.ID(), path, TargetOS, TargetCPU, TargetLibc,
					orNone(strings.Join(first(seen, 4), ", "))))
			}
		case native:
			why := "it ships .node files"
			if gyp || m.Gypfile != nil && *m.Gypfile {
				why = "it builds with node-gyp (binding.gyp)"
			}
			errs = append(errs, fmt.Sprintf("%s (%s) is a native add-on: %s, and byz builds nothing at install time; "+
				"if its tarball ships a prebuilt .node for %s-%s %s, list it in package.json's byzantium.prebuilt",
				p.ID(), path, why, TargetOS, TargetCPU, TargetLibc))
		case len(scripts) > 0 && allows(cfg.Prebuilt, p):
			errs = append(errs, fmt.Sprintf("%s (%s) is listed in byzantium.prebuilt but has no native add-on (%s): "+
				"list it in byzantium.ignore-scripts if the app works without its scripts", p.ID(), path, strings.Join(scripts, "; ")))
		case len(scripts) > 0 && allows(cfg.IgnoreScripts, p):
			markUsed(used, "ignore-scripts", cfg.IgnoreScripts, p)
		case len(scripts) > 0:
			errs = append(errs, fmt.Sprintf("%s (%s) has install scripts (%s), and byz runs no scripts: "+
				"if the app works without them, list it in package.json's byzantium.ignore-scripts",
				p.ID(), path, strings.Join(scripts, "; ")))
		}
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"prebuilt", cfg.Prebuilt}, {"ignore-scripts", cfg.IgnoreScripts}} {
		for _, a := range l.list {
			if !used[l.key+" "+a] {
				errs = append(errs, fmt.Sprintf("byzantium.%s lists %s, which installs nothing that needs it here: remove it", l.key, a))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w:\n  %s", pl.app.LockFile, ErrNative, strings.Join(first(errs, 10), "\n  "))
	}
	return nil
}

func markUsed(used map[string]bool, key string, list []string, p *Package) {
	for _, a := range list {
		if allows([]string{a}, p) {
			used[key+" "+a] = true
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// normaliseBins turns bin (a string or an object) or directories.bin into
// name → path, as npm-normalize-package-bin does: names are base names,
// paths are kept inside the package, empty ones dropped.
func (m *manifest) normaliseBins(p *Package, files map[string]*pkgFile) {
	// Pairs in order: a later one with the same name replaces an earlier
	// one, as the later key of a JSON object does in npm.
	var raw [][2]string
	var s string
	switch {
	case len(m.Bin) == 0:
		if m.Directories.Bin != "" {
			dir := strings.TrimPrefix(path.Clean("/"+m.Directories.Bin), "/")
			prefix := p.Path + "/"
			if dir != "" {
				prefix += dir + "/"
			}
			for _, f := range sortedKeys(files) {
				if rel, ok := strings.CutPrefix(f, prefix); ok && !strings.HasPrefix(rel, ".") {
					raw = append(raw, [2]string{path.Base(rel), path.Join(dir, rel)})
				}
			}
		}
	case json.Unmarshal(m.Bin, &s) == nil:
		name := m.Name
		if name == "" {
			name = p.Name
		}
		raw = append(raw, [2]string{name, s})
	default:
		raw = orderedStrings(m.Bin)
	}
	m.bins = map[string]string{}
	for _, kv := range raw {
		k, v := kv[0], kv[1]
		name := strings.TrimPrefix(path.Clean("/"+path.Base(strings.NewReplacer("\\", "/", ":", "/").Replace(k))), "/")
		target := strings.TrimPrefix(path.Clean("/"+strings.ReplaceAll(v, "\\", "/")), "/")
		if name == "" || target == "" {
			continue
		}
		m.bins[name] = target
	}
}

// orderedStrings reads a JSON object's string members in order; other
// members, and anything that is not an object, give nothing.
func orderedStrings(b []byte) [][2]string {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var out [][2]string
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return out
		}
		k, _ := t.(string)
		var v any
		if err := d.Decode(&v); err != nil {
			return out
		}
		if vs, ok := v.(string); ok {
			out = append(out, [2]string{k, vs})
		}
	}
	return out
}

// linkBins makes node_modules/.bin links as npm's bin-links does: each
// package's bins in the node_modules folder it sits in, pointing at the
// target relatively; a target missing from the package is skipped, and
// when two packages claim a name the first (in path order) keeps it. The
// targets become 0755, with a CRLF shebang line mended.
func (pl *plan) linkBins() error {
	made := map[string]bool{}
	for _, p := range sortedKeys(pl.owners) {
		o := pl.owners[p]
		nm := path.Dir(p)
		if strings.HasPrefix(path.Base(nm), "@") {
			nm = path.Dir(nm)
		}
		for _, name := range sortedKeys(o.binMap) {
			target := p + "/" + o.binMap[name]
			f := pl.files[target]
			link := nm + "/.bin/" + name
			if f == nil || made[link] {
				continue
			}
			made[link] = true
			f.bin = true
			pl.links = append(pl.links, &entry.Header{Path: pl.treePath(link), Type: entry.TypeSymlink, Mode: 0o777,
				ModTime: pl.modTime, Linkname: "../" + strings.TrimPrefix(target, nm+"/")})
		}
	}
	sort.Slice(pl.links, func(i, j int) bool { return pl.links[i].Path < pl.links[j].Path })
	return nil
}

// dropShadowed drops a file that sits where the layout needs a folder: a
// package's folder or one above it, or a .bin folder. The folder wins,
// as when npm extracts the inner package.
func (pl *plan) dropShadowed() {
	drop := func(p string) {
		for d := p; strings.Contains(d, "/"); d = path.Dir(d) {
			if f := pl.files[d]; f != nil {
				f.n = -1
			}
		}
	}
	for p := range pl.owners {
		drop(p)
	}
	for _, l := range pl.links {
		drop(path.Dir(strings.TrimPrefix(l.Path, pl.root+"/")))
	}
}

// treePath places a lock path in the module's tree.
func (pl *plan) treePath(p string) string { return pl.root + "/" + p }

// Reader is the laid-out tree as an entry stream. Close it when done.
type Reader struct {
	pl   *plan
	dirs map[string]bool // folders already in the stream

	pending []*entry.Header // folders to hand out before the next entry
	next    *entry.Header   // the entry that follows them
	nextBdy io.Reader

	i     int     // next package to open
	cur   *stream // the tarball being read
	body  io.Reader
	links int // next link
	err   error
}

// stream is one tarball being read for the second time, hashed again.
type stream struct {
	f    fetched
	file *os.File
	h    hash.Hash
	in   io.Reader
	w    *tarWalker
}

// Next returns the next entry. Errors are sticky.
func (r *Reader) Next() (*entry.Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	h, err := r.advance()
	if err != nil {
		r.err = err
		if r.cur != nil {
			r.cur.close()
			r.cur = nil
		}
	}
	return h, err
}

func (r *Reader) advance() (*entry.Header, error) {
	if len(r.dirs) == 0 {
		r.addDirs(r.pl.root + "/node_modules")
	}
	for {
		if len(r.pending) > 0 {
			h := r.pending[0]
			r.pending = r.pending[1:]
			r.body = nil
			return h, nil
		}
		if r.next != nil {
			h := r.next
			r.body, r.next, r.nextBdy = r.nextBdy, nil, nil
			return h, nil
		}
		if r.cur == nil && r.i < len(r.pl.pkgs) {
			s, err := openStream(r.pl.pkgs[r.i], r.pl.limits)
			if err != nil {
				return nil, err
			}
			r.cur = s
			r.i++
		}
		if r.cur != nil {
			tf, err := r.cur.w.Next()
			if err == io.EOF {
				err = r.cur.finish()
				r.cur = nil
				if err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.cur.f.file, err)
			}
			if err := r.queueFile(tf); err != nil {
				return nil, err
			}
			continue
		}
		if r.links < len(r.pl.links) {
			h := r.pl.links[r.links]
			r.links++
			r.addDirs(path.Dir(h.Path))
			r.next, r.nextBdy = h, nil
			continue
		}
		return nil, io.EOF
	}
}

// addDirs queues every folder down to dir not yet in the stream.
func (r *Reader) addDirs(dir string) {
	var add []string
	for d := dir; d != "." && d != "/" && d != "" && !r.dirs[d]; d = path.Dir(d) {
		add = append(add, d)
		r.dirs[d] = true
	}
	for i := len(add) - 1; i >= 0; i-- {
		r.pending = append(r.pending, &entry.Header{Path: add[i], Type: entry.TypeDir, Mode: 0o755, ModTime: r.pl.modTime})
	}
}

// queueFile turns a tarball's file into its header (after the folders it
// needs), with its body as the layout wants it.
func (r *Reader) queueFile(tf *tarFile) error {
	f := r.cur.f
	if _, _, keep := r.pl.ownerOf(f.pkg, tf.rel); !keep {
		return nil
	}
	lockPath := f.pkg.Path + "/" + tf.rel
	pf := r.pl.files[lockPath]
	if pf == nil {
		return fmt.Errorf("%s: %s: not in the tarball when it was checked: was %s changed meanwhile?", f.pkg.ID(), tf.rel, f.file)
	}
	if pf.n != tf.n {
		return nil // replaced by a later copy, or dropped
	}
	h := &entry.Header{Path: r.pl.treePath(lockPath), Type: entry.TypeRegular, Mode: fileMode(tf.mode),
		ModTime: tf.mtime, Size: tf.size}
	var body io.Reader = io.LimitReader(r.cur.w, tf.size)
	if pf.bin {
		h.Mode = 0o755
		if pf.crlf >= 0 {
			h.Size--
			body = &dropByte{r: body, at: pf.crlf}
		}
	}
	r.addDirs(path.Dir(h.Path))
	r.next, r.nextBdy = h, body
	return nil
}

// Read reads the body of the current file.
func (r *Reader) Read(p []byte) (int, error) {
	if r.body == nil {
		return 0, io.EOF
	}
	return r.body.Read(p)
}

// Close releases the tarball being read.
func (r *Reader) Close() error {
	if r.cur != nil {
		r.cur.close()
		r.cur = nil
	}
	if r.err == nil {
		r.err = errClosed
	}
	return nil
}

var errClosed = errors.New("npm: reader closed")

func openStream(f fetched, lim Limits) (*stream, error) {
	file, err := os.Open(f.file)
	if err != nil {
		return nil, err
	}
	s := &stream{f: f, file: file, h: f.in.Hash()}
	s.in = io.TeeReader(file, s.h)
	if s.w, err = newTarWalker(s.in, f.pkg.ID(), lim); err != nil {
		file.Close()
		return nil, fmt.Errorf("%s: %w", f.file, err)
	}
	return s, nil
}

// finish reads the rest of the file and checks its digest again.
func (s *stream) finish() error {
	defer s.close()
	if _, err := io.Copy(io.Discard, s.in); err != nil {
		return fmt.Errorf("%s: %w", s.f.file, err)
	}
	return s.f.in.check(s.h, s.f.pkg.ID(), s.f.file)
}

func (s *stream) close() {
	s.w.Close()
	s.file.Close()
}

// dropByte removes the byte at offset at of r.
type dropByte struct {
	r   io.Reader
	at  int64
	off int64
}

func (d *dropByte) Read(p []byte) (int, error) {
	for {
		n, err := d.r.Read(p)
		start := d.off
		d.off += int64(n)
		if d.at >= start && d.at < d.off {
			i := int(d.at - start)
			copy(p[i:n], p[i+1:n])
			n--
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}
