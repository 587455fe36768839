package clone

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"byzantium/image/bootloader"
	"byzantium/image/clone/cloneapi"
	"byzantium/image/fat"
	"byzantium/image/media"
	"byzantium/image/usbimg"
	"byzantium/internal/bytesize"
	"byzantium/modules"
	"byzantium/modules/entry"
	"byzantium/overlays"
	"byzantium/runtime/savedat/mkfs"
)

// Result describes a finished clone: the "done" line of
// --progress=json, which byzd reads without linking this package.
type Result = cloneapi.Result

// Write writes the clone onto t. Files from the source are checked
// against its manifest as they are written; the FAT partition is then
// synced, read back from t (from the device itself, not the page cache)
// and checked against the clone's own manifest; only then is the
// partition table written and synced. Whatever fails, t is left without a
// partition table (an image file is not renamed into place). ctx stops it
// between two reads of the source. A target that is the source, holds it
// or lives under it (System.SameAsSource) is refused before anything is
// written.
func (p *Plan) Write(ctx context.Context, t *Target, prog *Progress) (res *Result, err error) {
	if err := (System{}).SameAsSource(p.src, t.Path); err != nil {
		return nil, err
	}
	prog.set("prepare", 0)
	tmp := p.opts.TempDir
	if tmp == "" {
		tmp = os.TempDir()
	}
	scratch, err := os.MkdirTemp(tmp, "byz-clone-")
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	defer os.RemoveAll(scratch)

	m := media.Media{Flavour: bootloader.USB, FS: p.src.FS, Digests: p.src.Sums,
		Kernel: bootloader.KernelPath, Initramfs: bootloader.InitramfsPath,
		Base: p.Base, Modules: p.Modules, Optional: p.Optional,
		Menu: p.src.Info.Config(), ModTime: p.src.Info.ModTime(), Unlisted: p.unlisted}
	if p.rootcopy {
		m.Rootcopy = []string{overlays.RootcopyDir}
	}
	res = &Result{Target: t.Path, Size: t.Size, SourceID: p.src.ID}
	for _, l := range [][]string{p.Base, p.Modules, p.Optional} {
		for _, f := range l {
			if p.unlisted[f] {
				res.Unlisted = append(res.Unlisted, f)
			}
		}
	}
	if p.opts.State != "" && !p.StateInSaveDat {
		out := filepath.Join(scratch, p.stateFile())
		host, _ := os.Hostname()
		_, err := modules.Create([]string{p.opts.State}, out, modules.CreateOptions{
			Name: p.stateName(), Exclude: p.exclude(),
			SourceNames: []string{"changes of " + host + " at " + p.opts.Now.UTC().Format(time.RFC3339)},
		})
		if err != nil {
			return nil, fmt.Errorf("clone: the node's changes: %w", err)
		}
		res.StateModule = overlays.FolderPath(overlays.FolderModules) + "/" + p.stateFile()
		m.FS = unionFS{FS: p.src.FS, extra: map[string]string{res.StateModule: out}}
		m.Modules = append(append([]string(nil), p.Modules...), res.StateModule)
	}
	if m.Loader, err = media.LoaderFromFS(p.src.FS, p.src.Sums); err != nil {
		return nil, mismatch(fmt.Errorf("clone: %s: %w", p.src.Name, err))
	}
	mbr, core, err := m.Loader.GrubPC(usbimg.BIOSBootLBA)
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	seed := make([]byte, 32)
	rand.Read(seed)
	m.IDSalt = make([]byte, 16)
	rand.Read(m.IDSalt)
	tree, err := media.Plan(m)
	if err != nil {
		return nil, mismatch(fmt.Errorf("clone: %w", err))
	}
	res.MediaID = tree.ID
	var man media.Manifest
	if err := json.Unmarshal(tree.Manifest, &man); err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	msum := sha256.Sum256(tree.Manifest)
	man.Files = append(man.Files, media.ManifestFile{Path: overlays.ManifestPath, Size: int64(len(tree.Manifest)), SHA256: hex.EncodeToString(msum[:])})

	var stream entry.Reader = tree.Reader()
	hs := make([]entry.Header, 0, len(man.Files)+1)
	for _, f := range man.Files {
		hs = append(hs, entry.Header{Path: f.Path, Type: entry.TypeRegular, Size: f.Size})
		res.Bytes += f.Size
	}
	var saveSum hash.Hash
	if p.opts.SaveSize > 0 {
		prog.set("prepare", 0)
		so := mkfs.Options{Size: p.opts.SaveSize, Passphrase: p.opts.Passphrase, KDF: p.opts.KDF}
		if p.StateInSaveDat {
			so.Fill = p.fillState(scratch)
			res.StateInSaveDat = true
		}
		sd, err := mkfs.NewStream(scratch, so)
		if err != nil {
			return nil, fmt.Errorf("clone: %w", err)
		}
		defer sd.Close()
		saveSum = sha256.New()
		mtime := p.src.Info.ModTime()
		stream = entry.Concat(stream, &oneFile{hdrs: []*entry.Header{
			{Path: filepath.Dir(overlays.DefaultSaveDat), Type: entry.TypeDir, Mode: 0o755, ModTime: mtime},
			{Path: overlays.DefaultSaveDat, Type: entry.TypeRegular, Mode: 0o644, ModTime: mtime, Size: sd.Size}},
			body: io.TeeReader(sd, saveSum)})
		hs = append(hs, entry.Header{Path: overlays.DefaultSaveDat, Type: entry.TypeRegular, Size: sd.Size})
		res.Bytes += sd.Size
	}
	res.Files = len(hs)
	// The exact check, now that the state module's size is known.
	sp, l, err := space(t.Size, hs)
	if err != nil {
		return nil, err
	}
	if !sp.Fits() {
		return nil, fmt.Errorf("%w: %s has %s for %s of clusters", ErrTooSmall, t.Path, bytesize.Format(sp.Have), bytesize.Format(sp.Need))
	}
	f := fit(sp, l)
	res.Free, res.SaveDatRoom, res.SaveDat, res.Unpartitioned = f.Have-f.Need, f.SaveDatRoom, p.opts.SaveSize > 0, f.Unpartitioned

	var layout *usbimg.Layout
	start := time.Now()
	prog.set("write", res.Bytes)
	verify := func(l *usbimg.Layout) error {
		layout = l
		res.Write = time.Since(start)
		vstart := time.Now()
		defer func() { res.Verify = time.Since(vstart) }()
		prog.set("verify", res.Bytes)
		if err := t.dropCache(); err != nil {
			return err
		}
		workers := 1
		if t.Device == nil {
			workers = min(runtime.GOMAXPROCS(0), 4)
		}
		return readBack(ctx, t.f, l.FAT.Offset(), man.Files, saveSum, workers, prog)
	}
	ra := newReadahead(&meter{r: stream, ctx: ctx, prog: prog})
	defer ra.Close()
	err = usbimg.WriteDisk(t.disk(), ra, usbimg.Options{
		Size: t.Size, Seed: seed, ModTime: p.src.Info.ModTime(), BootCode: mbr, BIOSCore: core,
		Wipe: t.used, Sparse: !t.used, Verify: verify,
	})
	if err != nil {
		return nil, mismatch(err)
	}
	prog.set("finish", 0)
	if err := t.finish(); err != nil {
		return nil, err
	}
	res.DiskGUID = layout.Table.DiskGUID.String()
	res.PartGUID = layout.FAT.GUID.String()
	res.VolumeID = fmt.Sprintf("%04X-%04X", layout.VolumeID>>16, layout.VolumeID&0xffff)
	return res, nil
}

// mismatch makes a changed-input error from image/media an ErrMismatch too.
func mismatch(err error) error {
	if errors.Is(err, media.ErrChanged) && !errors.Is(err, ErrMismatch) {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	return err
}

// readBack reads every file of the manifest (and the save.dat, whose
// digest was taken as it was written) from the FAT partition at offset in
// r and compares it, with workers files at a time.
func readBack(ctx context.Context, r io.ReaderAt, offset int64, files []media.ManifestFile, saveSum hash.Hash, workers int, prog *Progress) error {
	fsys, err := fat.OpenFS(r, offset)
	if err != nil {
		return fmt.Errorf("%w: reading the clone back: %w", ErrMismatch, err)
	}
	if saveSum != nil {
		files = append(files, media.ManifestFile{Path: overlays.DefaultSaveDat, SHA256: hex.EncodeToString(saveSum.Sum(nil))})
	}
	// The biggest files first, so that no worker is left with one at the
	// end; a stick is read by one worker, in the order written.
	if workers > 1 {
		files = slices.Clone(files)
		slices.SortStableFunc(files, func(a, b media.ManifestFile) int { return cmp.Compare(b.Size, a.Size) })
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan media.ManifestFile)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunkSize)
			for f := range next {
				prog.setFile(f.Path)
				if err := checkFile(fsys, f, buf, prog); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, f := range files {
		select {
		case next <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("clone: %w", err)
		}
		return err
	}
	return nil
}

func checkFile(fsys fs.FS, want media.ManifestFile, buf []byte, prog *Progress) error {
	fl, err := fsys.Open(want.Path)
	if err != nil {
		return fmt.Errorf("%w: reading back %s: %w", ErrMismatch, want.Path, err)
	}
	defer fl.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, &counted{fl, prog}, buf)
	if err != nil {
		return fmt.Errorf("%w: reading back %s: %w", ErrMismatch, want.Path, err)
	}
	if want.Size > 0 && n != want.Size {
		return fmt.Errorf("%w: %s reads back as %d bytes, the manifest says %d", ErrMismatch, want.Path, n, want.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("%w: %s reads back with sha256 %s, the manifest says %s", ErrMismatch, want.Path, got, want.SHA256)
	}
	return nil
}

type counted struct {
	r    io.Reader
	prog *Progress
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.prog.add(int64(n))
	return n, err
}

// meter passes a stream through, counting it into prog and stopping when
// ctx is done.
type meter struct {
	r    entry.Reader
	ctx  context.Context
	prog *Progress
}

func (m *meter) Next() (*entry.Header, error) {
	if err := m.ctx.Err(); err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	h, err := m.r.Next()
	if err == nil && h.Type == entry.TypeRegular {
		m.prog.setFile(h.Path)
	}
	return h, err
}

func (m *meter) Read(p []byte) (int, error) {
	if err := m.ctx.Err(); err != nil {
		return 0, fmt.Errorf("clone: %w", err)
	}
	n, err := m.r.Read(p)
	m.prog.add(int64(n))
	return n, err
}

// oneFile is a stream of a few headers of which the last regular one has
// body.
type oneFile struct {
	hdrs []*entry.Header
	body io.Reader
	i    int
}

func (o *oneFile) Next() (*entry.Header, error) {
	if o.i >= len(o.hdrs) {
		return nil, io.EOF
	}
	o.i++
	h := *o.hdrs[o.i-1]
	return &h, nil
}

func (o *oneFile) Read(p []byte) (int, error) {
	if o.i == 0 || o.hdrs[o.i-1].Type != entry.TypeRegular {
		return 0, io.EOF
	}
	return o.body.Read(p)
}
