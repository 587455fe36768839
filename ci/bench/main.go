// Command bench builds the same inputs with `byz module create` and with its
// peer tools (mksquashfs; dpkg-deb -x + mksquashfs for packages) in one run
// and prints wall time, peak RSS and output size side by side, as ratios.
// It measures; it asserts nothing: these machines are shared and noisy, so
// the targets are printed for a person to judge.
//
//	go run ./ci/bench [-tree DIR] [-deb FILE.deb] [-iso FILE.iso] [-usb FILE.img] [-quick] [-runs N] [-only NAME]
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

type result struct {
	wall  time.Duration
	rssKB int64
	size  int64
}

type pair struct {
	name        string
	byz         func(out string) [][]string
	peer        func(out string) [][]string
	target      string
	maxWall     float64 // 0: report only
	maxSize     float64
	maxRSS      float64
	byzR, peerR result
}

func main() {
	// The bench runs our ISO writer in a child process of its own so its
	// time and RSS are measured the same way as xorriso's.
	if len(os.Args) == 4 && os.Args[1] == "-unlock" {
		if err := unlock(os.Args[2], os.Args[3]); err != nil {
			fatalf("%v", err)
		}
		return
	}
	if len(os.Args) == 4 && os.Args[1] == "-write-iso" {
		if err := writeISO(os.Args[2], os.Args[3]); err != nil {
			fatalf("%v", err)
		}
		return
	}
	tree := flag.String("tree", "/usr/local/go", "directory tree to build modules from")
	iso := flag.String("iso", "out/byzantium.iso", "an ISO built by byz, whose tree the ISO comparison rewrites (empty: skip)")
	usb := flag.String("usb", "out/byzantium-usb.img", "a USB image built by byz, which the clone comparison clones (empty: skip)")
	debFile := flag.String("deb", "", "package for the .deb comparison (default: the generic kernel image, fetched into .cache/debs)")
	quick := flag.Bool("quick", false, "skip the slow cases (xz, the kernel package)")
	runs := flag.Int("runs", 3, "runs per command; the fastest counts")
	byz := flag.String("byz", "bin/byz", "byz binary")
	only := flag.String("only", "", "run only the cases whose name starts with this (\"unlock\", \"zstd\")")
	flag.Parse()

	for _, tool := range []string{"mksquashfs", "dpkg-deb", "xorriso", "/usr/bin/time", *byz} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, serr := os.Stat(tool); serr != nil {
				fatalf("%s not found: run `make deps byz` first", tool)
			}
		}
	}
	files, bytes := treeStats(*tree)
	tmp, err := os.MkdirTemp("", "byz-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(tmp)
	// Warm the page cache so neither side pays for the first read.
	if err := exec.Command("tar", "-cf", "/dev/null", *tree).Run(); err != nil {
		fatalf("reading %s: %v", *tree, err)
	}

	epoch := "SOURCE_DATE_EPOCH=1700000000"
	ms := func(extra ...string) func(string) [][]string {
		return func(out string) [][]string {
			return [][]string{append([]string{"mksquashfs", *tree, out, "-noappend", "-quiet", "-no-progress"}, extra...)}
		}
	}
	bz := func(extra ...string) func(string) [][]string {
		return func(out string) [][]string {
			return [][]string{append([]string{"env", epoch, *byz, "module", "create", *tree, "-o", out, "-q"}, extra...)}
		}
	}
	pairs := []*pair{
		{name: "zstd level 3", byz: bz("--level", "3"), peer: ms("-comp", "zstd", "-Xcompression-level", "3"),
			target: "wall ≤ 0.8×, size ≤ 1.02×, RSS ≤ 0.3×", maxWall: 0.8, maxSize: 1.02, maxRSS: 0.3},
		{name: "zstd default", byz: bz(), peer: ms("-comp", "zstd"),
			target: "wall ≤ 0.5×, size ≤ 1.08×, RSS ≤ 0.3×", maxWall: 0.5, maxSize: 1.08, maxRSS: 0.3},
		{name: "gzip default", byz: bz("--comp", "gzip"), peer: ms("-comp", "gzip"),
			target: "wall ≤ 1.0×, size ≤ 1.03×", maxWall: 1.0, maxSize: 1.03},
	}
	if !*quick {
		pairs = append(pairs, &pair{name: "xz default", byz: bz("--comp", "xz"), peer: ms("-comp", "xz"), target: "report"})
		deb := *debFile
		if deb == "" {
			deb = kernelDeb()
		}
		if deb != "" {
			pairs = append(pairs, &pair{name: "kernel .deb", target: "wall ≤ 0.6×", maxWall: 0.6,
				byz: func(out string) [][]string {
					return [][]string{{"env", epoch, *byz, "module", "create", deb, "-o", out, "-q"}}
				},
				peer: func(out string) [][]string {
					x := filepath.Join(tmp, "deb-x")
					return [][]string{{"rm", "-rf", x}, {"dpkg-deb", "-x", deb, x},
						{"mksquashfs", x, out, "-noappend", "-quiet", "-no-progress", "-comp", "zstd"}}
				}})
		}
	}

	if *iso != "" {
		if p := isoPair(*iso, tmp); p != nil {
			pairs = append(pairs, p)
		}
	}
	if *usb != "" && strings.HasPrefix("clone", *only) {
		if p := clonePair(*byz, *usb, tmp); p != nil {
			pairs = append(pairs, p)
		}
	}
	if !*quick {
		pairs = append(pairs, luksPairs(tmp)...)
	}
	if *only != "" {
		var keep []*pair
		for _, p := range pairs {
			if strings.HasPrefix(p.name, *only) {
				keep = append(keep, p)
			}
		}
		pairs = keep
	}
	fmt.Printf("tree %s: %d files, %.1f MiB of file data; %d runs each, fastest kept\n\n", *tree, files, float64(bytes)/(1<<20), *runs)
	for _, p := range pairs {
		out := filepath.Join(tmp, "out.sqfs")
		p.byzR = best(*runs, p.byz(out), out)
		p.peerR = best(*runs, p.peer(out), out)
		report(p)
	}
}

func report(p *pair) {
	w := ratio(float64(p.byzR.wall), float64(p.peerR.wall))
	r := ratio(float64(p.byzR.rssKB), float64(p.peerR.rssKB))
	s := ratio(float64(p.byzR.size), float64(p.peerR.size))
	fmt.Printf("%-14s byz   %7.2fs %8.1f MiB RSS %9.2f MB\n", p.name, p.byzR.wall.Seconds(), float64(p.byzR.rssKB)/1024, float64(p.byzR.size)/1e6)
	fmt.Printf("%-14s peer  %7.2fs %8.1f MiB RSS %9.2f MB\n", "", p.peerR.wall.Seconds(), float64(p.peerR.rssKB)/1024, float64(p.peerR.size)/1e6)
	fmt.Printf("%-14s ratio %7.2f× %8.2f× RSS    %8.3f×   target %s%s\n\n", "", w, r, s, p.target, verdict(p, w, r, s))
}

func verdict(p *pair, w, r, s float64) string {
	var miss []string
	if p.maxWall > 0 && w > p.maxWall {
		miss = append(miss, "wall")
	}
	if p.maxSize > 0 && s > p.maxSize {
		miss = append(miss, "size")
	}
	if p.maxRSS > 0 && r > p.maxRSS {
		miss = append(miss, "RSS")
	}
	if p.maxWall == 0 && p.maxSize == 0 {
		return ""
	}
	if len(miss) == 0 {
		return "  (met)"
	}
	return "  (missed: " + strings.Join(miss, ", ") + ")"
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// best runs the command sequence n times and keeps the fastest run. Wall
// time adds up over the sequence; peak RSS is the largest of its commands.
func best(n int, cmds [][]string, out string) result {
	var b result
	for i := 0; i < n; i++ {
		var r result
		for _, c := range cmds {
			w, rss := run(c)
			r.wall += w
			r.rssKB = max(r.rssKB, rss)
		}
		fi, err := os.Stat(out)
		if err != nil {
			fatalf("%s wrote no output: %v", strings.Join(cmds[len(cmds)-1], " "), err)
		}
		r.size = fi.Size()
		if i == 0 || r.wall < b.wall {
			b = r
		}
	}
	return b
}

// run runs a command and returns its wall time and peak RSS in KiB. The
// RSS comes from GNU time, not from our own wait4: Go starts children with
// a vfork-style clone that shares the parent's memory until exec, so the
// kernel's ru_maxrss for the child would include the bench's own RSS.
func run(args []string) (time.Duration, int64) {
	rssFile, err := os.CreateTemp("", "byz-bench-rss-")
	if err != nil {
		fatalf("%v", err)
	}
	rssFile.Close()
	defer os.Remove(rssFile.Name())
	full := append([]string{"/usr/bin/time", "-f", "%M", "-o", rssFile.Name()}, args...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fatalf("%s: %v", strings.Join(args, " "), err)
	}
	wall := time.Since(start)
	b, err := os.ReadFile(rssFile.Name())
	if err != nil {
		fatalf("%v", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return wall, 0
	}
	rss, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
	return wall, rss
}

func treeStats(root string) (files int, bytes int64) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		files++
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				bytes += fi.Size()
			}
		}
		return nil
	})
	return files, bytes
}

// kernelDeb fetches the package the generic kernel metapackage depends on.
func kernelDeb() string {
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no kernel package (%v); skipping the .deb case\n", err)
		return ""
	}
	var pkg string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			pkg = f[1]
		}
	}
	if pkg == "" {
		return ""
	}
	if _, err := exec.Command("ci/fetch-debs", pkg).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: fetching %s failed (%v); skipping the .deb case\n", pkg, err)
		return ""
	}
	m, _ := filepath.Glob(filepath.Join(".cache/debs", pkg+"_*.deb"))
	sort.Strings(m)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

func fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...)
	os.Exit(1)
}
