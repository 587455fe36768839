package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"byzantium/builder/spec"
	"byzantium/image/fat"
	"byzantium/image/gpt"
	"byzantium/runtime/daemon"
	"byzantium/runtime/initsys"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"
)

func newPersistCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "persist",
		Short: "Make and manage persistence stores (save.dat)",
	}
	c.AddCommand(newPersistCreateCmd(), newPersistPassphraseCmd(), newPersistSaveCmd(), newPersistSnapshotCmd(), newPersistResizeCmd())
	return c
}

func newPersistPassphraseCmd() *cobra.Command {
	var oldFile, newFile string
	var add bool
	c := &cobra.Command{
		Use:   "passphrase SAVE.DAT [--old-file F] [--new-file F] [--add]",
		Short: "Change (or add) the passphrase of an encrypted save.dat",
		Long: `Open the encrypted save.dat with a passphrase it has and give it a new one.
By default the old passphrase is removed once the new one is in (a change);
with --add both open it. The volume key, and so the data, stay the same.
Passphrases come from files (their first line) or are asked on the terminal.
cryptsetup sees the same result (it is a LUKS2 keyslot change).`,
		Example: `  byz persist passphrase /media/stick/byzantium/changes/save.dat
  byz persist passphrase save.dat --old-file old.txt --new-file new.txt
  byz persist passphrase save.dat --add --new-file spare.txt`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.OpenFile(args[0], os.O_RDWR, 0)
			if err != nil {
				return fmt.Errorf("persist passphrase: %w", err)
			}
			defer f.Close()
			h, err := luks2.Read(f)
			if err != nil {
				return fmt.Errorf("persist passphrase: %s: %w", args[0], err)
			}
			old, err := askOne(oldFile, "Current passphrase: ")
			if err != nil {
				return err
			}
			key, slot, err := luks2.Unlock(f, h, old)
			clear(old)
			if err != nil {
				return fmt.Errorf("persist passphrase: %s: %w", args[0], err)
			}
			defer clear(key)
			nw, err := passphrase(newFile)
			if err != nil {
				return err
			}
			defer clear(nw)
			kdf := luks2.KDFParams{}
			if k := h.Metadata.Keyslots[slot].KDF; k.Type == "argon2id" {
				// Keep the costs the volume was made with, when they are
				// ones a new keyslot may have.
				kdf = luks2.KDFParams{Type: "argon2id", Time: int(k.Time), Memory: int(k.Memory), Threads: int(k.CPUs)}
				if kdf.Check() != nil {
					kdf = luks2.KDFParams{}
				}
			}
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
			fmt.Fprintf(cmd.OutOrStdout(), "byz: passphrase %s (keyslot %s)\n", what, added)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&oldFile, "old-file", "", "read the current passphrase from this file's first line")
	f.StringVar(&newFile, "new-file", "", "read the new passphrase from this file's first line")
	f.BoolVar(&add, "add", false, "keep the current passphrase too")
	return c
}

// askOne reads one passphrase from file, or once from the terminal.
func askOne(file, prompt string) ([]byte, error) {
	if file != "" {
		return passphrase(file)
	}
	p, err := askTerminal("--old-file", prompt)
	if err != nil {
		return nil, err
	}
	return p[0], nil
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

With --image, the save.dat goes into the FAT partition of a USB image byz
built (the file is edited in place; nothing is written unless the save.dat
fits).

With neither, on a running node: byzd makes the save.dat on the node's boot
media, used from the next boot on (the argon2id memory is capped at half the
node's RAM, which it needs to unlock it).

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
			if media == "" && image == "" {
				if _, err := os.Stat(socket); err != nil {
					return usageError{fmt.Errorf("persist create: give --media DIR or --image FILE.img (there is no byzd socket %s: this is not a running node)", socket)}
				}
				req := daemon.SaveDatRequest{SizeBytes: n}
				if encrypt {
					if cmd.Flags().Changed("kdf-memory") {
						mem, err := spec.ParseSize(kdfMemory)
						if err != nil {
							return usageError{fmt.Errorf("--kdf-memory: %w", err)}
						}
						req.KDFMemoryKiB = int(mem >> 10)
					}
					req.KDFTime = kdfTime
					p, err := passphrase(passFile)
					if err != nil {
						return err
					}
					req.Passphrase = string(p)
					clear(p)
				}
				return createOnNode(cmd.OutOrStdout(), socket, req)
			}
			var vol *imageVolume
			if image != "" {
				if vol, err = openImageVolume(image); err != nil {
					return err
				}
				defer vol.f.Close()
			} else if fi, err := os.Stat(filepath.Join(media, "byzantium")); err != nil || !fi.IsDir() {
				return fmt.Errorf("persist create: %s has no byzantium/ folder: is it Byzantium boot media?", media)
			}
			opts := savedat.Options{Size: n}
			if encrypt {
				mem, err := spec.ParseSize(kdfMemory)
				if err != nil {
					return usageError{fmt.Errorf("--kdf-memory: %w", err)}
				}
				opts.KDF = luks2.KDFParams{Type: "argon2id", Time: kdfTime, Memory: int(mem >> 10), Threads: 4}
				if opts.Passphrase, err = passphrase(passFile); err != nil {
					return err
				}
				defer clear(opts.Passphrase)
			} else if passFile != "" {
				return usageError{fmt.Errorf("persist create: --passphrase-file needs --encrypt")}
			}
			path := filepath.Join(media, initsys.DefaultSaveDat)
			if vol != nil {
				path = image + ":" + initsys.DefaultSaveDat
				if err := vol.add(opts); err != nil {
					return err
				}
			} else if err := savedat.Create(path, opts); err != nil {
				return err
			}
			kind := "plain"
			if encrypt {
				kind = "encrypted"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "byz: wrote %s (%s, %s)\n", path, spec.FormatSize(n), kind)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&media, "media", "", "the boot media folder (holding byzantium/)")
	f.StringVar(&image, "image", "", "a USB image byz built (its FAT partition gets the save.dat)")
	f.StringVar(&size, "size", "512M", "size of the save.dat (K, M, G)")
	f.BoolVar(&encrypt, "encrypt", false, "make it a LUKS2 volume")
	f.StringVar(&passFile, "passphrase-file", "", "read the passphrase from this file's first line")
	f.StringVar(&kdfMemory, "kdf-memory", "1G", "argon2id memory (cryptsetup's default is 1G; a node needs that much RAM free to unlock)")
	f.IntVar(&kdfTime, "kdf-time", luks2.DefaultKDF.Time, "argon2id passes")
	f.StringVar(&socket, "socket", daemon.DefaultSocket, "byzd's local socket (on a running node)")
	return c
}

// passphrase reads the passphrase from file's first line, or asks twice
// on the terminal with echo off.
func passphrase(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		p := bytes.Clone(bytes.TrimRight(line, "\r"))
		clear(b)
		if len(p) == 0 {
			return nil, fmt.Errorf("passphrase: %s starts with an empty line", file)
		}
		return p, nil
	}
	p, err := askTerminal("--passphrase-file", "Passphrase for the save.dat: ", "The same again: ")
	if err != nil {
		return nil, err
	}
	defer clear(p[1])
	if len(p[0]) == 0 || !bytes.Equal(p[0], p[1]) {
		clear(p[0])
		return nil, errors.New("passphrase: empty, or the two differ")
	}
	return p[0], nil
}

// askTerminal asks each prompt on the terminal with echo off and returns
// the lines typed; flag names the option to use without a terminal.
func askTerminal(flag string, prompts ...string) ([][]byte, error) {
	fd := int(os.Stdin.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("passphrase: standard input is not a terminal: use %s", flag)
	}
	quiet := *t
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, t)
	in := bufio.NewReader(os.Stdin)
	var out [][]byte
	for _, prompt := range prompts {
		fmt.Fprint(os.Stderr, prompt)
		line, err := in.ReadBytes('\n')
		fmt.Fprintln(os.Stderr)
		if err != nil {
			for _, p := range out {
				clear(p)
			}
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		out = append(out, bytes.Clone(bytes.TrimRight(line, "\r\n")))
		clear(line)
	}
	return out, nil
}

// imageVolume is the FAT partition of a USB image, open for adding files.
type imageVolume struct {
	f   *os.File
	vol *fat.Volume
}

// openImageVolume finds the FAT32 partition holding byzantium/ in a GPT
// disk image.
func openImageVolume(image string) (*imageVolume, error) {
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("persist create: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("persist create: %w", err)
	}
	tab, err := gpt.Read(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("persist create: %s: %w", image, err)
	}
	for _, p := range tab.Partitions {
		if v, err := fat.OpenVolume(f, p.Offset()); err == nil {
			return &imageVolume{f: f, vol: v}, nil
		}
	}
	f.Close()
	return nil, fmt.Errorf("persist create: %s has no FAT32 partition: is it a USB image byz built?", image)
}

// add makes the save.dat in a temporary file and copies it into the
// partition.
func (iv *imageVolume) add(opts savedat.Options) error {
	tmp, err := os.MkdirTemp("", "byz-persist-")
	if err != nil {
		return fmt.Errorf("persist create: %w", err)
	}
	defer os.RemoveAll(tmp)
	sd := filepath.Join(tmp, "save.dat")
	if err := savedat.Create(sd, opts); err != nil {
		return err
	}
	src, err := os.Open(sd)
	if err != nil {
		return fmt.Errorf("persist create: %w", err)
	}
	defer src.Close()
	if err := iv.vol.AddFile(initsys.DefaultSaveDat, opts.Size, src, time.Now()); err != nil {
		return fmt.Errorf("persist create: %w", err)
	}
	if err := iv.f.Sync(); err != nil {
		return fmt.Errorf("persist create: %w", err)
	}
	return nil
}
