package boot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"byzantium/image/grubpc"
)

// BootInfoPath is the machine-readable record of the boot menu in the
// media tree: what a clone of the media needs to write the same menu
// under its own media ID. It does not embed the ID, so it is part of the
// payload (and of the manifest).
const BootInfoPath = "byzantium/boot.json"

// GrubPCMediaDir holds, on USB media, the files of GRUB's i386-pc folder
// that the BIOS core image is made of (LoaderFromFS reads them back). It
// is also where the BIOS GRUB would look for more modules ($prefix is
// /boot/grub), though it never needs to.
const GrubPCMediaDir = GrubCfgDir + "/" + GrubPCDir

// BootInfo is the content of byzantium/boot.json.
type BootInfo struct {
	Flavour   string      `json:"flavour"`
	Title     string      `json:"title,omitempty"`
	Cmdline   string      `json:"cmdline,omitempty"`
	Entries   []InfoEntry `json:"entries"`
	TimeoutMS int64       `json:"timeout_ms,omitempty"`
	// Locked is Config.Locked: a clone locks its menu as the media did.
	Locked bool `json:"locked,omitempty"`
	// Epoch is the media's SOURCE_DATE_EPOCH (Media.ModTime), Unix
	// seconds.
	Epoch int64 `json:"epoch"`
}

// InfoEntry is one menu entry in boot.json.
type InfoEntry struct {
	Label   string `json:"label"`
	Append  string `json:"append,omitempty"`
	Default bool   `json:"default,omitempty"`
}

// Config returns the menu the media was made with (MediaID left empty).
func (b *BootInfo) Config() Config {
	c := Config{Title: b.Title, Cmdline: b.Cmdline, Timeout: time.Duration(b.TimeoutMS) * time.Millisecond, Locked: b.Locked}
	for _, e := range b.Entries {
		c.Entries = append(c.Entries, Entry(e))
	}
	return c
}

// ModTime returns the media's epoch.
func (b *BootInfo) ModTime() time.Time { return time.Unix(b.Epoch, 0).UTC() }

// bootInfo encodes boot.json for m.
func bootInfo(m *Media, mtime time.Time) ([]byte, error) {
	b := BootInfo{Flavour: m.Flavour.String(), Title: m.Menu.Title, Cmdline: m.Menu.Cmdline,
		TimeoutMS: m.Menu.Timeout.Milliseconds(), Epoch: mtime.Unix(), Entries: []InfoEntry{}, Locked: m.Menu.Locked}
	for _, e := range m.Menu.Entries {
		b.Entries = append(b.Entries, InfoEntry(e))
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("boot: %s: %w", BootInfoPath, err)
	}
	return append(out, '\n'), nil
}

// ReadBootInfo reads the boot menu record of the media tree in fsys.
// Media made before boot.json existed have their menu read back from the
// GRUB config instead (the flavour from the files present, the epoch from
// the manifest's time): every entry keeps its label and full command line
// but the media ID, and the title, which only isolinux shows, is lost.
func ReadBootInfo(fsys fs.FS) (*BootInfo, error) {
	b, err := fs.ReadFile(fsys, BootInfoPath)
	if err == nil {
		var bi BootInfo
		if err := json.Unmarshal(b, &bi); err != nil {
			return nil, fmt.Errorf("boot: %s: %w", BootInfoPath, err)
		}
		if len(bi.Entries) == 0 {
			return nil, fmt.Errorf("%w: %s lists no menu entries", ErrBadMedia, BootInfoPath)
		}
		return &bi, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("boot: %w", err)
	}
	cfg, err := fs.ReadFile(fsys, GrubCfgDisk)
	if err != nil {
		return nil, fmt.Errorf("%w: no %s and no %s to read the boot menu from: %w", ErrBadMedia, BootInfoPath, GrubCfgDisk, err)
	}
	bi, err := parseGrub(cfg)
	if err != nil {
		return nil, err
	}
	bi.Flavour = USB.String()
	if _, err := fs.Stat(fsys, isolinuxCfg); err == nil {
		bi.Flavour = ISO.String()
	}
	if fi, err := fs.Stat(fsys, ManifestPath); err == nil {
		bi.Epoch = fi.ModTime().Unix()
	}
	return bi, nil
}

var (
	grubEntry   = regexp.MustCompile(`^menuentry '([^']*)'(?: --unrestricted)? \{$`)
	grubLinux   = regexp.MustCompile(`^\s*linux /` + regexp.QuoteMeta(KernelPath) + ` (.*)$`)
	grubTimeout = regexp.MustCompile(`^set timeout=(\d+)$`)
	grubDefault = regexp.MustCompile(`^set default=(\d+)$`)
)

// parseGrub reads back a grub.cfg that Grub wrote.
func parseGrub(cfg []byte) (*BootInfo, error) {
	bi := &BootInfo{}
	def := 0
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	for sc.Scan() {
		l := sc.Text()
		if m := grubTimeout.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			bi.TimeoutMS = int64(n) * 1000
		}
		if m := grubDefault.FindStringSubmatch(l); m != nil {
			def, _ = strconv.Atoi(m[1])
		}
		if l == `set superusers=""` {
			bi.Locked = true
		}
		if m := grubEntry.FindStringSubmatch(l); m != nil {
			bi.Entries = append(bi.Entries, InfoEntry{Label: m[1]})
		}
		if m := grubLinux.FindStringSubmatch(l); m != nil && len(bi.Entries) > 0 {
			var keep []string
			for _, p := range strings.Fields(m[1]) {
				if !strings.HasPrefix(p, MediaParam+"=") {
					keep = append(keep, p)
				}
			}
			bi.Entries[len(bi.Entries)-1].Append = strings.Join(keep, " ")
		}
	}
	if len(bi.Entries) == 0 {
		return nil, fmt.Errorf("%w: %s has no menu entries byz wrote", ErrBadMedia, GrubCfgDisk)
	}
	if def >= len(bi.Entries) {
		def = 0
	}
	bi.Entries[def].Default = true
	return bi, nil
}

// LoaderFromFS takes the bootloader files of a USB media tree from the
// tree itself (fsys): shim, the signed disk GRUB and MokManager under
// EFI/BOOT, and GRUB's i386-pc files under GrubPCMediaDir, from which
// GrubPC makes the BIOS boot code again (taking the core image the media
// carries, GrubPCCore). Signed files stay byte for byte
// what Debian signed, so a media made from them boots with Secure Boot
// as the original does. With sums (the media's manifest), every file must
// be listed and match: a mismatch is an ErrChanged error naming the file.
func LoaderFromFS(fsys fs.FS, sums map[string]ManifestFile) (*Loader, error) {
	l := &Loader{files: map[string]*File{}}
	read := func(mediaPath, name string) error {
		f, err := fsys.Open(mediaPath)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrMissingFile, mediaPath, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("boot: %s: %w", mediaPath, err)
		}
		if fi.Size() > 64<<20 {
			return fmt.Errorf("%w: %s is %d bytes, no bootloader file is that big", ErrBadMedia, mediaPath, fi.Size())
		}
		data := make([]byte, fi.Size())
		if _, err := io.ReadFull(f, data); err != nil {
			return fmt.Errorf("boot: %s: %w", mediaPath, err)
		}
		sum := sha256.Sum256(data)
		hexSum := hex.EncodeToString(sum[:])
		if sums != nil {
			want, ok := sums[mediaPath]
			switch {
			case !ok:
				return fmt.Errorf("%w: %s is not in the media's manifest", ErrChanged, mediaPath)
			case want.SHA256 != hexSum || want.Size != int64(len(data)):
				return fmt.Errorf("%w: %s: sha256 %s (%d bytes), the manifest says %s (%d bytes)", ErrChanged, mediaPath, hexSum, len(data), want.SHA256, want.Size)
			}
		}
		l.files[name] = &File{Name: name, Package: "media", Source: mediaPath, SHA256: hexSum, Data: data}
		return nil
	}
	for mp, name := range placement[USB] {
		if err := read(mp, name); err != nil {
			return nil, err
		}
	}
	ents, err := fs.ReadDir(fsys, GrubPCMediaDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (GRUB's BIOS files, which media made before clones existed lack): %w", ErrMissingFile, GrubPCMediaDir, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := read(GrubPCMediaDir+"/"+e.Name(), GrubPCDir+"/"+e.Name()); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// grubPCFiles returns the names (in GrubPCDir) of the files GrubPC reads:
// the images, moddep.lst and every module GrubPCModules pulls in. nil when
// the Loader has no i386-pc files.
func (l *Loader) grubPCFiles() ([]string, error) {
	dep, ok := l.files[GrubPCDir+"/"+grubpc.ModDep]
	if !ok {
		return nil, nil
	}
	mods, err := grubpc.Resolve(dep.Data, GrubPCModules)
	if err != nil {
		return nil, fmt.Errorf("boot: BIOS GRUB: %w", err)
	}
	out := []string{grubpc.BootImg, grubpc.DiskbootImg, grubpc.DecompressImg, grubpc.KernelImg, grubpc.ModDep}
	for _, m := range mods {
		out = append(out, m+".mod")
	}
	return out, nil
}

// addGrubPC puts the BIOS GRUB's files on USB media, when the Loader has
// them.
func (p *planner) addGrubPC(l *Loader) error {
	names, err := l.grubPCFiles()
	if err != nil {
		return err
	}
	for _, n := range names {
		f, err := l.File(GrubPCDir + "/" + n)
		if err != nil {
			return err
		}
		mp := path.Join(GrubPCMediaDir, n)
		p.files[mp] = &node{
			hdr:  entryHeader(mp, int64(len(f.Data)), p.mtime),
			data: f.Data, sum: f.SHA256,
		}
	}
	if names != nil {
		core, err := l.grubPCCore()
		if err != nil {
			return err
		}
		p.addData(path.Join(GrubPCMediaDir, GrubPCCore), core)
	}
	return nil
}
