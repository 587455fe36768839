package iso9660

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"byzantium/modules/entry"
)

// treeCases are entry streams that stress one part of the layout each.
var treeCases = []struct {
	name string
	make func(s *stream)
}{
	{"sector boundaries", func(s *stream) {
		for i, n := range []int{0, 1, 2047, 2048, 2049, 4095, 4096, 3*2048 + 5} {
			s.file(fmt.Sprintf("f%d.bin", n), 0o644, randBytes(uint64(i), n))
		}
		s.file("empty", 0o600, nil)
		s.file("sub/empty2", 0o644, []byte{})
	}},
	{"1000-entry directory", func(s *stream) {
		// More records than fit in one sector many times over; names
		// chosen so several share a mangled prefix.
		for i := range 1000 {
			s.file(fmt.Sprintf("big/entry-with-a-longish-name-%04d.data", i), 0o644, []byte(fmt.Sprintf("file %d\n", i)))
		}
	}},
	{"deep tree", func(s *stream) {
		p := ""
		for i := range 24 {
			p += fmt.Sprintf("level%02d/", i)
		}
		s.file(p+"bottom.txt", 0o644, []byte("deep\n"))
		s.add(&entry.Header{Path: strings.TrimSuffix(p, "/"), Type: entry.TypeDir, Mode: 0o700})
	}},
	{"long names", func(s *stream) {
		long200 := strings.Repeat("n", 196) + ".txt"
		long255 := strings.Repeat("m", 255)
		s.file(long200, 0o644, []byte("200"))
		s.file(long255, 0o644, []byte("255"))
		s.add(&entry.Header{Path: strings.Repeat("d", 250), Type: entry.TypeDir, Mode: 0o755})
		s.file(strings.Repeat("d", 250)+"/"+long255, 0o644, []byte("nested 255"))
		s.file("ünïcödé naïve café.txt", 0o644, []byte("utf-8"))
	}},
	{"ISO name collisions", func(s *stream) {
		for _, n := range []string{"readme.md", "README.md", "ReadMe.MD", "read me.md", "read_me.md", "read-me.md", "READ_ME.MD"} {
			s.file("c/"+n, 0o644, []byte(n))
		}
		for i := range 12 {
			s.file(fmt.Sprintf("c/a-very-long-common-prefix-that-gets-cut-%02d.tar.gz", i), 0o644, []byte{byte(i)})
		}
		s.add(&entry.Header{Path: "c/dir.ext", Type: entry.TypeDir, Mode: 0o755})
		s.file("c/DIR_EXT", 0o644, []byte("clash with the directory"))
		s.file("c/.hidden", 0o644, []byte("dotfile"))
		s.file("c/..dots..", 0o644, []byte("dots"))
	}},
	{"symlinks", func(s *stream) {
		s.file("target.txt", 0o644, []byte("t"))
		for i, target := range []string{
			"target.txt", "/etc/passwd", "../up/./and/../back", "./target.txt", "/",
			"dir/with/many/components/" + strings.Repeat("x/", 150) + "end",
			strings.Repeat("c", 255) + "/" + strings.Repeat("k", 300),
			// Close to libisofs's limit of 1024 bytes for a target.
			strings.Repeat("abcdefgh/", 110) + "z",
		} {
			s.add(&entry.Header{Path: fmt.Sprintf("links/l%d", i), Type: entry.TypeSymlink, Mode: 0o777, Linkname: target})
		}
	}},
	{"hardlinks", func(s *stream) {
		s.add(&entry.Header{Path: "early", Type: entry.TypeHardlink, Linkname: "data/orig"})
		s.file("data/orig", 0o640, randBytes(7, 5000))
		s.add(&entry.Header{Path: "data/second", Type: entry.TypeHardlink, Linkname: "data/orig"})
		s.add(&entry.Header{Path: "chain", Type: entry.TypeHardlink, Linkname: "data/second"})
	}},
	{"modes and owners", func(s *stream) {
		s.add(&entry.Header{Path: "tmp", Type: entry.TypeDir, Mode: 0o1777})
		s.add(&entry.Header{Path: "private", Type: entry.TypeDir, Mode: 0o700, UID: 1000, GID: 1000})
		s.file("suid", 0o4755, []byte("#!/bin/true\n"))
		s.file("sgid", 0o2711, []byte("x"))
		s.file("private/secret", 0o600, []byte("s")).UID = 1000
		h := s.file("nobody", 0o444, []byte("n"))
		h.UID, h.GID = 65534, 65534
		s.file("none", 0o000, []byte("0"))
		s.add(&entry.Header{Path: ".", Type: entry.TypeDir, Mode: 0o751})
	}},
	{"mtimes", func(s *stream) {
		for _, sec := range []int64{0, 1, 946684800, 2147483647, 2147483648, 4102444800} {
			h := s.file(fmt.Sprintf("t%d", sec), 0o644, []byte("t"))
			h.ModTime = time.Unix(sec, 0)
		}
		s.add(&entry.Header{Path: "d2000", Type: entry.TypeDir, Mode: 0o755, ModTime: time.Unix(946684800, 0)})
	}},
	{"devices and special files", func(s *stream) {
		s.add(&entry.Header{Path: "dev/null", Type: entry.TypeCharDev, Mode: 0o666, Devmajor: 1, Devminor: 3})
		s.add(&entry.Header{Path: "dev/sda", Type: entry.TypeBlockDev, Mode: 0o660, GID: 6, Devmajor: 8, Devminor: 0})
		s.add(&entry.Header{Path: "dev/fifo", Type: entry.TypeFIFO, Mode: 0o644})
		s.add(&entry.Header{Path: "dev/sock", Type: entry.TypeSocket, Mode: 0o755})
	}},
	{"replaced entries", func(s *stream) {
		s.file("same", 0o644, []byte("first"))
		s.file("same", 0o600, []byte("second, longer"))
		s.file("was-dir/child", 0o644, []byte("gone"))
		s.file("was-dir", 0o644, []byte("now a file"))
		s.add(&entry.Header{Path: "implied/dir", Type: entry.TypeDir, Mode: 0o711})
		s.add(&entry.Header{Path: "implied", Type: entry.TypeDir, Mode: 0o750})
	}},
}

// TestOracles builds each stream and reads it back with xorriso (listing
// and extraction) and isoinfo (plain ISO 9660 names and Rock Ridge).
func TestOracles(t *testing.T) {
	for _, tc := range treeCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream()
			tc.make(s)
			img := build(t, s, Options{VolumeID: "ORACLE", ModTime: epoch})
			checkListing(t, img, s)
			checkExtracted(t, extract(t, img), s)
			checkISONames(t, img)
			if d := run(t, "isoinfo", "-d", "-i", img); !strings.Contains(d, "Rock Ridge signatures version 1 found") {
				t.Errorf("isoinfo -d does not see Rock Ridge:\n%s", d)
			}
		})
	}
}

var (
	isoFileID = regexp.MustCompile(`^[A-Z0-9_]*\.[A-Z0-9_]*;1$`)
	isoDirID  = regexp.MustCompile(`^[A-Z0-9_]{1,31}$`)
)

// checkISONames checks the names readers without Rock Ridge see: level 2
// d-characters and unique in each directory.
func checkISONames(t *testing.T, img string) {
	t.Helper()
	for dir, names := range isoNames(t, img) {
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				t.Errorf("%s: ISO name %s appears twice", dir, n)
			}
			seen[n] = true
			if len(n) > 33 || !isoFileID.MatchString(n) && !isoDirID.MatchString(n) {
				t.Errorf("%s: %q is not a level 2 ISO 9660 identifier", dir, n)
			}
		}
	}
}

// TestHardlinkCount checks that all names of a hardlinked file share one
// extent and report the number of names as their link count.
func TestHardlinkCount(t *testing.T) {
	s := newStream()
	for _, tc := range treeCases {
		if tc.name == "hardlinks" {
			tc.make(s)
		}
	}
	img := build(t, s, Options{ModTime: epoch})
	out := run(t, "isoinfo", "-R", "-l", "-i", img)
	rec := regexp.MustCompile(`(?m)^-\S+\s+(\d+)\s+\d+\s+\d+\s+(\d+) .*\[\s*(\d+) 00\]\s+(\S+)\s*$`)
	extents := map[string]bool{}
	names := 0
	for _, m := range rec.FindAllStringSubmatch(out, -1) {
		names++
		if m[1] != "4" || m[2] != "5000" {
			t.Errorf("%s: nlink %s size %s, want 4 and 5000", m[4], m[1], m[2])
		}
		extents[m[3]] = true
	}
	if names != 4 || len(extents) != 1 {
		t.Errorf("found %d names on %d extents, want 4 names on 1 extent:\n%s", names, len(extents), out)
	}
}

// TestReproducible builds the same stream twice, bootable and hybrid, and
// requires identical bytes; a different ModTime must change them.
func TestReproducible(t *testing.T) {
	mk := func(mod time.Time) []byte {
		s := newStream()
		for _, tc := range treeCases {
			tc.make(s)
		}
		s.file("boot/loader.bin", 0o644, randBytes(99, 5000))
		s.file("boot/efi.img", 0o644, randBytes(98, 4096))
		img := build(t, s, Options{VolumeID: "REPRO", ModTime: mod, Hybrid: true, MBRTemplate: make([]byte, 432),
			BIOSBoot: &BIOSBoot{Path: "boot/loader.bin", CatalogPath: "boot/boot.cat", BootInfoTable: true},
			EFIBoot:  &EFIBoot{Path: "boot/efi.img"}})
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := mk(epoch), mk(epoch)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds of the same stream differ (%d and %d bytes)", len(a), len(b))
	}
	if c := mk(epoch.Add(time.Hour)); bytes.Equal(a, c) {
		t.Errorf("builds an hour apart are identical: ModTime is ignored")
	}
}
