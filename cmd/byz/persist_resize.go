package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"byzantium/builder/spec"
	"byzantium/runtime/savedat"
)

func newPersistResizeCmd() *cobra.Command {
	var size string
	c := &cobra.Command{
		Use:   "resize SAVE.DAT --size SIZE",
		Short: "Grow a save.dat; its file system grows when byz-init next mounts it",
		Long: `Grow the save.dat (plain or encrypted) to SIZE, a multiple of 1M larger than
it is. Only the file grows here: nothing in it is rewritten, and no
passphrase is needed. At the next boot byz-init mounts the store and grows
its ext4 file system online to fill the file. A save.dat never shrinks.

The file system holding the save.dat needs SIZE minus its current size
free. On FAT (most sticks) the new space is written as zeros, which takes
as long as writing that much, and a file stops short of 4 GiB: 4095M is
the most. The running node's save.dat (under /run/byz/media) may be grown
in place; the node sees the new size after a reboot.

A save.dat inside a USB image (--image) cannot be grown: mount the stick
or loop-mount the image's FAT partition and give the file's path.`,
		Example: `  byz persist resize /media/stick/byzantium/changes/save.dat --size 2G
  byz persist resize /run/byz/media/byzantium/changes/save.dat --size 4095M   # on the node itself`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if size == "" {
				return usageError{fmt.Errorf("persist resize: give the new size with --size (e.g. --size 2G)")}
			}
			n, err := spec.ParseSize(size)
			if err != nil {
				return usageError{fmt.Errorf("--size: %w", err)}
			}
			fi, err := os.Stat(args[0])
			if err != nil {
				return fmt.Errorf("persist resize: %w", err)
			}
			if err := savedat.Grow(args[0], n); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "byz: grew %s from %s to %s; its file system grows at the next boot\n",
				args[0], spec.FormatSize(fi.Size()), spec.FormatSize(n))
			return nil
		},
	}
	c.Flags().StringVar(&size, "size", "", "the new size of the save.dat (M, G), larger than now")
	return c
}
