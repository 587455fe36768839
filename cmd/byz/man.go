package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write a man page for every command into DIR (byz.1, byz-module-create.1, ...)",
		Long: `Write the manual pages of byz and each of its commands, in man(7) format, into
DIR (made if missing). They are made from the same text as --help.`,
		Example: `  byz man /usr/local/share/man/man1 && mandb -q
  byz man out/man && man -l out/man/byz-build.1`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // no date: the same pages from the same byz
			hdr := &doc.GenManHeader{Title: "BYZ", Section: "1", Source: "byz " + version, Manual: "Byzantium"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("writing man pages: %w", err)
			}
			return nil
		},
	}
}
