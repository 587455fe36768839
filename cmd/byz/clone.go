package main

import (
	"bufio"
	"context"
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
	"github.com/spf13/pflag"

	"byzantium/builder/spec"
	"byzantium/image/clone"
	"byzantium/image/clone/cloneapi"
	"byzantium/internal/bytesize"
	"byzantium/runtime/luks2"
)

// cloneFlags are byz clone's flags, before they become a clone.Request.
type cloneFlags struct {
	from, saveSize, passFile, kdfMemory, size, progress, stateDir, request string
	modules                                                                []string
	encrypt, withState, withSecrets, plan, yes, force                      bool
	kdfTime                                                                int
}

func newCloneCmd() *cobra.Command {
	var cf cloneFlags
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
on first boot. The mesh identity never goes along, even with --with-secrets:
a clone is a new node on the mesh. With --encrypt they go inside the new encrypted save.dat
instead (its upper layer, which the clone's byz-init stacks on top), so
nothing of them reaches the stick in the clear; that takes root (a loop
device and an ext4 mount) and a --save-size they fit in.

--plan prints what would be written, the space it needs and the room left
for a save.dat, and writes nothing. --progress=json prints one JSON object
a line (see docs/clone.md). Modules dropped onto the source by hand go
along, marked unlisted in the clone's manifest.

--request FILE (- for standard input) reads the whole clone as one JSON
object instead of flags and TARGET, its passphrase included (see
docs/clone.md): byzd runs clones that way, so no passphrase is ever on a
command line.

An image file TARGET gets the source image's (or stick's) size unless
--size says otherwise, so its room for a save.dat carries over; from a
folder, it is as small as the clone allows. The FAT partition spans the
target up to FAT32's limit of 2 TiB; a save.dat is at most 4095 MiB.`,
		Example: `  byz clone /dev/sdb                                  # on a node: its media onto a stick
  byz clone /dev/sdb --save-size 1G --encrypt        # with a new encrypted save.dat
  byz clone /dev/sdb --modules ngircd --with-state   # one optional module, and the node's changes
  byz clone --from out/byzantium-usb.img /dev/sdc --plan
  byz clone --from out/byzantium-usb.img copy.img --save-size 512M`,
		Args: argsUsage(func(cmd *cobra.Command, args []string) error {
			if cf.request != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := cf.toRequest(cmd.Flags(), args)
			if err != nil {
				return err
			}
			mode, err := progressMode(cf.progress)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			res, err := clone.Run(ctx, req, cloneUI(cmd, cf, mode, cancel))
			if errors.Is(err, cloneapi.ErrBadRequest) {
				return usageError{err}
			}
			if err == nil && res != nil && mode != "json" {
				printCloned(cmd.OutOrStdout(), res)
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&cf.from, "from", "", "clone this media folder, USB image or stick instead of the running node's media")
	f.StringVar(&cf.saveSize, "save-size", "", "make a fresh save.dat of this size (K, M, G) on the clone")
	f.BoolVar(&cf.encrypt, "encrypt", false, "make the save.dat LUKS2-encrypted, with a new passphrase")
	f.StringVar(&cf.passFile, "passphrase-file", "", "read the new passphrase from this file's first line (default: ask twice)")
	f.StringVar(&cf.kdfMemory, "kdf-memory", "1G", "argon2id memory of the save.dat's passphrase, 32K to 4G (the node that boots the clone needs that much RAM free; on a node, at most half its RAM unless given)")
	f.IntVar(&cf.kdfTime, "kdf-time", luks2.DefaultKDF.Time, "argon2id passes, at least 1 (passes times memory at most 16G)")
	f.StringSliceVar(&cf.modules, "modules", nil, "optional modules to take, by name (default: all; '' for none)")
	f.BoolVar(&cf.withState, "with-state", false, "carry the node's current changes along (without identity and secrets): as a module, or with --encrypt inside the encrypted save.dat")
	f.StringVar(&cf.stateDir, "state", "", "carry this overlay upper folder along instead of the running node's changes")
	f.BoolVar(&cf.withSecrets, "with-secrets", false, "keep the identity and secrets in the --with-state module")
	f.BoolVar(&cf.plan, "plan", false, "print what would be written and the space needed; write nothing")
	f.BoolVarP(&cf.yes, "yes", "y", false, "do not ask before writing a device (scripts)")
	f.BoolVar(&cf.force, "force", false, "write a disk that is not removable; replace an existing image file")
	f.StringVar(&cf.size, "size", "", "size of an image file TARGET (default: the source image's or stick's size, or as small as the clone allows)")
	f.StringVar(&cf.progress, "progress", "auto", "progress display: bar, json (one object a line on stdout), none, or auto (a bar on a terminal)")
	f.StringVar(&cf.request, "request", "", "read the clone as a JSON request from this file (- for standard input) instead of flags and TARGET; --yes and --progress still apply")
	return c
}

// requestFlags may go with --request: how to show and confirm, not what
// to clone.
var requestFlags = map[string]bool{"request": true, "yes": true, "progress": true}

// toRequest turns the flags and TARGET into a clone request, or reads
// the one --request names.
func (cf cloneFlags) toRequest(fs *pflag.FlagSet, args []string) (clone.Request, error) {
	if cf.request != "" {
		var other string
		fs.Visit(func(f *pflag.Flag) {
			if !requestFlags[f.Name] && other == "" {
				other = "--" + f.Name
			}
		})
		if other != "" {
			return clone.Request{}, usageError{fmt.Errorf("clone: %s does not go with --request: put it in the request", other)}
		}
		return readRequest(cf.request)
	}
	if cf.passFile != "" && !cf.encrypt {
		return clone.Request{}, usageError{errors.New("clone: --passphrase-file needs --encrypt")}
	}
	req := clone.Request{Target: args[0], From: cf.from, Encrypt: cf.encrypt, WithState: cf.withState, State: cf.stateDir,
		WithSecrets: cf.withSecrets, Force: cf.force, Plan: cf.plan}
	if fs.Changed("modules") {
		req.Modules = []string{}
		for _, m := range cf.modules {
			if m = strings.TrimSpace(m); m != "" {
				req.Modules = append(req.Modules, m)
			}
		}
	}
	var err error
	if cf.saveSize != "" {
		if req.SaveSize, err = spec.ParseSize(cf.saveSize); err != nil {
			return clone.Request{}, usageError{fmt.Errorf("--save-size: %w", err)}
		}
	}
	if cf.size != "" {
		if req.Size, err = spec.ParseSize(cf.size); err != nil {
			return clone.Request{}, usageError{fmt.Errorf("--size: %w", err)}
		}
	}
	if err := req.Check(); err != nil {
		return clone.Request{}, usageError{err}
	}
	if cf.encrypt {
		// argon2id takes this much RAM here as the passphrase is set,
		// and on the node that unlocks it: on a node, unless told, no
		// more than half of its RAM. Checked here, before the plan, by
		// the check every command that takes KDF costs makes.
		var capBytes int64
		if cf.from == "" && !fs.Changed("kdf-memory") {
			capBytes = int64(luks2.LocalKDFMemory(0)) << 10
		}
		kdf, err := kdfCosts(cf.kdfMemory, cf.kdfTime, capBytes)
		if err != nil {
			return clone.Request{}, err
		}
		req.KDFMemoryKiB, req.KDFTime = kdf.Memory, kdf.Time
	}
	return req, nil
}

// readRequest reads a JSON clone request from file, "-" being standard
// input.
func readRequest(file string) (clone.Request, error) {
	r := io.Reader(os.Stdin)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return clone.Request{}, usageError{fmt.Errorf("--request: %w", err)}
		}
		defer f.Close()
		r = f
	}
	req, err := cloneapi.Decode(r)
	if err != nil {
		return clone.Request{}, usageError{err}
	}
	return req, nil
}

// progressMode resolves --progress: auto is a bar on a terminal.
func progressMode(progress string) (string, error) {
	mode := progress
	if mode == "auto" {
		mode = "none"
		if isTerminal(os.Stderr) {
			mode = "bar"
		}
	}
	if mode != "bar" && mode != "json" && mode != "none" {
		return "", usageError{fmt.Errorf("--progress %q: want auto, bar, json or none", progress)}
	}
	return mode, nil
}

// cloneUI is byz clone's side of clone.Run: warnings on stderr, the plan
// on stdout, a prompt for the device (unless --yes) and the passphrase,
// and progress as a bar or JSON lines. Once the write has begun, Ctrl-C
// and SIGTERM call cancel (before, they end byz as usual).
func cloneUI(cmd *cobra.Command, cf cloneFlags, mode string, cancel func()) clone.UI {
	ui := clone.UI{
		Out:        cmd.OutOrStdout(),
		Warn:       func(err error) { fmt.Fprintf(cmd.ErrOrStderr(), "byz: warning: %v\n", err) },
		Confirm:    func(d *clone.Device) error { return confirmDevice(cmd.ErrOrStderr(), d) },
		Passphrase: func() ([]byte, error) { return passphrase(cf.passFile) },
	}
	if cf.yes {
		ui.Confirm = func(*clone.Device) error { return nil }
	}
	ui.Writing = func(prog *clone.Progress) func(*clone.Result, error) {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		go func() {
			if _, ok := <-sigs; ok {
				cancel()
			}
		}()
		report := startCloneProgress(mode, cmd.OutOrStdout(), cmd.ErrOrStderr(), prog)
		return func(res *clone.Result, err error) {
			report(res, err)
			signal.Stop(sigs)
			close(sigs)
		}
	}
	return ui
}

// printCloned says what a clone wrote, for a person.
func printCloned(out io.Writer, res *clone.Result) {
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
	fmt.Fprintf(out, "byz: %s\n", clone.RoomLine(res))
	if len(res.Unlisted) > 0 {
		fmt.Fprintf(out, "byz: added by hand and carried as found, marked unlisted in the clone's manifest: %s\n", strings.Join(res.Unlisted, ", "))
	}
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

// startCloneProgress shows prog until the returned function is called
// with the outcome: a bar on stderr, or JSON lines on stdout (a line when
// the phase changes and every second; the last one "done" or "error").
func startCloneProgress(mode string, stdout, stderr io.Writer, prog *clone.Progress) func(*clone.Result, error) {
	if mode == "none" {
		return func(*clone.Result, error) {}
	}
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	last := cloneapi.Event{}
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
			enc.Encode(cloneapi.Failed(err))
		default:
			enc.Encode(cloneapi.Done(res))
		}
	}
}

// bar draws one progress line: phase, a bar, bytes, rate, time left and
// the file at hand.
func bar(e cloneapi.Event) string {
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
