package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"byzantium/builder/spec"
	"byzantium/image/clone"
	"byzantium/internal/bytesize"
	"byzantium/overlays"
	"byzantium/runtime/luks2"
)

// nodeTmp is where a clone on a node keeps scratch files: a tmpfs outside
// the overlay (under /tmp they would land in the changes being copied).
const nodeTmp = "/" + overlays.RunDir

func newCloneCmd() *cobra.Command {
	var (
		from, saveSize, passFile, kdfMemory, size, progress, stateDir string
		modules                                                       []string
		encrypt, withState, withSecrets, plan, yes, force             bool
		kdfTime                                                       int
	)
	c := &cobra.Command{
		Use:   "clone [--from MEDIA_DIR|IMAGE] TARGET",
		Short: "Write a bootable copy of a node's media onto a stick or into a USB image",
		Long: `Write a bootable copy of Byzantium media onto TARGET, a block device (a USB
stick) or an image file. On a running node the source is the node's boot
media; --from names a media folder (a build's dir output, a mounted stick)
or a USB image or stick instead.

The copy is a USB stick of its own: GPT, a FAT32 partition with the media
tree, GRUB for BIOS and shim + GRUB for UEFI and Secure Boot, the node's
kernel, initramfs and modules. It gets new disk and partition GUIDs, a new
FAT volume ID and a new media ID. Every file is checked against the source's
manifest as it is written, read back from TARGET and checked against the
clone's own manifest; the partition table is written last, so a failed or
interrupted clone leaves no stick that looks bootable.

A target that is the source, or holds it, or that the source lives on (the
same file or device by identity, a loop device over the source image, the
disk of a source partition) is refused, whatever the options. A device is
refused when anything on it is mounted or in use (the node's own boot stick
first of all), when it is too small, and when it is not removable (unless
--force); its model, serial and size are shown and a "yes" is asked for
(--yes for scripts). An existing image file is replaced only with --force.

--with-state carries the node's current changes along as a module, without
its identity and secrets (TLS key, admin credentials and sessions, node ID,
SSH host keys, mesh identity) unless --with-secrets: the clone makes its own
on first boot. With --encrypt they go inside the new encrypted save.dat
instead (its upper layer, which the clone's byz-init stacks on top), so
nothing of them reaches the stick in the clear; that takes root (a loop
device and an ext4 mount) and a --save-size they fit in.

--plan prints what would be written, the space it needs and the room left
for a save.dat, and writes nothing. --progress=json prints one JSON object
a line (see docs/clone.md). Modules dropped onto the source by hand go
along, marked unlisted in the clone's manifest.

An image file TARGET gets the source image's (or stick's) size unless
--size says otherwise, so its room for a save.dat carries over; from a
folder, it is as small as the clone allows. The FAT partition spans the
target up to FAT32's limit of 2 TiB; a save.dat is at most 4095 MiB.`,
		Example: `  byz clone /dev/sdb                                  # on a node: its media onto a stick
  byz clone /dev/sdb --save-size 1G --encrypt        # with a new encrypted save.dat
  byz clone /dev/sdb --modules ngircd --with-state   # one optional module, and the node's changes
  byz clone --from out/byzantium-usb.img /dev/sdc --plan
  byz clone --from out/byzantium-usb.img copy.img --save-size 512M`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := clone.Options{WithSecrets: withSecrets}
			if cmd.Flags().Changed("modules") {
				opts.Modules = []string{}
				for _, m := range modules {
					if m = strings.TrimSpace(m); m != "" {
						opts.Modules = append(opts.Modules, m)
					}
				}
			}
			if saveSize != "" {
				n, err := spec.ParseSize(saveSize)
				if err != nil {
					return usageError{fmt.Errorf("--save-size: %w", err)}
				}
				opts.SaveSize = n
			}
			if (encrypt || passFile != "") && opts.SaveSize == 0 {
				return usageError{errors.New("clone: --encrypt and --passphrase-file need --save-size")}
			}
			if passFile != "" && !encrypt {
				return usageError{errors.New("clone: --passphrase-file needs --encrypt")}
			}
			if withSecrets && !withState && stateDir == "" {
				return usageError{errors.New("clone: --with-secrets needs --with-state")}
			}
			mode := progress
			if mode == "auto" {
				mode = "none"
				if isTerminal(os.Stderr) {
					mode = "bar"
				}
			}
			if mode != "bar" && mode != "json" && mode != "none" {
				return usageError{fmt.Errorf("--progress %q: want auto, bar, json or none", progress)}
			}

			var err error
			onNode := from == ""
			if encrypt {
				// argon2id takes this much RAM here as the passphrase is
				// set, and on the node that unlocks it: on a node, unless
				// told, no more than half of its RAM.
				var capBytes int64
				var si syscall.Sysinfo_t
				if onNode && !cmd.Flags().Changed("kdf-memory") && syscall.Sysinfo(&si) == nil {
					capBytes = int64(si.Totalram) * int64(si.Unit) / 2 >> 20 << 20
				}
				// Checked here, before the plan, by the check every
				// command that takes KDF costs makes.
				if opts.KDF, err = kdfCosts(kdfMemory, kdfTime, capBytes); err != nil {
					return err
				}
				// The plan needs to know there will be one; the real one is
				// asked for only when something is to be written.
				opts.Passphrase = []byte("-")
			}
			var src *clone.Source
			if onNode {
				src, err = clone.OpenNode("/")
			} else {
				src, err = clone.OpenSource(from)
			}
			if err != nil {
				return err
			}
			defer src.Close()
			if onNode {
				if err := clone.Idle(); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "byz: warning: %v\n", err)
				}
				if fi, err := os.Stat(nodeTmp); err == nil && fi.IsDir() {
					opts.TempDir = nodeTmp
				}
			}
			switch {
			case stateDir != "":
				opts.State = stateDir
			case withState && onNode:
				opts.State = "/" + overlays.UpperDir
				syscall.Sync()
			case withState:
				return usageError{errors.New("clone: --with-state takes the running node's changes; with --from, name an upper folder with --state DIR")}
			}
			p, err := clone.NewPlan(src, opts)
			if err != nil {
				return err
			}

			target := args[0]
			sys := clone.System{}
			// Before anything else, and whatever the options: a target
			// that is the source (or holds it, or lives under it) would
			// destroy what is being read.
			if err := sys.SameAsSource(src, target); err != nil {
				return err
			}
			dev, err := sys.Inspect(target)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if err != nil && strings.HasPrefix(filepath.Clean(target), "/dev/") {
				return fmt.Errorf("clone: %s: no such device (is the stick plugged in?)", target)
			}
			out := cmd.OutOrStdout()
			if dev != nil {
				if size != "" {
					return usageError{errors.New("clone: --size is for image files; a device is cloned onto whole")}
				}
				need := p.MinSize()
				checkErr := sys.Check(dev, need, force)
				if plan {
					if err := p.Print(out, dev.Size); err != nil {
						return err
					}
					fmt.Fprintf(out, "target device %s\n", dev)
					if checkErr != nil {
						return checkErr
					}
					fmt.Fprintln(out, "nothing written (--plan)")
					return nil
				}
				if checkErr != nil {
					return checkErr
				}
				if !yes {
					if err := confirmDevice(cmd.ErrOrStderr(), dev); err != nil {
						return err
					}
				}
			} else {
				// Without --size, an image of the source's size (with its
				// room for a save.dat), or the smallest that holds the clone.
				n, why := p.ImageSize(), "the source's size"
				if n == p.MinSize() {
					why = "the smallest that holds the clone"
				}
				if size != "" {
					if n, err = spec.ParseSize(size); err != nil {
						return usageError{fmt.Errorf("--size: %w", err)}
					}
					n = (n + 1<<20 - 1) &^ (1<<20 - 1)
					why = "--size"
				}
				var tooSmall error
				if sp, err := p.Space(n); err != nil || !sp.Fits() {
					tooSmall = fmt.Errorf("%w: an image of %s cannot hold the clone; it needs at least %s (leave --size out for the smallest)",
						clone.ErrTooSmall, bytesize.Format(n), bytesize.Format(p.MinSize()))
				}
				if plan {
					if err := p.Print(out, n); err != nil {
						return err
					}
					fmt.Fprintf(out, "target image %s of %s (%s)\n", target, bytesize.Format(n), why)
					if tooSmall != nil {
						return tooSmall
					}
					fmt.Fprintln(out, "nothing written (--plan)")
					return nil
				}
				if _, err := os.Stat(target); err == nil && !force {
					return fmt.Errorf("%w: %s exists: --force replaces it (once the clone is complete)", clone.ErrRefused, target)
				}
				if tooSmall != nil {
					return tooSmall
				}
				size = fmt.Sprint(n)
			}
			if encrypt {
				if opts.Passphrase, err = passphrase(passFile); err != nil {
					return err
				}
				defer clear(opts.Passphrase)
				if p, err = clone.NewPlan(src, opts); err != nil {
					return err
				}
			}

			var t *clone.Target
			if dev != nil {
				t, err = clone.OpenDevice(dev)
			} else {
				n, _ := spec.ParseSize(size)
				t, err = clone.CreateImage(target, n, force)
			}
			if err != nil {
				return err
			}
			defer t.Close()

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			prog := &clone.Progress{}
			report := startCloneProgress(mode, out, cmd.ErrOrStderr(), prog)
			res, err := p.Write(ctx, t, prog)
			report(res, err)
			if err != nil {
				if dev != nil {
					return fmt.Errorf("%w (%s has no partition table now: nothing will boot or mount from it)", err, dev.Path)
				}
				return err
			}
			if mode != "json" {
				fmt.Fprintf(out, "byz: cloned media %s onto %s as media %s (disk %s, FAT volume %s): %s in %d files written in %.1fs, read back and verified in %.1fs\n",
					res.SourceID, res.Target, res.MediaID, res.DiskGUID, res.VolumeID, bytesize.Format(res.Bytes), res.Files,
					res.Write.Seconds(), res.Verify.Seconds())
				if res.StateModule != "" {
					fmt.Fprintf(out, "byz: the node's changes are in %s\n", res.StateModule)
				}
				if res.StateInSaveDat {
					fmt.Fprintln(out, "byz: the node's changes are inside the encrypted save.dat (its upper layer), under the new passphrase")
				}
				if res.Unpartitioned > 0 {
					fmt.Fprintf(out, "byz: the FAT partition stops at FAT32's 2 TiB limit: %s of %s are left unpartitioned\n", bytesize.Format(res.Unpartitioned), res.Target)
				}
				fmt.Fprintf(out, "byz: %s\n", res.RoomLine())
				if len(res.Unlisted) > 0 {
					fmt.Fprintf(out, "byz: added by hand and carried as found, marked unlisted in the clone's manifest: %s\n", strings.Join(res.Unlisted, ", "))
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&from, "from", "", "clone this media folder, USB image or stick instead of the running node's media")
	f.StringVar(&saveSize, "save-size", "", "make a fresh save.dat of this size (K, M, G) on the clone")
	f.BoolVar(&encrypt, "encrypt", false, "make the save.dat LUKS2-encrypted, with a new passphrase")
	f.StringVar(&passFile, "passphrase-file", "", "read the new passphrase from this file's first line (default: ask twice)")
	f.StringVar(&kdfMemory, "kdf-memory", "1G", "argon2id memory of the save.dat's passphrase, 32K to 4G (the node that boots the clone needs that much RAM free; on a node, at most half its RAM unless given)")
	f.IntVar(&kdfTime, "kdf-time", luks2.DefaultKDF.Time, "argon2id passes, at least 1 (passes times memory at most 16G)")
	f.StringSliceVar(&modules, "modules", nil, "optional modules to take, by name (default: all; '' for none)")
	f.BoolVar(&withState, "with-state", false, "carry the node's current changes along (without identity and secrets): as a module, or with --encrypt inside the encrypted save.dat")
	f.StringVar(&stateDir, "state", "", "carry this overlay upper folder along instead of the running node's changes")
	f.BoolVar(&withSecrets, "with-secrets", false, "keep the identity and secrets in the --with-state module")
	f.BoolVar(&plan, "plan", false, "print what would be written and the space needed; write nothing")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask before writing a device (scripts)")
	f.BoolVar(&force, "force", false, "write a disk that is not removable; replace an existing image file")
	f.StringVar(&size, "size", "", "size of an image file TARGET (default: the source image's or stick's size, or as small as the clone allows)")
	f.StringVar(&progress, "progress", "auto", "progress display: bar, json (one object a line on stdout), none, or auto (a bar on a terminal)")
	return c
}

// confirmDevice names the device and asks for "yes" on the terminal.
func confirmDevice(w io.Writer, d *clone.Device) error {
	if !isTerminal(os.Stdin) {
		return fmt.Errorf("%w: %s: no terminal to confirm on: pass --yes to write it", clone.ErrRefused, d.Path)
	}
	fmt.Fprintf(w, "About to write a clone onto %s\nEverything on it will be lost. Type yes to go on: ", d)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("%w: %s: not confirmed", clone.ErrRefused, d.Path)
	}
	return nil
}

// doneEvent is the last line of --progress=json on success.
type doneEvent struct {
	Phase string `json:"phase"`
	Total int64  `json:"total"`
	*clone.Result
	WriteS  float64 `json:"write_s"`
	VerifyS float64 `json:"verify_s"`
}

// startCloneProgress shows prog until the returned function is called
// with the outcome: a bar on stderr, or JSON lines on stdout (a line when
// the phase changes and every second; the last one "done" or "error").
func startCloneProgress(mode string, stdout, stderr io.Writer, prog *clone.Progress) func(*clone.Result, error) {
	if mode == "none" {
		return func(*clone.Result, error) {}
	}
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	last := clone.Event{}
	lastAt := time.Time{}
	show := func(final bool) {
		mu.Lock()
		defer mu.Unlock()
		e := prog.Snapshot()
		if e.Phase == "" {
			return
		}
		switch mode {
		case "json":
			if final || e.Phase != last.Phase || time.Since(lastAt) >= time.Second {
				enc.Encode(e)
				last, lastAt = e, time.Now()
			}
		case "bar":
			fmt.Fprintf(stderr, "\r\033[K%s", bar(e))
		}
	}
	prog.OnPhase = func() { show(false) }
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				show(false)
			case <-done:
				return
			}
		}
	}()
	return func(res *clone.Result, err error) {
		close(done)
		<-finished
		switch {
		case mode == "bar":
			show(true)
			fmt.Fprintln(stderr)
		case err != nil:
			enc.Encode(struct {
				Phase string `json:"phase"`
				Error string `json:"error"`
			}{"error", err.Error()})
		default:
			enc.Encode(doneEvent{Phase: "done", Total: res.Bytes, Result: res,
				WriteS: res.Write.Seconds(), VerifyS: res.Verify.Seconds()})
		}
	}
}

// bar draws one progress line: phase, a bar, bytes, rate, time left and
// the file at hand.
func bar(e clone.Event) string {
	const width = 24
	if e.Total <= 0 {
		return e.Phase + "..."
	}
	frac := min(float64(e.Bytes)/float64(e.Total), 1)
	n := int(frac * width)
	s := fmt.Sprintf("%-7s [%s%s] %3.0f%% %s of %s, %s/s", e.Phase, strings.Repeat("#", n), strings.Repeat(".", width-n),
		frac*100, bytesize.Format(e.Bytes), bytesize.Format(e.Total), bytesize.Format(int64(e.Rate)))
	if e.Rate > 0 {
		s += fmt.Sprintf(", %s left", (time.Duration(e.ETA) * time.Second).String())
	}
	if e.File != "" {
		s += "  " + filepath.Base(e.File)
	}
	return s
}
