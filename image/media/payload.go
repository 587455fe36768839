package media

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"byzantium/image/bootloader"
	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/overlays"
)

// payload adds every file that does not embed the media ID.
func (p *planner) payload(m *Media) error {
	if m.Flavour != bootloader.ISO && m.Flavour != bootloader.USB {
		return fmt.Errorf("%w: unknown flavour %s", ErrBadMedia, m.Flavour)
	}
	if m.Loader == nil {
		return fmt.Errorf("%w: no bootloader files (Loader is nil)", ErrBadMedia)
	}
	if m.Kernel == "" || m.Initramfs == "" {
		return fmt.Errorf("%w: a kernel and an initramfs are required", ErrBadMedia)
	}
	placed, err := m.Loader.MediaFiles(m.Flavour)
	if err != nil {
		return err
	}
	for _, f := range placed {
		p.files[f.Path] = &node{hdr: entryHeader(f.Path, int64(len(f.Data)), p.mtime), data: f.Data, sum: f.SHA256}
	}
	info, err := bootInfo(m, p.mtime)
	if err != nil {
		return err
	}
	p.addData(overlays.BootInfoPath, info)
	if err := p.addHost(bootloader.KernelPath, m.Kernel); err != nil {
		return err
	}
	if err := p.addHost(bootloader.InitramfsPath, m.Initramfs); err != nil {
		return err
	}
	for dir, files := range map[string][]string{overlays.FolderBase: m.Base, overlays.FolderModules: m.Modules, overlays.FolderOptional: m.Optional} {
		paths, err := xzmPaths(dir, files)
		if err != nil {
			return err
		}
		for mp, src := range paths {
			if err := p.addHost(mp, src); err != nil {
				return err
			}
		}
	}
	for _, dir := range m.Rootcopy {
		rc := p.rootcopy
		if p.fsys != nil {
			rc = p.rootcopyFS
		}
		if err := rc(dir); err != nil {
			return err
		}
	}
	return nil
}

// known returns the digest Media.Digests gives for src, checking its size.
func (p *planner) known(mediaPath, src string, size int64) (string, bool, error) {
	d, ok := p.digests[src]
	if !ok {
		return "", false, nil
	}
	if d.Size != size {
		return "", false, fmt.Errorf("%w: %s (%s) is %d bytes, the manifest says %d", ErrChanged, mediaPath, src, size, d.Size)
	}
	return d.SHA256, true, nil
}

// addHost adds the regular file src as mediaPath, hashing it. Its mode and
// owner are not kept: they say nothing about the media.
func (p *planner) addHost(mediaPath, src string) error {
	if p.fsys != nil {
		return p.addFS(mediaPath, src)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("media: %s: %w", mediaPath, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s: %s is not a regular file", ErrBadMedia, mediaPath, src)
	}
	key := sumKey{path: src, size: fi.Size(), mtime: fi.ModTime()}
	sum, ok := p.sums.get(key)
	if !ok {
		if sum, ok, err = p.known(mediaPath, src, fi.Size()); err != nil {
			return err
		}
	}
	n := fi.Size()
	if !ok {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("media: %s: %w", mediaPath, err)
		}
		defer f.Close()
		h := sha256.New()
		if n, err = io.Copy(h, f); err != nil {
			return fmt.Errorf("media: %s: reading %s: %w", mediaPath, src, err)
		}
		sum = hex.EncodeToString(h.Sum(nil))
		if n == fi.Size() {
			p.sums.put(key, sum)
		}
	}
	p.files[mediaPath] = &node{hdr: entryHeader(mediaPath, n, clamp(fi.ModTime(), p.mtime)), src: src, sum: sum}
	return nil
}

// addFS adds the regular file src of Media.FS as mediaPath: with its
// digest from Media.Digests, or hashed.
func (p *planner) addFS(mediaPath, src string) error {
	fi, err := fs.Stat(p.fsys, src)
	if err != nil {
		return fmt.Errorf("media: %s: %w", mediaPath, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s: %s is not a regular file", ErrBadMedia, mediaPath, src)
	}
	sum, ok, err := p.known(mediaPath, src, fi.Size())
	if err != nil {
		return err
	}
	if !ok {
		if sum, err = p.hashFS(mediaPath, src, fi.Size()); err != nil {
			return err
		}
	}
	p.files[mediaPath] = &node{hdr: entryHeader(mediaPath, fi.Size(), clamp(fi.ModTime(), p.mtime)), src: src, fsys: p.fsys, sum: sum}
	return nil
}

func (p *planner) hashFS(mediaPath, src string, size int64) (string, error) {
	f, err := p.fsys.Open(src)
	if err != nil {
		return "", fmt.Errorf("media: %s: %w", mediaPath, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", fmt.Errorf("media: %s: reading %s: %w", mediaPath, src, err)
	}
	if n != size {
		return "", fmt.Errorf("%w: %s (%s): %d bytes read of %d", ErrChanged, mediaPath, src, n, size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// rootcopyFS adds the folder dir of Media.FS under overlays.RootcopyDir: folders
// and regular files (a media tree holds nothing else that FAT can keep),
// with their modes and the clamped times.
func (p *planner) rootcopyFS(dir string) error {
	return fs.WalkDir(p.fsys, dir, func(src string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("media: rootcopy: %w", err)
		}
		mp := overlays.RootcopyDir
		if src != dir {
			mp += "/" + strings.TrimPrefix(src, dir+"/")
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("media: rootcopy: %w", err)
		}
		switch {
		case d.IsDir():
			p.files[mp] = &node{hdr: entry.Header{Path: mp, Type: entry.TypeDir, Mode: uint32(fi.Mode().Perm()), ModTime: clamp(fi.ModTime(), p.mtime)}}
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: rootcopy: %s is a %s; media trees hold folders and files", ErrBadMedia, src, fi.Mode().Type())
		}
		if err := p.addFS(mp, src); err != nil {
			return err
		}
		p.files[mp].hdr.Mode = uint32(fi.Mode().Perm())
		return nil
	})
}

func clamp(t, limit time.Time) time.Time {
	if t.After(limit) {
		return limit
	}
	return t
}

// rootcopy walks dir and adds its entries under overlays.RootcopyDir, keeping their
// modes and owners (rootcopy is copied over / at boot, where they matter)
// with times clamped. A hardlink becomes a second copy of its target, since
// the FAT side of the media cannot share data between names.
func (p *planner) rootcopy(dir string) error {
	r, err := hostfs.NewReader(dir)
	if err != nil {
		return fmt.Errorf("media: rootcopy: %w", err)
	}
	defer r.Close()
	for {
		h, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("media: rootcopy: %w", err)
		}
		mp := overlays.RootcopyDir
		if h.Path != "." {
			mp += "/" + h.Path
		}
		n := &node{hdr: *h, src: filepath.Join(dir, filepath.FromSlash(h.Path))}
		// Xattrs are dropped: neither FAT nor the ISO writer can hold them.
		n.hdr.Path, n.hdr.ModTime, n.hdr.Xattrs = mp, clamp(h.ModTime, p.mtime), nil
		switch h.Type {
		case entry.TypeRegular:
			s := sha256.New()
			if _, err := io.Copy(s, io.LimitReader(r, h.Size)); err != nil {
				return fmt.Errorf("media: rootcopy: %s: %w", n.src, err)
			}
			n.sum = hex.EncodeToString(s.Sum(nil))
		case entry.TypeHardlink:
			target, ok := p.files[overlays.RootcopyDir+"/"+h.Linkname]
			if !ok || target.hdr.Type != entry.TypeRegular {
				return fmt.Errorf("%w: rootcopy: %s is a hardlink to %s, which is not a file seen before it", ErrBadMedia, n.src, h.Linkname)
			}
			n.hdr.Type, n.hdr.Linkname, n.hdr.Size = entry.TypeRegular, "", target.hdr.Size
			n.src, n.sum = target.src, target.sum
		default:
			n.src = ""
		}
		p.files[mp] = n
	}
}
