package clone

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"byzantium/image/bootloader"
	"byzantium/image/fat"
	"byzantium/image/usbimg"
	"byzantium/internal/bytesize"
	"byzantium/modules"
	"byzantium/modules/entry"
	"byzantium/overlays"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"
)

// Plan is what a clone writes, known before anything is written.
type Plan struct {
	src  *Source
	opts Options
	// Base, Modules and Optional are the module files taken from the
	// source (paths in it).
	Base, Modules, Optional []string
	// Left are the optional modules left behind (Options.Modules).
	Left []string
	// Added are the module files on the source that its manifest does
	// not list: dropped onto the stick by hand (the media invites it).
	// They go along as found, marked unlisted in the clone's manifest,
	// since nothing vouches for them.
	Added []string
	// StateInSaveDat says the node's changes (Options.State) go into the
	// upper layer of the clone's encrypted save.dat rather than into a
	// module: with a passphrase, nothing of them reaches the stick in the
	// clear.
	StateInSaveDat bool
	// unlisted are the files the clone's manifest marks unlisted: Added,
	// and those the source's own manifest marked so.
	unlisted map[string]bool
	// Items is every file the clone holds, sorted by path: the source's
	// (From "source"), the ones made for it (boot configs, marker,
	// manifest: "new", their sizes the source's), the save.dat and the
	// state module ("state", its size an upper bound until it is made),
	// the modules added by hand ("added").
	Items    []Item
	rootcopy bool
}

// Item is one file of a clone.
type Item struct {
	Path string
	Size int64
	From string // "source", "new", "save.dat", "state", "added"
}

// NewPlan decides what a clone of src with opts holds. It reads only the
// source's manifest and folder listings, and with a State folder, that
// folder's listing.
func NewPlan(src *Source, opts Options) (*Plan, error) {
	if opts.SaveSize != 0 {
		min := int64(savedat.MinSize)
		if opts.Passphrase != nil {
			min += luks2.DataOffset
		}
		switch {
		case opts.SaveSize%(1<<20) != 0 || opts.SaveSize < min:
			return nil, fmt.Errorf("%w: save.dat size %s: a whole number of MiB, at least %s", ErrBadOption, bytesize.Format(opts.SaveSize), mib(min))
		case opts.SaveSize > MaxSaveDat:
			return nil, fmt.Errorf("%w: save.dat size %s: the save.dat is a file on the stick's FAT32 partition, and FAT32 holds no file of 4 GiB or more: at most %s (--save-size %dM)",
				ErrBadOption, mib(opts.SaveSize), mib(MaxSaveDat), MaxSaveDat>>20)
		}
	} else if opts.Passphrase != nil {
		return nil, fmt.Errorf("%w: a passphrase, but no save.dat to encrypt", ErrBadOption)
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	p := &Plan{src: src, opts: opts, unlisted: map[string]bool{}}
	if len(src.modules(overlays.FolderBase)) == 0 {
		return nil, fmt.Errorf("%w: %s: its manifest names no module in byzantium/base", ErrNotMedia, src.Name)
	}
	if _, ok := src.Sums[bootloader.GrubPCMediaDir+"/kernel.img"]; !ok {
		return nil, fmt.Errorf("%w: %s has no %s/ (GRUB's BIOS files, which media made before clones existed lack): rebuild it with this byz",
			ErrNotMedia, src.Name, bootloader.GrubPCMediaDir)
	}
	want := map[string]bool{}
	for _, m := range opts.Modules {
		want[m] = true
	}
	var missing []string
	layers := map[string][]string{}
	for _, layer := range overlays.Folders() {
		found, gone, err := p.layer(layer)
		if err != nil {
			return nil, err
		}
		layers[layer] = found
		for _, f := range gone {
			// An optional module --modules leaves out is not missed.
			if layer != overlays.FolderOptional || opts.Modules == nil || want[modules.NameFromFile(f)] {
				missing = append(missing, f)
			}
		}
	}
	if len(missing) > 0 {
		return nil, p.missing(missing)
	}
	p.Base, p.Modules = layers[overlays.FolderBase], layers[overlays.FolderModules]
	var names []string
	for _, f := range layers[overlays.FolderOptional] {
		name := modules.NameFromFile(f)
		names = append(names, name)
		if opts.Modules == nil || want[name] {
			p.Optional = append(p.Optional, f)
			delete(want, name)
		} else {
			p.Left = append(p.Left, f)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for m := range want {
			unknown = append(unknown, m)
		}
		slices.Sort(unknown)
		return nil, fmt.Errorf("%w: no optional module %s on %s (it has: %s)", ErrBadOption,
			strings.Join(unknown, ", "), src.Name, strings.Join(names, ", "))
	}
	var err error
	if p.rootcopy, err = src.checkRootcopy(); err != nil {
		return nil, err
	}
	taken := map[string]bool{bootloader.KernelPath: true, bootloader.InitramfsPath: true}
	for _, l := range [][]string{p.Base, p.Modules, p.Optional} {
		for _, f := range l {
			taken[f] = true
		}
	}
	for f := range src.Sums {
		switch {
		case taken[f], p.rootcopy && strings.HasPrefix(f, overlays.RootcopyDir+"/"),
			strings.HasPrefix(f, "EFI/BOOT/"), strings.HasPrefix(f, bootloader.GrubPCMediaDir+"/"), f == overlays.BootInfoPath:
			p.Items = append(p.Items, Item{f, src.Sums[f].Size, "source"})
		case strings.HasSuffix(f, "grub.cfg"):
			p.Items = append(p.Items, Item{f, src.Sums[f].Size, "new"})
		}
	}
	for _, f := range p.Added {
		if taken[f] {
			fi, err := fs.Stat(src.FS, f)
			if err != nil {
				return nil, fmt.Errorf("clone: %s: %s: %w", src.Name, f, err)
			}
			p.Items = append(p.Items, Item{f, fi.Size(), "added"})
		}
	}
	if err := p.checkSources(); err != nil {
		return nil, err
	}
	if m, ok := src.Sums[overlays.MarkerPath(src.ID)]; ok {
		p.Items = append(p.Items, Item{overlays.MarkerPath("<new ID>"), m.Size, "new"})
	}
	if fi, err := fs.Stat(src.FS, overlays.ManifestPath); err == nil {
		p.Items = append(p.Items, Item{overlays.ManifestPath, fi.Size() + 512, "new"})
	}
	if opts.SaveSize > 0 {
		p.Items = append(p.Items, Item{overlays.DefaultSaveDat, opts.SaveSize, "save.dat"})
	}
	if opts.State != "" {
		sz, err := stateUsage(opts.State, p.exclude())
		if err != nil {
			return nil, err
		}
		if p.StateInSaveDat = opts.Passphrase != nil; p.StateInSaveDat {
			// Encrypting: the changes go into the new save.dat's upper
			// layer, under its encryption, never onto the stick in the
			// clear. They are written through the kernel (a loop device
			// and an ext4 mount), which takes root.
			if os.Geteuid() != 0 {
				return nil, fmt.Errorf("%w: with --encrypt, the node's changes go inside the encrypted save.dat, written through a loop device and an ext4 mount: run as root", ErrBadOption)
			}
			if err := saveDatFits(sz, opts.SaveSize); err != nil {
				return nil, err
			}
		} else {
			p.Items = append(p.Items, Item{overlays.FolderPath(overlays.FolderModules) + "/" + p.stateFile(), sz.Module, "state"})
		}
	}
	slices.SortFunc(p.Items, func(a, b Item) int { return strings.Compare(a.Path, b.Path) })
	return p, nil
}

// layer lists the module files of one layer folder ("base", "modules",
// "optional") to take, sorted: those the source's manifest lists and
// those found on the media that it does not (Added), as byz-init would
// load them (any file whose name ends in .xzm, in any case). gone are
// the listed ones that are not on the media.
func (p *Plan) layer(layer string) (found, gone []string, err error) {
	dir := overlays.FolderPath(layer)
	ents, err := fs.ReadDir(p.src.FS, dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("clone: %s: %s: %w", p.src.Name, dir, err)
	}
	onMedia := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !overlays.IsModuleFile(name) {
			continue
		}
		f := dir + "/" + name
		onMedia[f] = true
		if _, listed := p.src.Sums[f]; listed {
			continue
		}
		if !strings.HasSuffix(name, overlays.ModuleExt) {
			return nil, nil, fmt.Errorf("%w: %s, added to %s by hand: byz-init loads it, but media keep module names ending in %s: rename it to %s",
				ErrBadOption, f, p.src.Name, overlays.ModuleExt, strings.TrimSuffix(name, path.Ext(name))+overlays.ModuleExt)
		}
		found = append(found, f)
		p.Added = append(p.Added, f)
		p.unlisted[f] = true
	}
	for _, f := range p.src.modules(layer) {
		if !onMedia[f] {
			gone = append(gone, f)
			continue
		}
		found = append(found, f)
		if p.src.Sums[f].Unlisted {
			p.unlisted[f] = true
		}
	}
	slices.Sort(found)
	slices.Sort(p.Added)
	return found, gone, nil
}

// missing explains the files the source's manifest lists that are not on
// the media.
func (p *Plan) missing(files []string) error {
	slices.Sort(files)
	what := "it is"
	if len(files) > 1 {
		what = "they are"
	}
	hint := "put it back (from the build's output folder, or from another stick of media " + p.src.ID + "), or rebuild the media"
	var optional []string
	for _, f := range files {
		if strings.HasPrefix(f, overlays.FolderPath(overlays.FolderOptional)+"/") {
			optional = append(optional, modules.NameFromFile(f))
		}
	}
	if len(optional) == len(files) {
		hint += ", or leave " + strings.Join(optional, ", ") + " out with --modules (naming the optional modules to take)"
	}
	return fmt.Errorf("%w: %s: %s in the source's manifest but not on the media (removed by hand?): %s",
		ErrMissing, strings.Join(files, ", "), what, hint)
}

// checkSources makes sure every file the clone takes from the source is
// there with the size the source's manifest gives, so that a file removed
// or replaced by hand is named before anything is written, not met
// halfway through.
func (p *Plan) checkSources() error {
	var missing []string
	for _, it := range p.Items {
		if it.From != "source" {
			continue
		}
		fi, err := fs.Stat(p.src.FS, it.Path)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, it.Path)
			continue
		}
		if err != nil {
			return fmt.Errorf("clone: %s: %s: %w", p.src.Name, it.Path, err)
		}
		if fi.Size() != it.Size {
			return fmt.Errorf("%w: %s is %s on %s, the source's manifest says %s (replaced by hand?): put the original back, or rebuild the media",
				ErrMismatch, it.Path, bytesize.Format(fi.Size()), p.src.Name, bytesize.Format(it.Size))
		}
	}
	if len(missing) > 0 {
		return p.missing(missing)
	}
	return nil
}

// exclude is what the state module leaves out.
func (p *Plan) exclude() []string {
	if p.opts.WithSecrets {
		return NeverCopied
	}
	return Secrets
}

// stateFile names the state module: above every module of the source,
// including an older clone's state module (999-state-...).
func (p *Plan) stateFile() string {
	return "999-" + p.stateName() + overlays.ModuleExt
}

func (p *Plan) stateName() string {
	return "state-" + p.opts.Now.UTC().Format("20060102-150405")
}

// stateSize is what an upper folder takes, without what is excluded.
type stateSize struct {
	// Module is an upper bound of the module it makes: its files' sizes,
	// plus room for metadata (squashfs compresses, and stores
	// incompressible blocks as they are).
	Module int64
	// Blocks is what it takes in 4 KiB blocks (files and folders), and
	// Entries how many inodes: what it needs in an ext4 file system.
	Blocks, Entries int64
}

func stateUsage(dir string, exclude []string) (stateSize, error) {
	sz := stateSize{Module: 64 << 10}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && entry.Excluded(filepath.ToSlash(rel), exclude) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		sz.Module += 256 // inode, directory entry
		sz.Entries++
		switch {
		case d.Type().IsRegular():
			if fi, err := d.Info(); err == nil {
				sz.Module += fi.Size() + fi.Size()/64
				sz.Blocks += (fi.Size() + 4095) &^ 4095
			}
		case d.IsDir():
			sz.Blocks += 4096
		}
		return nil
	})
	if err != nil {
		return stateSize{}, fmt.Errorf("clone: the node's changes: %w", err)
	}
	return sz, nil
}

// saveDatFits checks that the changes fit in the file system of an
// encrypted save.dat of size bytes: room for their blocks (a save.dat's
// ext4 leaves about nine tenths of its size for files, less 4 MiB) and an
// inode each (one per 8 KiB).
func saveDatFits(sz stateSize, size int64) error {
	fsSize := size - luks2.DataOffset
	blocks := fsSize*9/10 - 4<<20
	inodes := fsSize/8192 - 16
	if sz.Blocks <= blocks && sz.Entries <= inodes {
		return nil
	}
	need := max((sz.Blocks+4<<20)*10/9, (sz.Entries+16)*8192) + luks2.DataOffset
	need = (need + 1<<20 - 1) &^ (1<<20 - 1)
	return fmt.Errorf("%w: the node's changes (%s in %d files and folders) do not fit in an encrypted save.dat of %s (about %s and %d files usable): --save-size %dM or more",
		ErrBadOption, bytesize.Format(sz.Blocks), sz.Entries, mib(size), bytesize.Format(blocks), inodes, need>>20)
}

// Bytes is the total size of the files the clone holds.
func (p *Plan) Bytes() int64 {
	var n int64
	for _, it := range p.Items {
		n += it.Size
	}
	return n
}

// headers lists the items as entries, for fat.Need.
func (p *Plan) headers() []entry.Header {
	hs := make([]entry.Header, 0, len(p.Items))
	for _, it := range p.Items {
		hs = append(hs, entry.Header{Path: it.Path, Type: entry.TypeRegular, Size: it.Size})
	}
	return hs
}

// MaxSaveDat is the largest save.dat a clone makes: FAT32's largest
// file (4 GiB − 1 byte) in whole MiB.
const MaxSaveDat = usbimg.MaxFileSize &^ (1<<20 - 1)

// Space says what the clone needs on a disk of diskSize bytes and what
// that disk's FAT partition has.
func (p *Plan) Space(diskSize int64) (fat.Space, error) {
	sp, _, err := space(diskSize, p.headers())
	return sp, err
}

// Fit says how the clone sits on a disk of diskSize bytes.
type Fit struct {
	fat.Space
	// FATSize is the FAT partition's size; Unpartitioned what is left of
	// the disk after it (on a disk larger than FAT32's 2 TiB).
	FATSize, Unpartitioned int64
	// SaveDatRoom is the largest save.dat that fits in the free space
	// the clone leaves (0: none, the smallest being savedat.MinSize).
	SaveDatRoom int64
}

// Fit says how the clone sits on a disk of diskSize bytes: the space it
// needs and has, the FAT partition, and the room left for a save.dat.
func (p *Plan) Fit(diskSize int64) (Fit, error) {
	sp, l, err := space(diskSize, p.headers())
	if err != nil {
		return Fit{}, err
	}
	return fit(sp, l), nil
}

func fit(sp fat.Space, l *usbimg.Layout) Fit {
	return Fit{Space: sp, FATSize: l.FAT.Size(), Unpartitioned: l.Unpartitioned, SaveDatRoom: saveDatRoom(sp)}
}

// saveDatRoom is the largest save.dat (whole MiB, at most MaxSaveDat)
// that the free clusters hold, keeping a cluster for the folder that may
// have to be made for it.
func saveDatRoom(sp fat.Space) int64 {
	free := sp.Have - sp.Need - sp.ClusterSize
	room := min(free, MaxSaveDat) &^ (1<<20 - 1)
	if room < savedat.MinSize {
		return 0
	}
	return room
}

func space(diskSize int64, hs []entry.Header) (fat.Space, *usbimg.Layout, error) {
	l, err := usbimg.Plan(usbimg.Options{Size: diskSize, Seed: []byte("size")})
	if err != nil {
		return fat.Space{}, nil, fmt.Errorf("%w: a disk of %s: %w", ErrTooSmall, bytesize.Format(diskSize), err)
	}
	sp, err := fat.Need(l.FAT.Size(), hs)
	if err != nil {
		return fat.Space{}, nil, fmt.Errorf("%w: a disk of %s: %w", ErrTooSmall, bytesize.Format(diskSize), err)
	}
	return sp, l, nil
}

// ImageSize is the size of an image file target when none is given:
// the source disk's (a clone of an image is an image of the same size,
// its room for a save.dat included), or the smallest that holds the
// clone when that is more, or when the source is a folder.
func (p *Plan) ImageSize() int64 {
	return max(p.MinSize(), p.src.DiskSize&^(1<<20-1))
}

// MinSize is the smallest disk (a whole number of MiB) the clone fits on.
// A clone too large for FAT32's 2 TiB fits on no disk: MinSize is then
// math.MaxInt64, which every fit check refuses.
func (p *Plan) MinSize() int64 {
	size, err := usbimg.MinSize(p.headers(), 0, 0)
	if err != nil {
		return math.MaxInt64
	}
	return size
}

// Print writes the plan for a person: what comes from where, what is
// left behind, the space needed, and for a target of targetSize bytes
// (0: none yet), whether it fits.
func (p *Plan) Print(w io.Writer, targetSize int64) error {
	ew := &errWriter{w: w}
	w = ew
	fmt.Fprintf(w, "source: %s (media %s)\n", p.src.Name, p.src.ID)
	fmt.Fprintf(w, "  %11s  %-8s  %s\n", "size", "from", "path")
	for _, it := range p.Items {
		size := bytesize.Format(it.Size)
		if it.From == "state" {
			size = "≤ " + size
		}
		fmt.Fprintf(w, "  %11s  %-8s  %s\n", size, it.From, it.Path)
	}
	for _, l := range p.Left {
		fmt.Fprintf(w, "left out: %s (not in --modules)\n", l)
	}
	for _, a := range p.Added {
		if slices.Contains(p.Left, a) {
			continue
		}
		fmt.Fprintf(w, "added by hand: %s is not in the source's manifest: it goes along as found, marked \"unlisted\" in the clone's manifest (nothing vouches for it)\n", a)
	}
	if p.StateInSaveDat {
		what := "identity and secrets included, but for the mesh identity"
		if !p.opts.WithSecrets {
			what = "without " + strings.Join(Secrets, " ")
		}
		fmt.Fprintf(w, "the node's changes go inside the encrypted save.dat, in its upper layer (which byz-init stacks on top at boot), %s: nothing of them is written to the stick in the clear\n", what)
	} else if p.opts.State != "" {
		if p.opts.WithSecrets {
			fmt.Fprintf(w, "the node's changes go along as byzantium/modules/%s, identity and secrets included but for the mesh identity\n", p.stateFile())
		} else {
			fmt.Fprintf(w, "the node's changes go along as byzantium/modules/%s, without %s\n", p.stateFile(), strings.Join(Secrets, " "))
		}
	}
	if p.opts.SaveSize > 0 {
		kind := "plain"
		if p.opts.Passphrase != nil {
			kind = "LUKS2-encrypted with the new passphrase"
		}
		fmt.Fprintf(w, "a fresh save.dat of %s, %s\n", bytesize.Format(p.opts.SaveSize), kind)
	}
	min := p.MinSize()
	fmt.Fprintf(w, "files: %s in %d; needs a disk of at least %s (%d bytes: files in whole clusters, FAT, GPT and 1 MiB alignment)\n",
		bytesize.Format(p.Bytes()), len(p.Items), bytesize.Format(min), min)
	if targetSize > 0 {
		f, err := p.Fit(targetSize)
		switch {
		case err != nil:
			fmt.Fprintf(w, "target: %s: TOO SMALL (%v)\n", bytesize.Format(targetSize), err)
		case f.Fits():
			fmt.Fprintf(w, "target: %s, FAT partition with %s for %s of clusters: fits\n", bytesize.Format(targetSize), bytesize.Format(f.Have), bytesize.Format(f.Need))
			p.printRoom(w, f)
		default:
			fmt.Fprintf(w, "target: %s, FAT partition with %s for %s of clusters: TOO SMALL\n", bytesize.Format(targetSize), bytesize.Format(f.Have), bytesize.Format(f.Need))
		}
	}
	return ew.err
}

// printRoom says what a disk has beyond the clone: past FAT32's limit,
// and room for a save.dat.
func (p *Plan) printRoom(w io.Writer, f Fit) {
	if f.Unpartitioned > 0 {
		fmt.Fprintf(w, "the FAT partition stops at FAT32's limit of %s; the other %s of the disk are left unpartitioned\n",
			bytesize.Format(f.FATSize), bytesize.Format(f.Unpartitioned))
	}
	bound := ""
	if p.opts.State != "" && p.opts.Passphrase == nil {
		bound = "at least " // the state module's size is an upper bound
	}
	switch {
	case p.opts.SaveSize > 0:
		fmt.Fprintf(w, "free on the FAT partition after the save.dat: %s%s\n", bound, bytesize.Format(f.Have-f.Need))
	case f.SaveDatRoom > 0:
		fmt.Fprintf(w, "room for a save.dat: %sup to %s (add one later: byz persist create --size %dM)\n", bound, mib(f.SaveDatRoom), f.SaveDatRoom>>20)
	default:
		fmt.Fprintf(w, "room for a save.dat: NONE (%s free; one needs at least %s): give a larger target (--size for an image), or --save-size to make one now\n",
			bytesize.Format(max(0, f.Have-f.Need)), mib(savedat.MinSize))
	}
}

// RoomLine says, after a clone, how much room its FAT partition has for a
// save.dat, for a person.
func RoomLine(r *Result) string {
	switch {
	case r.SaveDat:
		return fmt.Sprintf("the save.dat is in place; %s free on the FAT partition", bytesize.Format(r.Free))
	case r.SaveDatRoom > 0:
		return fmt.Sprintf("room for a save.dat: up to %s (byz persist create --size %dM)", mib(r.SaveDatRoom), r.SaveDatRoom>>20)
	default:
		return fmt.Sprintf("no room for a save.dat (%s free; one needs %s): clone onto a larger target, or with --save-size", bytesize.Format(r.Free), mib(savedat.MinSize))
	}
}

// errWriter keeps the first error of a series of writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// mib formats a size that is a whole number of MiB exactly, as a
// save.dat size is given ("4095 MiB", "1 GiB").
func mib(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return bytesize.Format(n)
}

// unionFS is the source with extra files from the host (the state
// module) at given paths.
type unionFS struct {
	fs.FS
	extra map[string]string // path in the tree → host file
}

func (u unionFS) Open(name string) (fs.File, error) {
	if host, ok := u.extra[name]; ok {
		return os.Open(host)
	}
	return u.FS.Open(name)
}
