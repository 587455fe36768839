package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// clonePair compares cloning a USB image byz built into an image file
// (`byz clone --from`: every file checked against the source's manifest
// as it is written, the partition synced, read back and checked against
// the clone's manifest, then the partition table) against what a plain
// copy with a check costs: dd of as many bytes, synced (conv=fsync: the
// clone syncs too), and a full read-back with dd. Both sides read a
// source in the page cache; both read-backs may come from it too.
func clonePair(byz, usb, tmp string) *pair {
	if _, err := os.Stat(usb); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s not found (run make); skipping the clone case\n", usb)
		return nil
	}
	// One clone first: it warms the page cache and says how big a clone
	// is, which is what dd copies.
	probe := filepath.Join(tmp, "probe.img")
	if out, err := exec.Command(byz, "clone", "--from", usb, probe, "--progress=none").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: byz clone --from %s: %v\n%s(an image built before clones existed? run make); skipping the clone case\n", usb, err, out)
		return nil
	}
	fi, err := os.Stat(probe)
	if err != nil {
		fatalf("%v", err)
	}
	os.Remove(probe)
	mib := strconv.FormatInt(fi.Size()>>20, 10)
	return &pair{name: "clone", target: "wall ≤ 1.15×", maxWall: 1.15,
		byz: func(out string) [][]string {
			return [][]string{{byz, "clone", "--from", usb, out, "--force", "--progress=none"}}
		},
		peer: func(out string) [][]string {
			return [][]string{{"dd", "if=" + usb, "of=" + out, "bs=1M", "count=" + mib, "conv=fsync", "status=none"},
				{"dd", "if=" + out, "of=/dev/null", "bs=1M", "status=none"}}
		}}
}
