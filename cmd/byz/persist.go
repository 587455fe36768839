package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"byzantium/builder/spec"
	"byzantium/image/fat"
	"byzantium/image/usbimg"
	"byzantium/internal/bytesize"
	"byzantium/overlays"
	"byzantium/runtime/luks2"
	"byzantium/runtime/nodeapi"
	"byzantium/runtime/savedat"
	"byzantium/runtime/savedat/mkfs"
)

func newPersistCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "persist",
		Short: "Make and manage persistence stores (save.dat)",
		Example: `  byz persist create --media /media/stick --size 1G --encrypt
  byz persist resize /media/stick/byzantium/changes/save.dat --size 2G
  byz persist save                # on a running node`,
	}
	c.AddCommand(newPersistCreateCmd(), newPersistPassphraseCmd(), newPersistSaveCmd(), newPersistSnapshotCmd(), newPersistResizeCmd())
	return c
}

func newPersistPassphraseCmd() *cobra.Command {
	var oldFile, newFile, kdfMemory string
	var add bool
	var kdfTime int
	c := &cobra.Command{
		Use:   "passphrase SAVE.DAT [--old-file F] [--new-file F] [--add]",
		Short: "Change (or add) the passphrase of an encrypted save.dat",
		Long: `Open the encrypted save.dat with a passphrase it has and give it a new one.
By default the old passphrase is removed once the new one is in (a change);
with --add both open it. The volume key, and so the data, stay the same.
Passphrases come from files (their first line) or are asked on the terminal
(three tries; a short new passphrase is warned about and must be confirmed).
cryptsetup sees the same result (it is a LUKS2 keyslot change). A volume
cryptsetup would not change (unmet requirements, such as a re-encryption
under way) is left alone.

The new keyslot keeps the argon2id costs of the one the current passphrase
opened, or with --kdf-memory and --kdf-time gets those (checked as persist
create checks them); a pbkdf2 keyslot's replacement gets argon2id at 1G and
4 passes.

Ctrl-C before the new keyslot is being written changes nothing; after, the
change is finished first, so the header is never left half-written.`,
		Example: `  byz persist passphrase /media/stick/byzantium/changes/save.dat
  byz persist passphrase save.dat --old-file old.txt --new-file new.txt
  byz persist passphrase save.dat --add --new-file spare.txt`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var kdf *luks2.KDFParams
			if cmd.Flags().Changed("kdf-memory") || cmd.Flags().Changed("kdf-time") {
				k, err := kdfCosts(kdfMemory, kdfTime, 0)
				if err != nil {
					return err
				}
				kdf = &k
			}
			return changePassphrase(cmd.ErrOrStderr(), cmd.OutOrStdout(), args[0], oldFile, newFile, add, kdf)
		},
	}
	f := c.Flags()
	f.StringVar(&oldFile, "old-file", "", "read the current passphrase from this file's first line")
	f.StringVar(&newFile, "new-file", "", "read the new passphrase from this file's first line")
	f.BoolVar(&add, "add", false, "keep the current passphrase too")
	f.StringVar(&kdfMemory, "kdf-memory", "1G", "argon2id memory of the new keyslot, 32K to 4G (default: as the current one)")
	f.IntVar(&kdfTime, "kdf-time", luks2.DefaultKDF.Time, "argon2id passes of the new keyslot (default: as the current one)")
	return c
}

// changePassphrase is byz persist passphrase.
// kdf, when set, is the new keyslot's costs.
func changePassphrase(stderr, stdout io.Writer, path, oldFile, newFile string, add bool, newKDF *luks2.KDFParams) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("persist passphrase: %w", err)
	}
	defer f.Close()
	h, err := luks2.Read(f)
	if errors.Is(err, luks2.ErrNoMagic) {
		var magic [2]byte
		if _, rerr := f.ReadAt(magic[:], 1080); rerr == nil && magic == [2]byte{0x53, 0xef} {
			return fmt.Errorf("persist passphrase: %s is not encrypted (a plain ext4 save.dat): it has no passphrase to change", path)
		}
		return fmt.Errorf("persist passphrase: %s is not an encrypted save.dat (no LUKS2 header, nor an ext4 file system)", path)
	}
	if err != nil {
		return fmt.Errorf("persist passphrase: %s: %w", path, err)
	}
	if err := h.CheckWrite(); err != nil {
		return fmt.Errorf("persist passphrase: %s: %w", path, err)
	}
	in := watchInterrupts(stderr, func() {})
	defer in.stop()
	fmt.Fprintf(stderr, "byz: the passphrase is checked with each keyslot's key derivation (%s)\n", describeKDFs(h))
	var key []byte
	var slot string
	for try := 1; ; try++ {
		old, err := askOld(oldFile)
		if err != nil {
			return err
		}
		fmt.Fprintln(stderr, "byz: checking the passphrase...")
		key, slot, err = luks2.Unlock(f, h, old)
		clear(old)
		if err == nil {
			break
		}
		if errors.Is(err, luks2.ErrWrongPassphrase) && oldFile == "" && try < passphraseTries {
			fmt.Fprintln(stderr, "byz: that passphrase opens no keyslot; again, please")
			continue
		}
		return fmt.Errorf("persist passphrase: %s: %w", path, err)
	}
	defer clear(key)
	nw, err := passphrase(newFile)
	if err != nil {
		return err
	}
	defer clear(nw)
	kdf := luks2.KDFParams{}
	if k := h.Metadata.Keyslots[slot].KDF; k.Type == "argon2id" {
		// Keep the costs the volume was made with, when they are ones a
		// new keyslot may have.
		kdf = luks2.KDFParams{Type: "argon2id", Time: int(k.Time), Memory: int(k.Memory), Threads: int(k.CPUs)}
		if kdf.Check() != nil {
			kdf = luks2.KDFParams{}
		}
	}
	if newKDF != nil {
		kdf = *newKDF
	}
	// From here the header is written: Ctrl-C lets the change finish.
	in.set(phaseFinish)
	fmt.Fprintf(stderr, "byz: deriving the new key (%s)...\n", kdf)
	added, err := luks2.AddKey(f, h, key, nw, kdf, nil)
	if err != nil {
		return fmt.Errorf("persist passphrase: %w", err)
	}
	if !add {
		if err := luks2.RemoveKey(f, h, slot); err != nil {
			return fmt.Errorf("persist passphrase: the new passphrase is in keyslot %s, but removing the old one failed: %w", added, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("persist passphrase: %w", err)
	}
	what := "changed"
	if add {
		what = "added"
	}
	fmt.Fprintf(stdout, "byz: passphrase %s (keyslot %s)\n", what, added)
	return nil
}

// describeKDFs lists the key derivations of the keyslots that open the
// data, for the line that explains the wait.
func describeKDFs(h *luks2.Header) string {
	var ids []string
	for id := range h.Metadata.Keyslots {
		if h.Bound(id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []string
	for _, id := range ids {
		out = append(out, "keyslot "+id+": "+h.Metadata.Keyslots[id].KDF.String())
	}
	return strings.Join(out, "; ")
}

// askOld reads the current passphrase from file, or once from the
// terminal.
func askOld(file string) ([]byte, error) {
	if file != "" {
		return readPassphraseFile(file)
	}
	t, err := openTerminal("--old-file")
	if err != nil {
		return nil, err
	}
	defer t.close()
	return t.ask("Current passphrase: ")
}

func newPersistCreateCmd() *cobra.Command {
	var (
		media, image, size, passFile string
		socket                       string
		encrypt                      bool
		kdfMemory                    string
		kdfTime                      int
	)
	c := &cobra.Command{
		Use:   "create [--media DIR | --image FILE.img] --size SIZE [--encrypt [--passphrase-file F]]",
		Short: "Make a save.dat on boot media, which byz-init then uses without being told",
		Long: `Make byzantium/changes/save.dat on the media folder DIR (a mounted stick, or a
media tree): an ext4 file system in a file, which byz-init mounts at boot as
the layer that keeps the node's changes. With --encrypt it is a LUKS2 volume
(aes-xts-plain64, argon2id), which byz-init unlocks with a passphrase asked
on the console; cryptsetup opens it too. The passphrase comes from
--passphrase-file (its first line), or is asked twice on the terminal.

Before anything is written the size is checked: against the free space, and
on FAT (most sticks) against its file limit of 4 GiB less a byte (4095M at
most). The --kdf-memory and --kdf-time costs are checked too (argon2id
memory from 32K to 4G; passes times memory at most 16 GiB, which is what a
node agrees to unlock).

With --image, the save.dat goes into the FAT partition of a USB image byz
built (the file is edited in place; nothing is written unless the save.dat
fits, and only into Byzantium media: its FAT must hold byzantium/manifest.json
or a media marker).

With neither, on a running node: byzd makes the save.dat on the node's boot
media, used from the next boot on (the argon2id memory is capped at half the
node's RAM, which it needs to unlock it).

Ctrl-C stops at any point and leaves nothing behind: no temporary file on the
media or in /tmp. Only the last step of --image, the copy into the image, is
finished first once begun, so the image is never left half-written.

An existing save.dat is never replaced.`,
		Example: `  byz persist create --media /media/stick --size 1G
  byz persist create --image out/byzantium-usb.img --size 512M
  byz persist create --media /media/stick --size 2G --encrypt
  byz persist create --media out/byzantium-test --size 512M --encrypt --passphrase-file pass.txt
  byz persist create --size 1G --encrypt          # on a running node`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if media != "" && image != "" {
				return usageError{fmt.Errorf("persist create: give one of --media DIR and --image FILE.img")}
			}
			n, err := spec.ParseSize(size)
			if err != nil {
				return usageError{fmt.Errorf("--size: %w", err)}
			}
			if !encrypt && passFile != "" {
				return usageError{fmt.Errorf("persist create: --passphrase-file needs --encrypt")}
			}
			var kdf luks2.KDFParams
			if encrypt {
				if kdf, err = kdfCosts(kdfMemory, kdfTime, 0); err != nil {
					return err
				}
			}
			if media == "" && image == "" {
				if _, err := os.Stat(socket); err != nil {
					return usageError{fmt.Errorf("persist create: give --media DIR or --image FILE.img (there is no byzd socket %s: this is not a running node)", socket)}
				}
				req := nodeapi.SaveDatRequest{SizeBytes: n}
				if encrypt {
					if cmd.Flags().Changed("kdf-memory") {
						req.KDFMemoryKiB = kdf.Memory
					}
					req.KDFTime = kdf.Time
					p, err := passphrase(passFile)
					if err != nil {
						return err
					}
					req.Passphrase = string(p)
					clear(p)
				}
				return createOnNode(cmd.OutOrStdout(), socket, req)
			}
			opts := mkfs.Options{Size: n, KDF: kdf}
			if encrypt {
				// Only a size is needed for the checks before asking.
				opts.Passphrase = []byte{0}
			}
			if image != "" {
				return createInImage(cmd, image, opts, passFile)
			}
			if fi, err := os.Stat(filepath.Join(media, "byzantium")); err != nil || !fi.IsDir() {
				return fmt.Errorf("persist create: %s has no byzantium/ folder: is it Byzantium boot media?", media)
			}
			path := filepath.Join(media, overlays.DefaultSaveDat)
			if _, err := os.Lstat(path); err == nil {
				return fmt.Errorf("persist create: %s exists: a save.dat is never overwritten (move it away first)", path)
			}
			if err := checkSaveDatOptions(opts); err != nil {
				return err
			}
			if err := savedat.Fits(filepath.Dir(path), n); err != nil {
				return fmt.Errorf("persist create: %w", err)
			}
			if encrypt {
				if opts.Passphrase, err = passphrase(passFile); err != nil {
					return err
				}
				defer clear(opts.Passphrase)
			} else {
				opts.Passphrase = nil
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			in := watchInterrupts(cmd.ErrOrStderr(), cancel)
			defer in.stop()
			opts.Progress = saveDatProgress(os.Stderr, func() { in.set(phaseCancel) })
			if err := mkfs.CreateContext(ctx, path, opts); err != nil {
				if s := in.signal(); s != nil {
					return fmt.Errorf("persist create: %w (%v): the partial save.dat was removed", errInterrupted, s)
				}
				return fmt.Errorf("persist create: %w", err)
			}
			in.set(phaseFinish)
			fmt.Fprintf(cmd.OutOrStdout(), "byz: wrote %s (%s, %s)\n", path, spec.FormatSize(n), kindOf(encrypt))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&media, "media", "", "the boot media folder (holding byzantium/)")
	f.StringVar(&image, "image", "", "a USB image byz built (its FAT partition gets the save.dat)")
	f.StringVar(&size, "size", "512M", "size of the save.dat (K, M, G); 4095M at most on FAT")
	f.BoolVar(&encrypt, "encrypt", false, "make it a LUKS2 volume")
	f.StringVar(&passFile, "passphrase-file", "", "read the passphrase from this file's first line")
	f.StringVar(&kdfMemory, "kdf-memory", "1G", "argon2id memory, 32K to 4G (cryptsetup's default is 1G; a node needs that much RAM free to unlock)")
	f.IntVar(&kdfTime, "kdf-time", luks2.DefaultKDF.Time, "argon2id passes, at least 1 (passes times memory at most 16G)")
	f.StringVar(&socket, "socket", nodeapi.DefaultSocket, "byzd's local socket (on a running node)")
	return c
}

func kindOf(encrypt bool) string {
	if encrypt {
		return "encrypted"
	}
	return "plain"
}

// checkSaveDatOptions checks the options as savedat will, before a
// passphrase is asked for (mkfs.NewStream checks them again).
func checkSaveDatOptions(opts mkfs.Options) error {
	// An empty file system in an unlinked scratch file would be made to
	// check them all; the size rules are what the user can get wrong.
	fsSize := opts.Size
	if opts.Passphrase != nil {
		fsSize -= luks2.DataOffset
	}
	if opts.Size%(1<<20) != 0 || fsSize < savedat.MinSize {
		return usageError{fmt.Errorf("--size %s: a save.dat is a multiple of 1M, at least %dM (%dM encrypted)",
			spec.FormatSize(opts.Size), savedat.MinSize>>20, (savedat.MinSize+luks2.DataOffset)>>20)}
	}
	return nil
}

// createInImage is byz persist create --image: the save.dat is made as a
// stream (scratch files unlinked at once) and copied into the image's
// FAT partition, which is checked first: Byzantium media, room for it.
func createInImage(cmd *cobra.Command, image string, opts mkfs.Options, passFile string) error {
	if err := checkSaveDatOptions(opts); err != nil {
		return err
	}
	iv, err := openImageVolume(image)
	if err != nil {
		return err
	}
	defer iv.f.Close()
	if fsys, err := fat.OpenFS(iv.f, iv.off); err == nil {
		if _, err := fs.Stat(fsys, overlays.DefaultSaveDat); err == nil {
			return fmt.Errorf("persist create: %s already holds %s: a save.dat is never overwritten", image, overlays.DefaultSaveDat)
		}
	}
	if err := savedat.CheckFATSize(opts.Size); err != nil {
		return fmt.Errorf("persist create: %s: %w", image, err)
	}
	if room := iv.vol.FileRoom(); opts.Size > room {
		return fmt.Errorf("persist create: %w: the FAT partition of %s has room for a save.dat of %s (%s free, less room for its folder): choose a smaller --size",
			savedat.ErrNoSpace, image, bytesize.Format(room), bytesize.Format(iv.vol.FreeBytes()))
	}
	encrypt := opts.Passphrase != nil
	if encrypt {
		if opts.Passphrase, err = passphrase(passFile); err != nil {
			return err
		}
		defer clear(opts.Passphrase)
	}
	in := watchInterrupts(cmd.ErrOrStderr(), func() {})
	defer in.stop()
	opts.Progress = saveDatProgress(os.Stderr, nil)
	s, err := mkfs.NewStream("", opts)
	if err != nil {
		return fmt.Errorf("persist create: %w", err)
	}
	defer s.Close()
	// The copy into the image changes it in place: once begun it is
	// finished, so the image never holds half a save.dat.
	in.set(phaseFinish)
	prog := &countingReader{r: s, total: s.Size, progress: opts.Progress}
	opts.Progress(mkfs.Event{Step: "writing", Total: s.Size})
	if err := iv.vol.AddFile(overlays.DefaultSaveDat, opts.Size, prog, time.Now()); err != nil {
		return fmt.Errorf("persist create: %w", err)
	}
	if err := iv.f.Sync(); err != nil {
		return fmt.Errorf("persist create: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "byz: wrote %s:%s (%s, %s)\n", image, overlays.DefaultSaveDat, spec.FormatSize(opts.Size), kindOf(encrypt))
	return nil
}

// countingReader reports the bytes read through it as writing progress.
type countingReader struct {
	r           io.Reader
	done, total int64
	progress    func(mkfs.Event)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.done += int64(n)
		c.progress(mkfs.Event{Step: "writing", Done: c.done, Total: c.total})
	}
	return n, err
}

// imageVolume is the FAT partition of a USB image, open for adding files.
type imageVolume struct {
	f   *os.File
	off int64 // of the FAT partition
	vol *fat.Volume
}

// openImageVolume finds the FAT32 partition of a GPT disk image that
// holds Byzantium media (usbimg.Open, then byzantium/manifest.json or a
// media marker): a save.dat is written into nothing else.
func openImageVolume(image string) (*imageVolume, error) {
	img, err := usbimg.Open(image, os.O_RDWR)
	if err != nil {
		if errors.Is(err, usbimg.ErrNoMedia) {
			return nil, fmt.Errorf("persist create: %s: %w: is it a USB image byz built?", image, err)
		}
		return nil, fmt.Errorf("persist create: %w", err)
	}
	if img.Partition == 0 {
		img.Close()
		return nil, fmt.Errorf("persist create: %s is a FAT32 file system without a partition table, not a USB image byz built: nothing was written", image)
	}
	if !isMedia(img.FS) {
		img.Close()
		return nil, fmt.Errorf("persist create: %s has a FAT32 partition, but no Byzantium media on it (no %s, no %s* marker): nothing was written",
			image, overlays.ManifestPath, overlays.MediaMarkerPrefix)
	}
	v, err := fat.OpenVolume(img.File, img.Offset)
	if err != nil {
		img.Close()
		return nil, fmt.Errorf("persist create: %s: %w", image, err)
	}
	return &imageVolume{f: img.File, off: img.Offset, vol: v}, nil
}

// isMedia reports whether a FAT file system holds Byzantium media.
func isMedia(fsys fs.FS) bool {
	if _, err := fs.Stat(fsys, overlays.ManifestPath); err == nil {
		return true
	}
	ents, err := fs.ReadDir(fsys, path.Dir(overlays.MediaMarkerPrefix))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasPrefix(strings.ToLower(e.Name()), path.Base(overlays.MediaMarkerPrefix)) && !e.IsDir() {
			return true
		}
	}
	return false
}
