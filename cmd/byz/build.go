package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"byzantium/builder"
	"byzantium/builder/cache"
	"byzantium/builder/spec"
)

func newBuildCmd() *cobra.Command {
	var (
		file, out, cacheDir, initBin, debDir string
		noCache, quiet                       bool
	)
	c := &cobra.Command{
		Use:   "build -f SPEC -o DIR",
		Short: "Build boot media (ISO, USB image, folder) from a YAML spec",
		Long: `Build the live system a spec describes: the kernel's modules as 000-kernel.xzm,
an initramfs with byz-init and the drivers that reach the media, every module,
the /etc/inittab of the spec's console setting as NNN-console.xzm (last in
base; a module that brings its own /etc/inittab is refused), and the outputs
the spec asks for.

Everything is checked before anything is written. Artifacts are kept in a
content-addressed cache: a second build with nothing changed compresses
nothing, and changing one module's inputs rebuilds that module and the media.
Set SOURCE_DATE_EPOCH for byte-identical outputs across builds.

The outputs are written into a hidden folder in DIR and moved into place
together at the end: a build that fails or is interrupted (Ctrl-C) leaves
DIR as it was, the outputs of the build before included, and removes what it
began. A build replaces only its own outputs; a dir output replaces only a
folder an earlier build wrote. Work folders that a killed build left in the
cache are removed by the next build; 'byz cache prune' removes them and old
artifacts on demand.

The bootloaders come from Debian packages (make fetch puts them in the
repository's .cache/debs): by default the nearest .cache/debs in the spec's
folder or above it, else the working directory's; --debs names another.`,
		Example: `  byz build -f examples/byzantium.yaml -o out
  byz build -f examples/test.yaml -o out --no-cache
  SOURCE_DATE_EPOCH=1700000000 byz build -f node.yaml -o out --init bin/byz-init`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageError{fmt.Errorf("build: -f SPEC is required")}
			}
			epoch, err := sourceDateEpoch()
			if err != nil {
				return usageError{err}
			}
			if epoch == nil {
				t := time.Unix(0, 0).UTC()
				epoch = &t
			}
			s, err := spec.Load(file, spec.Options{})
			if err != nil {
				return err
			}
			if initBin == "" {
				// byz-init is built next to byz (make puts both in bin/).
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				initBin = filepath.Join(filepath.Dir(exe), "byz-init")
			}
			if _, err := os.Stat(initBin); err != nil {
				return fmt.Errorf("byz-init binary: %w (build it with make, or pass --init)", err)
			}
			logf := func(format string, a ...any) {
				if !quiet {
					fmt.Fprintf(os.Stderr, "byz: "+format+"\n", a...)
				}
			}
			ctx, stop := onInterrupt(cmd.Context())
			defer stop()
			res, err := builder.BuildContext(ctx, s, builder.Options{
				Out: out, Cache: &cache.Cache{Dir: cacheDir, Refresh: noCache}, Epoch: *epoch,
				InitBinary: initBin, DebDir: debDir, Logf: logf,
			})
			if err != nil {
				return err
			}
			for _, o := range res.Outputs {
				logf("wrote %s", o)
			}
			logf("cache: %d reused, %d built", res.Hits, res.Misses)
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "the spec (YAML) to build (required)")
	f.StringVarP(&out, "output", "o", "out", "folder for the outputs")
	f.StringVar(&cacheDir, "cache", ".cache/build", "folder of the build cache")
	f.BoolVar(&noCache, "no-cache", false, "rebuild everything from the inputs (the cache is refreshed)")
	f.StringVar(&debDir, "debs", "", "folder of the Debian packages the bootloaders come from (default: the nearest .cache/debs above the spec, else ./.cache/debs)")
	f.StringVar(&initBin, "init", "", "byz-init binary (default: byz-init next to byz)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing but errors")
	return c
}
