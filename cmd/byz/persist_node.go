package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"byzantium/builder/spec"
	"byzantium/modules"
	"byzantium/modules/squashfs"
	"byzantium/overlays"
	"byzantium/runtime/changes"
	"byzantium/runtime/nodeapi"
)

// liveUpper is the running node's upper layer: what a snapshot takes.
const liveUpper = "/" + overlays.UpperDir

// localCall sends one request to byzd's local API (the node command's
// client over the socket) and decodes the answer into out.
func localCall(socket, method, path string, in, out any) error {
	c, err := nodeConn{Socket: socket}.client()
	if err != nil {
		return err
	}
	_, err = c.Call(context.Background(), method, path, in, out)
	return err
}

// createOnNode has byzd make the save.dat on the node's media.
func createOnNode(w io.Writer, socket string, req nodeapi.SaveDatRequest) error {
	what := "a plain"
	if req.Passphrase != "" {
		what = "an encrypted"
	}
	// byzd does the work; this says why nothing shows for a while.
	fmt.Fprintf(os.Stderr, "byz: byzd is making %s %s save.dat on the boot media (writing it, and deriving the key, take a while)...\n",
		what, spec.FormatSize(req.SizeBytes))
	var res nodeapi.SaveDatResult
	err := localCall(socket, "POST", "/api/v1/persistence/savedat", req, &res)
	req.Passphrase = ""
	if err != nil {
		return fmt.Errorf("persist create: %w", err)
	}
	kind := "plain"
	if res.Encrypted {
		kind = fmt.Sprintf("encrypted, argon2id %s", spec.FormatSize(int64(res.KDFMemKiB)<<10))
	}
	fmt.Fprintf(w, "byz: wrote %s on the boot media (%s, %s); %s\n", res.Path, spec.FormatSize(res.SizeBytes), kind, res.Note)
	return nil
}

func newPersistSaveCmd() *cobra.Command {
	var socket string
	var atShutdown bool
	c := &cobra.Command{
		Use:   "save [--at-shutdown]",
		Short: "Save the changes kept in RAM (changes=EXIT:) to their store now",
		Long: `On a node booted with changes=EXIT:STORE, the changes live in RAM and are
written to STORE at a clean shutdown (busybox init runs this command). Run it
to save at any other moment. Each file is written whole (a new name, then a
rename); files deleted since the last save are removed from the store.

byzd does the save; when it does not answer, this command does it itself.
With --at-shutdown (init's shutdown action) a node in another mode is not an
error: there is nothing to save.`,
		Example: `  byz persist save`,
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if atShutdown {
				p, err := overlays.ReadPersistence("/")
				if err != nil || p.Mode != overlays.ModeExit {
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "byz: saving the changes to %s before shutdown...\n", p.Store)
			}
			var r nodeapi.SaveResult
			err := localCall(socket, "POST", "/api/v1/persistence/save", nil, &r)
			var opErr *net.OpError
			if errors.As(err, &opErr) {
				fmt.Fprintf(cmd.ErrOrStderr(), "byz: byzd does not answer (%v): saving without it\n", err)
				r, err = changes.SaveNode("/")
			}
			if err != nil {
				return fmt.Errorf("persist save: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "byz: saved the changes: %d entries, %d written (%s), %d removed, in %.1fs\n",
				r.Entries, r.Copied, spec.FormatSize(r.Bytes), r.Removed, r.Seconds)
			return nil
		},
	}
	c.Flags().StringVar(&socket, "socket", nodeapi.DefaultSocket, "byzd's local socket")
	c.Flags().BoolVar(&atShutdown, "at-shutdown", false, "do nothing, successfully, unless the node runs with changes=EXIT:")
	return c
}

func newPersistSnapshotCmd() *cobra.Command {
	var out, from, comp string
	c := &cobra.Command{
		Use:   "snapshot -o FILE.xzm [--from DIR]",
		Short: "Write the node's current changes as a module",
		Long: `Write the changes the node keeps (the overlay's upper layer: new and changed
files, and deletions as overlayfs whiteouts) as a module, as Porteus's "save
changes to a module" does. Put it in byzantium/modules/ of some media and it
stacks above the others at boot.

On a running node the changes are read live (a file being written at that
moment may be caught half-written: stop the service first for a clean copy).
--from takes an upper folder instead, e.g. of a save.dat mounted on another
machine (mount -o loop,ro save.dat /mnt; --from /mnt/upper).

Nothing is left out: the module carries the node's keys and passwords too.`,
		Example: `  byz persist snapshot -o /tmp/050-changes.xzm
  byz persist snapshot --from /mnt/upper -o 050-changes.xzm --comp xz`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError{errors.New("persist snapshot: -o FILE.xzm is required")}
			}
			src := from
			if src == "" {
				src = liveUpper
				if _, err := os.Stat(src); err != nil {
					return usageError{fmt.Errorf("persist snapshot: %s: %w (not a running node? use --from DIR)", src, err)}
				}
				unix.Sync()
			}
			if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
				return usageError{fmt.Errorf("persist snapshot: --from %s is not a folder", src)}
			}
			var opts modules.CreateOptions
			var err error
			if opts.Squashfs.Compressor, err = squashfs.ParseCompressor(comp); err != nil {
				return usageError{err}
			}
			if opts.Epoch, err = sourceDateEpoch(); err != nil {
				return usageError{err}
			}
			host, _ := os.Hostname()
			opts.SourceNames = []string{"changes of " + host + " at " + time.Now().UTC().Format(time.RFC3339)}
			if _, err := modules.Create([]string{src}, out, opts); err != nil {
				return fmt.Errorf("persist snapshot: %w", err)
			}
			fi, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "byz: wrote %s (%s) from %s\n", out, spec.FormatSize(fi.Size()), filepath.Clean(src))
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&out, "output", "o", "", "the module to write")
	f.StringVar(&from, "from", "", "an upper folder (default: the running node's)")
	f.StringVar(&comp, "comp", "zstd", "compression: zstd, gzip or xz")
	return c
}
