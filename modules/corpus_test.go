package modules

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"byzantium/ci/testenv"
	"byzantium/modules/internal/testtree"
	"byzantium/modules/squashfs"
)

// corpusImage is one image of the peer corpus and where it came from.
type corpusImage struct {
	name string // relative to the corpus: peer/… or images.tar.xz:…
	path string // a file to open
}

// corpusImages lists the peer corpus: the files under peer/ as they lie,
// and the members of images.tar.xz unpacked into a temporary folder
// (Extract and unsquashfs both want a file).
func corpusImages(t *testing.T, corpus string) []corpusImage {
	t.Helper()
	var out []corpusImage
	err := filepath.WalkDir(filepath.Join(corpus, "peer"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(corpus, p)
		out = append(out, corpusImage{name: filepath.ToSlash(rel), path: p})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(corpus, "images.tar.xz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := xz.NewReader(f)
	if err != nil {
		t.Fatalf("images.tar.xz: %v", err)
	}
	tmp := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("images.tar.xz: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := filepath.Base(h.Name)
		p := filepath.Join(tmp, name)
		w, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, tr); err != nil {
			t.Fatalf("images.tar.xz: %s: %v", h.Name, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		out = append(out, corpusImage{name: "images.tar.xz:" + name, path: p})
	}
	slices.SortFunc(out, func(a, b corpusImage) int { return strings.Compare(a.name, b.name) })
	return out
}

// corpusDeadline bounds one extraction: the largest image takes well under
// a second, so only a hang gets near it, on however loaded a machine.
const corpusDeadline = 5 * time.Minute

// extractGuarded runs Extract, turning a panic into an error that says so
// and a hang into a timeout.
func extractGuarded(img, dir string) (err error, panicked bool) {
	type result struct {
		err      error
		panicked bool
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{fmt.Errorf("panic: %v\n%s", r, debug.Stack()), true}
			}
		}()
		done <- result{err: Extract(img, dir, false)}
	}()
	select {
	case r := <-done:
		return r.err, r.panicked
	case <-time.After(corpusDeadline):
		return fmt.Errorf("still extracting after %v: a hang", corpusDeadline), true
	}
}

// TestPeerCorpus reads every image of shared/corpus/squashfs (images made
// by mksquashfs under 21 option sets, by squashfs-tools-ng, go-diskfs's and
// squashfs-tools-ng's test images, and inputs that crashed or hung another
// reader) the way `byz module extract` does, and checks each against
// unsquashfs: what unsquashfs extracts, Extract must extract identically
// (names, types, modes, owners, mtimes, contents, symlink targets, device
// numbers, xattrs, hard links); what unsquashfs refuses, Extract must refuse
// with an error wrapping one of the squashfs package's sentinels. Nothing
// may panic or hang.
func TestPeerCorpus(t *testing.T) {
	corpus := testenv.SharedCorpus(t, "squashfs")
	unsquashfs := testtree.RequireTool(t, "unsquashfs")
	testtree.RequireRoot(t) // owners, devices and trusted.* xattrs, on both sides
	images := corpusImages(t, corpus)
	if len(images) < 60 {
		t.Fatalf("%d images in %s, want the 66 its SOURCES.md lists", len(images), corpus)
	}
	var matched, refusedBoth []string
	for _, img := range images {
		t.Run(img.name, func(t *testing.T) {
			tmp := t.TempDir()
			want, got := filepath.Join(tmp, "want"), filepath.Join(tmp, "got")
			ctx, cancel := context.WithTimeout(context.Background(), corpusDeadline)
			defer cancel()
			out, oracleErr := exec.CommandContext(ctx, unsquashfs, "-no-progress", "-quiet", "-d", want, img.path).CombinedOutput()

			err, panicked := extractGuarded(img.path, got)
			if panicked {
				t.Fatalf("Extract: %v", err)
			}
			if oracleErr != nil {
				// unsquashfs refuses it (wholly or in part): so must we,
				// with an error a caller can tell apart.
				if err == nil {
					t.Fatalf("Extract succeeded where unsquashfs failed (%v):\n%s", oracleErr, out)
				}
				if !errors.Is(err, squashfs.ErrCorrupt) && !errors.Is(err, squashfs.ErrNotSquashfs) && !errors.Is(err, squashfs.ErrUnsupportedCompression) {
					t.Fatalf("Extract: %v\nwraps no sentinel of package squashfs (unsquashfs: %v)", err, oracleErr)
				}
				t.Logf("refused, as unsquashfs does: %v", err)
				refusedBoth = append(refusedBoth, img.name)
				return
			}
			if err != nil {
				t.Fatalf("Extract: %v\n(unsquashfs extracts it)", err)
			}
			diffs := testtree.Diff(testtree.Scan(t, want), testtree.Scan(t, got), testtree.CompareOptions{})
			for _, d := range diffs {
				t.Error(d)
			}
			if len(diffs) == 0 {
				matched = append(matched, img.name)
			}
		})
	}
	t.Logf("%d images: %d extracted exactly as unsquashfs extracts them, %d refused by both", len(images), len(matched), len(refusedBoth))
}
