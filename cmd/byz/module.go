package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"byzantium/internal/bytesize"
	"byzantium/modules"
	"byzantium/modules/entry"
)

func newModuleCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "module",
		Short: "Create and inspect modules (SquashFS .xzm files)",
		Long: `A module is a SquashFS image (NNN-name.xzm) that Byzantium stacks with overlayfs.
Each carries a manifest at /usr/share/byzantium/modules/<name>.json.`,
		Example: `  byz module create rootfs/ -o 010-base.xzm
  byz module info 010-base.xzm
  byz module deps out/`,
	}
	c.AddCommand(newModuleCreateCmd(), newModuleLsCmd(), newModuleInfoCmd(), newModuleExtractCmd(), newModuleDepsCmd())
	c.AddCommand(newModuleFetchCmd())
	return c
}

func newModuleCreateCmd() *cobra.Command {
	var (
		out, comp, blockSize, name, ver string
		npmCache                        string
		depends                         []string
		level                           int
		flatten, perLayer, export       bool
		quiet                           bool
		workers                         int
	)
	c := &cobra.Command{
		Use:   "create SRC... -o OUT.xzm",
		Short: "Build a module from directories, tarballs, .debs, OCI images, npm apps or modules",
		Long: `Build a module from one or more sources, merged in order (a later source's file
replaces an earlier one's at the same path).

Sources:
  DIR                          a directory: everything it holds (owners, modes,
                               xattrs, devices, hardlinks, sparse files)
  FILE.tar[.gz|.zst|.xz|.bz2]  a tarball; Slackware .txz packages too
  FILE.deb                     a Debian package (its data); several .debs merge
  FILE.xzm                     an existing module
  oci:PATH[:tag]               an OCI image layout directory
  docker-archive:FILE[:tag]    a 'docker save' tarball
  REGISTRY/REPO[:tag]          an image in a registry you can reach
  npm:DIR                      an npm application: node_modules laid out from
                               DIR/package-lock.json, tarballs from the npm
                               cache (byz module fetch npm:DIR fills it); no
                               scripts run, native add-ons refused unless
                               package.json's "byzantium" allows them

Set SOURCE_DATE_EPOCH for a reproducible module: the same sources and epoch give
the same bytes on any machine.`,
		Example: `  byz module create rootfs/ -o 010-base.xzm
  byz module create busybox-static_*.deb -o 001-busybox.xzm --comp xz
  byz module create a.deb b.deb c.deb -o 020-tools.xzm --name tools --depends base
  byz module create oci:./layout:latest -o 050-app.xzm --flatten
  byz module create docker-archive:app.tar -o 050-app.xzm --per-layer
  byz module fetch npm:examples/apps/npm-sample && byz module create npm:examples/apps/npm-sample -o 060-sample.xzm
  SOURCE_DATE_EPOCH=1700000000 byz module create rootfs/ -o base.xzm --level 3`,
		Args: argsUsage(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{fmt.Errorf("module create: -o OUT.xzm is required")}
			}
			if flatten && perLayer {
				return usageError{fmt.Errorf("module create: choose one of --flatten and --per-layer")}
			}
			var opts modules.CreateOptions
			var err error
			if opts.Squashfs, err = squashfsOptions(comp, level, blockSize, workers); err != nil {
				return err
			}
			opts.Squashfs.Export = export
			opts.Name, opts.Version, opts.Depends = name, ver, depends
			if npmCache != "" {
				opts.NPMCache.Dir = npmCache
			}
			if perLayer {
				opts.Layout = modules.PerLayer
			}
			if opts.Epoch, err = sourceDateEpoch(); err != nil {
				return usageError{err}
			}
			var counter entry.Counter
			opts.Counter = &counter
			outs, err := createModule(cmd.Context(), args, out, opts, quiet, &counter)
			if err != nil {
				return err
			}
			if !quiet {
				for _, o := range outs {
					if fi, err := os.Stat(o); err == nil {
						fmt.Fprintf(os.Stderr, "wrote %s (%s)\n", o, bytesize.Format(fi.Size()))
					}
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&out, "output", "o", "", "module file to write (required)")
	f.StringVar(&comp, "comp", "zstd", "compression: zstd, gzip or xz")
	f.IntVar(&level, "level", 0, "compression level: zstd 1-22 (default: the encoder's best), gzip 1-9 (default 9); xz has none")
	f.StringVar(&blockSize, "block-size", "128K", "data block size, a power of two from 4K to 1M")
	f.StringVar(&name, "name", "", "module name (default: from a lone .deb, else from OUT: 050-foo.xzm → foo)")
	f.StringVar(&ver, "version", "", "module version (default: from a lone .deb)")
	f.StringSliceVar(&depends, "depends", nil, "modules this one needs, comma-separated")
	f.BoolVar(&flatten, "flatten", false, "OCI image: merge all layers into one module (default)")
	f.BoolVar(&perLayer, "per-layer", false, "OCI image: one module per layer, OUT-layerNN.xzm")
	f.BoolVar(&export, "export", false, "write an export table so the module can be exported over NFS")
	f.IntVar(&workers, "processors", 0, "compression workers, 1 or more (default: all cores; output is the same either way)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress or summary on stderr")
	f.StringVar(&npmCache, "npm-cache", "", "folder of npm tarballs for npm: sources (default $BYZ_NPM_CACHE, else .cache/npm)")
	c.RegisterFlagCompletionFunc("comp", cobra.FixedCompletions([]string{"zstd", "gzip", "xz"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (seconds since 1970), if set.
func sourceDateEpoch() (*time.Time, error) {
	s, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a number of seconds since 1970", s)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

func newModuleLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls FILE.xzm",
		Short:   "List a module's files with owners, modes, sizes and times (like unsquashfs -lls)",
		Example: "  byz module ls 010-base.xzm | grep bin/",
		Args:    argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return modules.List(cmd.OutOrStdout(), args[0])
		},
	}
}

func newModuleInfoCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "info FILE.xzm",
		Short: "Show a module's manifest and SquashFS superblock",
		Example: `  byz module info 010-base.xzm
  byz module info --json 010-base.xzm | jq .manifest.depends`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := modules.Inspect(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return info.WriteText(w)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newModuleExtractCmd() *cobra.Command {
	var overwrite bool
	c := &cobra.Command{
		Use:   "extract FILE.xzm DIR",
		Short: "Extract a module's files into a directory (owners and xattrs need root)",
		Long: `Extract a module's files into DIR, which must be missing or empty unless
--overwrite is given. The files are extracted into a hidden folder beside DIR
(inside it when it exists) and moved into place only when all are there: an
interrupted or failed extract leaves DIR as it was.`,
		Example: `  byz module extract 010-base.xzm /tmp/base
  byz module extract --overwrite 010-base.xzm /tmp/base`,
		Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return extractModule(cmd.Context(), args[0], args[1], overwrite)
		},
	}
	c.Flags().BoolVar(&overwrite, "overwrite", false, "extract into a directory that is not empty")
	return c
}

func newModuleDepsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "deps DIR|IMAGE|FILE...",
		Short: "Show a set of modules in the order they stack at boot, or say why they cannot stack",
		Long: `Read the manifests of the given modules and print them in the order byz-init
stacks them, bottom first: name, version, file.

An argument is a module file; a media tree (a folder holding byzantium/, or
that byzantium/ folder); a USB image or stick holding one; a build's output
folder (the media tree of its dir output, else its USB image: the modules
inside an ISO are not read); or any other folder, meaning every .xzm below it.
A media tree stacks byzantium/base, then modules, then optional (optional
modules only when load= names them), each in file-name order; modules given
otherwise stack after those, in file-name order.

A module without a manifest (a Porteus module) is named after its file and
taken to depend on nothing. A dependency no module provides, a cycle, a
conflict or two files holding one module is an error naming them; a
dependency stacked above the module needing it, or only in optional/, is a
note on stderr.`,
		Example: `  byz module deps out/                 # what a build wrote: its media folder or USB image
  byz module deps /media/stick
  byz module deps 010-base.xzm 050-ngircd.xzm`,
		Args: argsUsage(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := modules.ResolveStack(args, modules.StackOptions{OpenDisk: openMediaDisk})
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			fmt.Fprintf(stderr, "%d modules from %s, bottom first:\n", len(st.Modules), strings.Join(st.Sources, "; "))
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				err = enc.Encode(st.Modules)
			} else {
				err = st.WriteText(w)
			}
			for _, n := range st.Notes {
				fmt.Fprintf(stderr, "note: %s\n", n)
			}
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
