// Command byz is Byzantium's command line: it builds live images and the
// modules they are made of (builder, modules), clones media (image/clone),
// makes and manages persistence (runtime/savedat, runtime/changes) and
// talks to a node's byzd (runtime/nodeapi). The commands parse flags, ask
// and show progress; the workflows belong to those packages.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	// byz's live heap is mostly the compressors' match tables (some 34 MB
	// per worker at zstd's best level), which hold no pointers and cost the
	// GC nothing to mark. With the default GOGC=100 the runtime lets garbage
	// grow to their size before collecting; at 20 the peak RSS of a module
	// build drops by about 12% with no measurable change in time. GOGC in
	// the environment still wins.
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(20)
	}
	root := newRootCmd()
	err := root.Execute()
	if err != nil {
		fmt.Fprintf(os.Stderr, "byz: %v\n", err)
	}
	os.Exit(statusFor(err))
}

// usageError marks an error in how byz was called (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

const exitStatus = `Exit status:
  0    success
  1    failure: the command ran and something went wrong (a file, a disk, the input)
  2    usage: an unknown command or flag, a bad flag value, wrong arguments
  130  build, module create or module extract interrupted by Ctrl-C (SIGINT), 143 by
       SIGTERM: what was begun is removed (persist and clone clean up too, and exit 1)`

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "byz",
		Short: "Build Byzantium live images and modules",
		Long: `byz builds Byzantium, a live Linux system for emergency mesh nodes, out of
Porteus-style SquashFS modules, and manages those modules.

` + exitStatus,
		Example: `  byz module create rootfs/ -o 010-base.xzm
  byz module ls 010-base.xzm
  byz completion bash > /etc/bash_completion.d/byz`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(newModuleCmd(), newBuildCmd())
	root.AddCommand(newRunCmd(), newPersistCmd(), newNodeCmd())
	root.AddCommand(newCloneCmd(), newCacheCmd(), newManCmd(), newConsoleCmd())
	// cobra adds these at Execute; add them now so usageErrors sees them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	usageErrors(root)
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			help := c.Run
			c.Run, c.RunE = nil, func(c *cobra.Command, args []string) error {
				if found, rest, err := root.Find(args); err != nil || len(rest) > 0 || found == root && len(args) > 0 {
					return usageError{fmt.Errorf("no help topic %q (see 'byz --help')", strings.Join(args, " "))}
				}
				help(c, args)
				return nil
			}
		}
	}
	return root
}

// usageErrors makes every way of calling byz wrongly a usage error (exit
// status 2), whoever wrote the command: wrong arguments, and a command
// group (byz module) called with no command or an unknown one, which cobra
// answers with its help and status 0, or an error of status 1.
func usageErrors(c *cobra.Command) {
	if c.Args != nil {
		c.Args = argsUsage(c.Args)
	}
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				c.SetOut(c.ErrOrStderr())
				c.Help()
				return usageError{fmt.Errorf("%s: name a command (see above)", c.CommandPath())}
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", s[0])
			}
			return usageError{fmt.Errorf("%s (see '%s --help')", msg, c.CommandPath())}
		}
	}
	for _, sub := range c.Commands() {
		usageErrors(sub)
	}
}

// argsUsage wraps a cobra.PositionalArgs check so that its error is a
// usage error naming the command. Wrapping twice changes nothing.
func argsUsage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		err := check(c, args)
		var ue usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		name := strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ") // main prints "byz: " before it
		return usageError{fmt.Errorf("%s: %w (see '%s --help')", name, err, c.CommandPath())}
	}
}
