package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"byzantium/internal/bytesize"
	"byzantium/modules/npm"
)

func newModuleFetchCmd() *cobra.Command {
	var cacheDir string
	var quiet bool
	c := &cobra.Command{
		Use:   "fetch npm:DIR...",
		Short: "Fetch the npm tarballs npm: sources need into the cache",
		Long: `Download the package tarballs of npm applications (folders holding a
package-lock.json, version 2 or 3) into the npm cache, each checked against
its lock's integrity, so that 'byz module create npm:DIR' and 'byz build' lay
out node_modules without the network. A tarball already cached is checked,
not fetched again.

The registry is the one npm's configuration names: npm_config_registry in the
environment, then the app's .npmrc, ~/.npmrc, the global npmrc, and, last,
'npm config get registry'; '@scope:registry=' lines are honoured, and so is
cafile. A lock's resolved URLs are used only when they are on that registry.`,
		Example: `  byz module fetch npm:examples/apps/npm-sample
  npm_config_registry=http://127.0.0.1:4873/ byz module fetch npm:apps/thelounge --npm-cache /var/cache/npm`,
		Args: argsUsage(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cache := npm.DefaultCache()
			if cacheDir != "" {
				cache.Dir = cacheDir
			}
			var apps []*npm.App
			for _, ref := range args {
				p, ok := strings.CutPrefix(ref, "npm:")
				if !ok {
					return usageError{fmt.Errorf("module fetch: %s: only npm:DIR sources are fetched (Debian packages: make fetch)", ref)}
				}
				app, err := npm.LoadApp(p)
				if err != nil {
					return err
				}
				apps = append(apps, app)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			for _, app := range apps {
				f := &npm.Fetcher{Cache: cache}
				// The registry is looked up only when something is missing:
				// a full cache needs no configuration and no network.
				if len(cache.Missing(app)) > 0 {
					reg, err := npm.LoadRegistry(npm.ConfigOptions{Project: app.Dir})
					if err != nil {
						return err
					}
					f.Registry = reg
				}
				if !quiet {
					f.Logf = func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
				}
				st, err := f.Fetch(ctx, app)
				if err != nil {
					return err
				}
				if !quiet {
					fmt.Fprintf(os.Stderr, "%s: %d fetched (%s), %d already in %s\n", app.LockFile, st.Fetched, bytesize.Format(st.Bytes), st.Cached, cache.Dir)
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&cacheDir, "npm-cache", "", "folder of npm tarballs (default $BYZ_NPM_CACHE, else "+npm.DefaultCacheDir+")")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing but errors")
	return c
}
