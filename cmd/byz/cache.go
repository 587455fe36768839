package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"byzantium/builder/cache"
	"byzantium/internal/bytesize"
)

func newCacheCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cache",
		Short: "Look after the build cache",
		Example: `  byz cache prune --dry-run
  byz cache prune --unused-for 7d`,
	}
	c.AddCommand(newCachePruneCmd())
	return c
}

func newCachePruneCmd() *cobra.Command {
	var (
		dir, unused string
		all, dryRun bool
	)
	c := &cobra.Command{
		Use:   "prune",
		Short: "Remove what killed builds left in the build cache, and artifacts no build has used for a while",
		Long: `Remove from the build cache (byz build --cache, default .cache/build):

  - the work folders of builds that were killed before they could clean up
    (.work-*, up to a few hundred MB each), and artifacts they left half made;
  - the artifacts (modules, kernels, initramfs) no build has used for
    --unused-for (default 30 days; every build marks what it uses), or every
    artifact with --all: the next build makes them again.

It keeps everything a running build uses, and refuses to run while a build
uses the cache. It removes nothing the cache did not make: other files in
the folder are listed and left alone. Sizes are the files' sizes.`,
		Example: `  byz cache prune --dry-run
  byz cache prune --unused-for 7d
  byz cache prune --all --cache /var/cache/byz`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseDays(unused)
			if err != nil {
				return usageError{fmt.Errorf("--unused-for: %w", err)}
			}
			res, err := (&cache.Cache{Dir: dir}).Prune(cache.PruneOptions{UnusedFor: d, All: all, DryRun: dryRun})
			if res == nil {
				return err
			}
			w := cmd.OutOrStdout()
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, p := range res.Removed {
				fmt.Fprintf(w, "%s %9s  %s  (%s)\n", verb, bytesize.Format(p.Size), p.Path, p.Why)
			}
			for _, p := range res.Foreign {
				fmt.Fprintf(w, "left alone: %s (not the cache's)\n", p)
			}
			fmt.Fprintf(w, "%s %d item(s), %s; kept %d artifact(s), %s\n", verb, len(res.Removed), bytesize.Format(res.RemovedBytes()),
				res.Kept, bytesize.Format(res.KeptBytes))
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "cache", ".cache/build", "folder of the build cache")
	f.StringVar(&unused, "unused-for", "30d", "remove artifacts no build has used for this long (e.g. 30d, 12h)")
	f.BoolVar(&all, "all", false, "remove every artifact")
	f.BoolVar(&dryRun, "dry-run", false, "say what would be removed, and remove nothing")
	return c
}

// parseDays reads a duration as time.ParseDuration does, and also a number
// of days: 30d.
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q: write a number of days (30d) or a duration (12h)", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: write a number of days (30d) or a duration (12h)", s)
	}
	return d, nil
}
