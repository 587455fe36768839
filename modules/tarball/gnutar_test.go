package tarball

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"byzantium/modules/entry"
	"byzantium/modules/hostfs"
	"byzantium/modules/internal/testtree"
)

// TestGNUTar archives a generated tree with GNU tar, the reference writer,
// and reads it back in lockstep with a hostfs walk of the same tree: every
// header and body must match. --sort=name makes tar walk in hostfs's order.
func TestGNUTar(t *testing.T) {
	tarCmd := testtree.RequireTool(t, "tar")
	src := t.TempDir()
	// As root the tree also has devices, owners and trusted/security xattrs.
	testtree.Build(t, src, testtree.Options{Privileged: os.Geteuid() == 0, WideEntries: 500})
	posix := []string{"--format=posix", "--xattrs", "--xattrs-include=*"}
	for _, tc := range []struct {
		name  string
		flags []string
		// gnu format keeps whole-second mtimes and no xattrs.
		gnu bool
	}{
		{"posix", posix, false},
		{"posix-gzip", append([]string{"-z"}, posix...), false},
		{"posix-zstd", append([]string{"--zstd"}, posix...), false},
		{"posix-xz", append([]string{"-J"}, posix...), false},
		{"posix-bzip2", append([]string{"-j"}, posix...), false},
		{"posix-sparse", append([]string{"--sparse"}, posix...), false},
		{"gnu-sparse", []string{"--format=gnu", "--sparse"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "a.tar")
			args := append([]string{"--sort=name", "-C", src, "-cf", archive}, tc.flags...)
			cmd := exec.Command(tarCmd, append(args, ".")...)
			cmd.Env = append(os.Environ(), "LC_ALL=C")
			if out, err := cmd.CombinedOutput(); err != nil {
				// tar says "socket ignored" and still exits 0; anything
				// else is a real failure.
				t.Fatalf("tar %q: %v\n%s", args, err, out)
			}
			f, err := os.Open(archive)
			must(t, err)
			defer f.Close()
			got, err := NewReader(f, archive)
			must(t, err)
			defer got.Close()
			want, err := hostfs.NewReader(src)
			must(t, err)
			defer want.Close()
			lockstep(t, want, got, tc.gnu)
		})
	}
}

func lockstep(t *testing.T, want, got entry.Reader, gnu bool) {
	t.Helper()
	n := 0
	types := map[string]entry.Type{}
	for {
		w, werr := want.Next()
		for werr == nil && w.Type == entry.TypeSocket {
			w, werr = want.Next() // tar cannot carry sockets
		}
		g, gerr := got.Next()
		if werr == io.EOF && gerr == io.EOF {
			break
		}
		if werr != nil || gerr != nil {
			t.Fatalf("after %d entries: hostfs %v, tarball %v", n, werr, gerr)
		}
		n++
		types[w.Path] = w.Type
		if w.Type == entry.TypeHardlink && g.Type == types[w.Linkname] && g.Type != entry.TypeRegular {
			continue // GNU tar links only regular files; it stores a second fifo
		}
		wc := *w
		if gnu {
			wc.ModTime = wc.ModTime.Truncate(time.Second)
			wc.Xattrs = nil
		}
		if wc.Type == entry.TypeHardlink {
			// tar stores no mode, owner or mtime of its own for a hardlink.
			wc = entry.Header{Path: w.Path, Type: w.Type, Linkname: w.Linkname, ModTime: g.ModTime,
				Mode: g.Mode, UID: g.UID, GID: g.GID}
		}
		if d := headerDiff(&wc, g); d != "" {
			t.Errorf("%s", d)
			continue
		}
		wb, err := io.ReadAll(want)
		must(t, err)
		gb, err := io.ReadAll(got)
		must(t, err)
		if !bytes.Equal(wb, gb) {
			t.Errorf("%s: body of %d bytes differs from the file's %d", w.Path, len(gb), len(wb))
		}
	}
	if n < 500 {
		t.Errorf("compared only %d entries", n)
	}
}
