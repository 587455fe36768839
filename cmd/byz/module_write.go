package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"byzantium/modules"
	"byzantium/modules/entry"
	"byzantium/modules/squashfs"
)

// squashfsOptions checks the compression flags of module create, each a
// usage error naming the flag when it is wrong.
func squashfsOptions(comp string, level int, blockSize string, workers int) (squashfs.Options, error) {
	var o squashfs.Options
	var err error
	if o.Compressor, err = squashfs.ParseCompressor(comp); err != nil {
		return o, usageError{fmt.Errorf("--comp: %w", err)}
	}
	switch {
	case o.Compressor == squashfs.XZ && level != 0:
		// squashfs's xz has no levels: mksquashfs has none either, and
		// byz's encoder has one setting. Refuse rather than ignore.
		return o, usageError{fmt.Errorf("--level %d: xz has no compression levels; leave --level out, or use --comp zstd (1-22) or gzip (1-9)", level)}
	case o.Compressor == squashfs.Zstd && (level < 0 || level > 22):
		return o, usageError{fmt.Errorf("--level %d: zstd takes 1 to 22 (0 or none: its best)", level)}
	case o.Compressor == squashfs.Gzip && (level < 0 || level > 9):
		return o, usageError{fmt.Errorf("--level %d: gzip takes 1 to 9 (0 or none: 9)", level)}
	}
	o.Level = level
	bs, err := parseSize(blockSize)
	if err != nil {
		return o, usageError{fmt.Errorf("--block-size: %w", err)}
	}
	if bs < squashfs.MinBlockSize || bs > squashfs.MaxBlockSize || bits.OnesCount(uint(bs)) != 1 {
		return o, usageError{fmt.Errorf("--block-size %s: want a power of two from 4K to 1M", blockSize)}
	}
	o.BlockSize = bs
	if workers < 0 {
		return o, usageError{fmt.Errorf("--processors %d: want 1 or more (or 0 for one per core)", workers)}
	}
	o.Workers = workers
	return o, nil
}

// createModule writes the module(s) into a staging folder beside out and
// moves them into place once all are complete; Ctrl-C or a failure leaves
// no file behind and any earlier out as it was.
func createModule(ctx context.Context, srcs []string, out string, opts modules.CreateOptions, quiet bool, counter *entry.Counter) ([]string, error) {
	parent, name := filepath.Dir(out), filepath.Base(out)
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("output %s is a folder; give a file name such as %s", out, filepath.Join(out, "module.xzm"))
	}
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("output %s: no folder %s to write it in", out, parent)
	}
	// From here on Ctrl-C is this command's to handle: nothing it makes
	// may outlive it.
	ctx, stop := onInterrupt(ctx)
	defer stop()
	st, err := newStaging(parent, name)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", out, cannotWrite(parent, err))
	}
	staged := filepath.Join(st.dir.Path, name)
	stopProgress := startProgress(os.Stderr, quiet, "reading sources", counter)
	var outs []string
	err = st.run(ctx, func() error {
		var err error
		outs, err = modules.Create(srcs, staged, opts)
		return err
	}, func() error {
		for i, o := range outs {
			final := filepath.Join(parent, filepath.Base(o))
			if err := os.Rename(o, final); err != nil {
				return err
			}
			outs[i] = final
		}
		return nil
	})
	stopProgress()
	if err != nil {
		return nil, rename(err, staged, out)
	}
	return outs, nil
}

// extractModule extracts the module at src into a staging folder (beside
// dest, or inside it when it exists) and moves the files into place once
// all are out; Ctrl-C or a failure leaves dest as it was.
func extractModule(ctx context.Context, src, dest string, overwrite bool) error {
	dest = filepath.Clean(dest)
	fi, err := os.Stat(dest)
	exists := err == nil
	switch {
	case exists && !fi.IsDir():
		return fmt.Errorf("%s is not a folder", dest)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	case exists && !overwrite:
		if empty, err := isEmpty(dest); err != nil {
			return err
		} else if !empty {
			return fmt.Errorf("%s is not empty: pass --overwrite to extract over its files", dest)
		}
	}
	// A module that does not open is refused before anything is made.
	m, err := modules.Open(src)
	if err != nil {
		return err
	}
	m.Close()
	// From here on Ctrl-C is this command's to handle: nothing it makes
	// may outlive it.
	ctx, stop := onInterrupt(ctx)
	defer stop()
	parent := dest
	var made []string
	if !exists {
		parent = filepath.Dir(dest)
		if made, err = mkdirAll(parent); err != nil {
			return err
		}
	}
	st, err := newStaging(parent, filepath.Base(dest))
	if err != nil {
		removeEmpty(made)
		return cannotWrite(parent, err)
	}
	root := filepath.Join(st.dir.Path, "root")
	err = st.run(ctx, func() error {
		if err := os.Mkdir(root, 0o755); err != nil {
			return err
		}
		return modules.Extract(src, root, false)
	}, func() error {
		if !exists {
			return os.Rename(root, dest)
		}
		return merge(root, dest)
	})
	if err != nil {
		removeEmpty(made)
	}
	return rename(err, root, dest)
}

// cannotWrite says that nothing can be made in dir, without the name of
// the temporary folder that could not be.
func cannotWrite(dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("cannot write in %s: %w", dir, pe.Err)
	}
	return err
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// mkdirAll is os.MkdirAll returning the folders it made, deepest first.
func mkdirAll(dir string) ([]string, error) {
	var made []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || filepath.Dir(p) == p {
			break
		}
		made = append(made, p)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return made, nil
}

// removeEmpty removes the folders a failed run made (deepest first), as
// long as they are empty.
func removeEmpty(made []string) {
	for _, p := range made {
		if os.Remove(p) != nil {
			return
		}
	}
}

// merge moves the tree src into the folder dst, which exists: what is
// missing in dst is moved in whole, a folder present in both is merged and
// takes src's owner, mode, times and xattrs, and anything else in dst is
// replaced, as extracting over it would. Every step is a rename on one
// file system, so merging is quick once the files are out.
func merge(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	// Moving entries out of a folder needs write permission on it, which
	// a read-only folder of the module lacks for a user who is not root.
	if err := writable(src); err != nil {
		return err
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		dfi, err := os.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err = move(s, d, e.IsDir())
		case err != nil:
		case e.IsDir() && dfi.IsDir():
			err = merge(s, d)
		default:
			if dfi.IsDir() {
				if err = os.RemoveAll(d); err != nil {
					break
				}
			}
			err = move(s, d, e.IsDir())
		}
		if err != nil {
			return err
		}
	}
	return copyAttrs(src, dst)
}

// move renames s to d. A folder moved to another parent needs write
// permission on itself (its ".." changes): lend it for the move.
func move(s, d string, dir bool) error {
	if !dir || os.Geteuid() == 0 {
		return os.Rename(s, d)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: s, Err: err}
	}
	if err := writable(s); err != nil {
		return err
	}
	if err := os.Rename(s, d); err != nil {
		return err
	}
	return os.Chmod(d, os.FileMode(st.Mode&0o7777)|modeBits(st.Mode))
}

// writable gives the owner write permission on the folder p if it lacks it.
func writable(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	if st.Mode&0o200 != 0 || os.Geteuid() == 0 {
		return nil
	}
	return os.Chmod(p, os.FileMode(st.Mode&0o777|0o200)|modeBits(st.Mode))
}

// modeBits turns setuid, setgid and sticky in a stat mode into os.FileMode's.
func modeBits(m uint32) os.FileMode {
	var f os.FileMode
	if m&unix.S_ISUID != 0 {
		f |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		f |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		f |= os.ModeSticky
	}
	return f
}

// copyAttrs gives the folder dst the owner (as root), xattrs, mode and
// times of the folder src, in the order extraction applies them.
func copyAttrs(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := copyXattrs(src, dst); err != nil {
			return err
		}
	}
	if err := os.Chmod(dst, os.FileMode(st.Mode&0o777)|modeBits(st.Mode)); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: dst, Err: err}
	}
	return nil
}

func copyXattrs(src, dst string) error {
	sz, err := unix.Llistxattr(src, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, syscall.ENOTSUP) {
			return nil
		}
		return err
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(src, buf); err != nil {
		return err
	}
	for _, name := range splitNul(buf[:sz]) {
		n, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return err
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(src, name, v); err != nil {
			return err
		}
		if err := unix.Lsetxattr(dst, name, v[:n], 0); err != nil {
			return &os.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
