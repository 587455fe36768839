// Package mkfs makes save.dat files (see runtime/savedat): the ext4 file
// system, and for an encrypted one its LUKS2 header and encryption. It is
// apart from savedat because byz-init, which only opens and grows them,
// should not link an ext4 writer (go-diskfs, and through it net).
package mkfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"golang.org/x/sys/unix"
)

// DefaultLabel is the ext4 label of a save.dat.
const DefaultLabel = "byz-changes"

// Options configures Create and NewStream.
type Options struct {
	// Size is the file's length, a multiple of 1 MiB, at least savedat.MinSize
	// (plus luks2.DataOffset when encrypted).
	Size int64
	// Passphrase, when set, makes the save.dat a LUKS2 volume.
	Passphrase []byte
	// KDF is the LUKS2 keyslot's key derivation; zero means
	// luks2.DefaultKDF. It is checked with luks2.KDFParams.Check.
	KDF luks2.KDFParams
	// Label is the ext4 (and LUKS2) label; "" means DefaultLabel.
	Label string
	// Fill, when set, is called with the new ext4 file system, plain (an
	// encrypted save.dat's is encrypted only afterwards), at the start of
	// the file it is given, to put files into it: a clone puts the node's
	// changes into the upper layer of the save.dat it makes. An error
	// from it stops Create and NewStream.
	Fill func(fs *os.File) error
	// TempDir holds the scratch file the empty file system is made in
	// (unlinked at once); "" means the default temporary folder.
	TempDir string
	// Progress, when set, is told what is happening: each step as it
	// starts (making the file system, deriving the key: the slow ones),
	// then, as the file is written, the bytes done.
	Progress func(Event)
}

// Event is a step of Create or NewStream.
type Event struct {
	// Step says what is being done ("deriving the key (argon2id, 1 GiB,
	// 4 passes)").
	Step string
	// Done and Total are the bytes written so far and in all, while
	// the save.dat is written (Step "writing").
	Done, Total int64
}

func (o Options) progress(e Event) {
	if o.Progress != nil {
		o.Progress(e)
	}
}

// check validates o before anything is made and returns the file
// system's size and label.
func (o Options) check() (fsSize int64, label string, err error) {
	fsSize = o.Size
	if o.Passphrase != nil {
		fsSize -= luks2.DataOffset
	}
	if o.Size%(1<<20) != 0 || fsSize < savedat.MinSize {
		return 0, "", fmt.Errorf("%w: size %s: a multiple of 1 MiB, at least %d MiB (%d MiB encrypted)",
			savedat.ErrBadOption, savedat.SizeString(o.Size), savedat.MinSize>>20, (savedat.MinSize+luks2.DataOffset)>>20)
	}
	if o.Passphrase != nil && len(o.Passphrase) == 0 {
		return 0, "", fmt.Errorf("%w: an empty passphrase", savedat.ErrBadOption)
	}
	if o.Passphrase != nil {
		if err := o.KDF.Check(); err != nil {
			return 0, "", fmt.Errorf("%w: %w", savedat.ErrBadOption, err)
		}
	}
	label = o.Label
	if label == "" {
		label = DefaultLabel
	}
	if len(label) > 16 {
		return 0, "", fmt.Errorf("%w: label %q is longer than 16 bytes (ext4's limit)", savedat.ErrBadOption, label)
	}
	return fsSize, label, nil
}

// blockSize is the ext4 block size and the LUKS2 sector size: 4 KiB, the
// size go-diskfs's ext4 writer is known to get right (FIELD-NOTES).
const blockSize = 4096

// Create writes a new save.dat at path: CreateContext without a way to
// stop it.
func Create(path string, opts Options) error {
	return CreateContext(context.Background(), path, opts)
}

// CreateContext writes a new save.dat at path. It never replaces an
// existing file: a save.dat holds a node's data. Everything is checked
// first (the options, that path is free, that the file system takes a
// file that large and has the room: Fits); then the file system is made
// and the key derived in scratch files that are unlinked at once
// (NewStream), so nothing is left behind however the process ends; only
// then is the save.dat written, under a temporary name beside path, and
// renamed into place when complete. When ctx ends first, or anything
// fails, the temporary file and any folder made for it are removed and
// the error (ctx's, for a cancellation) returned.
func CreateContext(ctx context.Context, path string, opts Options) (err error) {
	if _, _, err := opts.check(); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("savedat: %s exists: a save.dat is never overwritten (move it away first)", path)
	}
	dir := filepath.Dir(path)
	if err := savedat.Fits(dir, opts.Size); err != nil {
		return err
	}
	s, err := NewStream(opts.TempDir, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Told before the first file appears beside path, so a caller that
	// stops here at once knows it leaves nothing.
	opts.progress(Event{Step: "writing", Total: s.Size})
	made, err := mkdirAll(dir)
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		removeDirs(made)
		return fmt.Errorf("savedat: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			removeDirs(made)
		}
	}()
	if err := tmp.Truncate(opts.Size); err != nil {
		return fmt.Errorf("savedat: sizing %s to %s: %w", tmp.Name(), savedat.SizeString(opts.Size), err)
	}
	if err := copySparse(ctx, tmp, s, opts); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	if err := renameNoReplace(tmp.Name(), path); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	return nil
}

// copySparse writes the stream into f (already sized, reading as zeros),
// a megabyte at a time, leaving whole zero megabytes unwritten, and
// reports the bytes done. It stops when ctx ends.
func copySparse(ctx context.Context, f *os.File, s *Stream, opts Options) error {
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < s.Size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(s, buf[:min(int64(len(buf)), s.Size-off)])
		if err != nil {
			return fmt.Errorf("savedat: %w", err)
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return fmt.Errorf("savedat: writing %s: %w", f.Name(), err)
			}
		}
		off += int64(n)
		opts.progress(Event{Step: "writing", Done: off, Total: s.Size})
	}
	return nil
}

// mkdirAll makes dir and its missing parents, and returns the ones it
// made, deepest first, so a failure removes only what it made.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			removeDirs(missing[i+1:])
			return nil, err
		}
	}
	return missing, nil
}

// removeDirs removes the (empty) folders made by mkdirAll.
func removeDirs(dirs []string) {
	for _, d := range dirs {
		os.Remove(d)
	}
}

// renameNoReplace renames old to new unless new exists (it appeared
// meanwhile), so nothing is ever replaced: renameat2's RENAME_NOREPLACE,
// or where a file system lacks it, a hard link and an unlink; FAT has
// neither hard links nor, on older kernels, the flag, and there the check
// and the rename are two steps.
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := os.Link(old, new); err == nil {
		return os.Remove(old)
	} else if errors.Is(err, os.ErrExist) {
		return err
	}
	if _, err := os.Lstat(new); err == nil {
		return fmt.Errorf("%s: %w", new, os.ErrExist)
	}
	return os.Rename(old, new)
}

// makeExt4 writes an empty ext4 file system of size bytes at the start of
// f, with 4 KiB blocks and a journal.
func makeExt4(f *os.File, size int64, label string) error {
	// No resize inode: go-diskfs cannot make one for a file system of a
	// single group (under 128 MiB), and gets its size wrong with smaller
	// groups (e2fsck says so). resize2fs grows a save.dat without it,
	// offline.
	if _, err := ext4.Create(file.New(f, false), size, 0, 512, &ext4.Params{
		SectorsPerBlock: blockSize / 512, VolumeName: label,
		Features: []ext4.FeatureOpt{ext4.WithFeatureReservedGDTBlocksForExpansion(false)},
	}); err != nil {
		return fmt.Errorf("savedat: making the ext4 file system: %w", err)
	}
	return nil
}
