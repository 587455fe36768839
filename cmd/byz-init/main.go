// Command byz-init is the PID 1 of Byzantium's initramfs. Build it static:
//
//	CGO_ENABLED=0 go build -o init ./cmd/byz-init
//
// All of its logic is in runtime/initsys. Started as any process but PID 1
// it only answers --version and --help: the boot mounts over /proc and
// /run and scans the disks, which must never happen to a running system.
package main

import (
	"fmt"
	"io"
	"os"

	"byzantium/runtime/initsys"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

const help = `Usage: byz-init [--version | --help]

byz-init is the PID 1 of Byzantium's initramfs: the kernel starts it as /init.
It mounts /proc, /sys, /dev and /run, loads the drivers the boot needs, finds
the boot media, unlocks and mounts persistence, stacks the modules with
overlayfs and switches to the new root. Boot parameters come from the kernel
command line (see docs/boot.md), never from arguments.

Started as any other process it refuses to boot: that would mount over the
running system's /proc and /run. To run the boot outside a VM, make it PID 1
of new PID and mount namespaces (unshare --pid --fork --mount).

Exit status (when not PID 1): 0 for --version and --help, 2 otherwise.
`

func main() {
	if os.Getpid() == 1 {
		// The kernel hands init the words of its command line it does not
		// know (copy2ram, base_only) as arguments: boot parameters, read
		// from /proc/cmdline, never flags.
		initsys.Main()
		return
	}
	os.Exit(notPID1(os.Args[1:], os.Stdout, os.Stderr))
}

// notPID1 answers byz-init started by a person or a script.
func notPID1(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 {
		switch args[0] {
		case "--version", "-version":
			fmt.Fprintf(stdout, "byz-init %s\n", version)
			return 0
		case "--help", "-help", "-h":
			fmt.Fprint(stdout, help)
			return 0
		}
	}
	if len(args) == 0 {
		fmt.Fprintf(stderr, "byz-init: refusing to boot as process %d: byz-init is the initramfs's PID 1, started by the kernel; as any other process the boot would mount over this system's /proc and /run (see byz-init --help)\n", os.Getpid())
	} else {
		fmt.Fprintf(stderr, "byz-init: unexpected arguments %q: byz-init takes --version or --help (see byz-init --help)\n", args)
	}
	return 2
}
