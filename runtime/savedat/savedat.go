// Package savedat makes save.dat files: an ext4 file system in a file,
// which byz-init loop-mounts as the overlay's upper layer so a node keeps
// its changes on any stick, FAT included. An encrypted save.dat is a LUKS2
// volume (runtime/luks2) whose data is that ext4 file system.
package savedat

import (
	"crypto/aes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"byzantium/runtime/luks2"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"golang.org/x/crypto/xts"
	"golang.org/x/sys/unix"
)

// ErrBadOption reports Options that cannot make a save.dat.
var ErrBadOption = errors.New("savedat: bad option")

// MinSize is the smallest save.dat Create makes (an encrypted one also
// needs luks2.DataOffset for its header).
const MinSize = 32 << 20

// DefaultLabel is the ext4 label of a save.dat.
const DefaultLabel = "byz-changes"

// Options configures Create.
type Options struct {
	// Size is the file's length, a multiple of 1 MiB, at least MinSize
	// (plus luks2.DataOffset when encrypted).
	Size int64
	// Passphrase, when set, makes the save.dat a LUKS2 volume.
	Passphrase []byte
	// KDF is the LUKS2 keyslot's key derivation; zero means
	// luks2.DefaultKDF.
	KDF luks2.KDFParams
	// Label is the ext4 (and LUKS2) label; "" means DefaultLabel.
	Label string
	// Fill, when set, is called with the new ext4 file system, plain (an
	// encrypted save.dat's is encrypted only afterwards), at the start of
	// the file it is given, to put files into it: a clone puts the node's
	// changes into the upper layer of the save.dat it makes. An error
	// from it stops Create and NewStream.
	Fill func(fs *os.File) error
}

// blockSize is the ext4 block size and the LUKS2 sector size: 4 KiB, the
// size go-diskfs's ext4 writer is known to get right (FIELD-NOTES).
const blockSize = 4096

// Create writes a new save.dat at path. It never replaces an existing
// file: a save.dat holds a node's data. The file is written under a
// temporary name and renamed into place when complete.
func Create(path string, opts Options) (err error) {
	fsSize := opts.Size
	if opts.Passphrase != nil {
		fsSize -= luks2.DataOffset
	}
	if opts.Size%(1<<20) != 0 || fsSize < MinSize {
		return fmt.Errorf("%w: size %d: a multiple of 1 MiB, at least %d MiB (%d MiB encrypted)",
			ErrBadOption, opts.Size, MinSize>>20, (MinSize+luks2.DataOffset)>>20)
	}
	if opts.Passphrase != nil && len(opts.Passphrase) == 0 {
		return fmt.Errorf("%w: an empty passphrase", ErrBadOption)
	}
	label := opts.Label
	if label == "" {
		label = DefaultLabel
	}
	if len(label) > 16 {
		return fmt.Errorf("%w: label %q is longer than 16 bytes (ext4's limit)", ErrBadOption, label)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("savedat: %s exists: a save.dat is never overwritten (move it away first)", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Truncate(opts.Size); err != nil {
		return fmt.Errorf("savedat: sizing %s: %w", tmp.Name(), err)
	}
	if opts.Passphrase == nil {
		if err := makeExt4(tmp, fsSize, label); err != nil {
			return err
		}
		if err := runFill(tmp, opts); err != nil {
			return err
		}
	} else if err := makeEncrypted(tmp, fsSize, label, opts); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	if err := renameNoReplace(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("savedat: %w", err)
	}
	return nil
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

// runFill runs opts.Fill, if any, on the plain file system in f.
func runFill(f *os.File, opts Options) error {
	if opts.Fill == nil {
		return nil
	}
	if err := opts.Fill(f); err != nil {
		return fmt.Errorf("savedat: filling the new file system: %w", err)
	}
	return nil
}

// makeEncrypted writes a LUKS2 header to f and, after it, the ext4 file
// system encrypted with the new volume key. The file system is made in
// the clear in a temporary file first (an empty file system holds no
// secret), then encrypted block by block.
func makeEncrypted(f *os.File, fsSize int64, label string, opts Options) error {
	plain, err := os.CreateTemp("", "byz-savedat-*")
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	defer os.Remove(plain.Name())
	defer plain.Close()
	if err := plain.Truncate(fsSize); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	if err := makeExt4(plain, fsSize, label); err != nil {
		return err
	}
	if err := runFill(plain, opts); err != nil {
		return err
	}
	_, key, err := luks2.Format(f, luks2.FormatOptions{Passphrase: opts.Passphrase, KDF: opts.KDF, Label: label, SectorSize: blockSize})
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	defer clear(key)
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < fsSize; off += int64(len(buf)) {
		n, err := plain.ReadAt(buf, off)
		if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return fmt.Errorf("savedat: %w", err)
		}
		chunk := buf[:n]
		for i := 0; i < n; i += blockSize {
			// LUKS2 IVs count its own (4 KiB) sectors.
			c.Encrypt(chunk[i:i+blockSize], chunk[i:i+blockSize], uint64(off+int64(i))/blockSize)
		}
		if _, err := f.WriteAt(chunk, luks2.DataOffset+off); err != nil {
			return fmt.Errorf("savedat: %w", err)
		}
	}
	return nil
}
