package clone

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/image/clone/cloneapi"
)

// TestRun clones the source image into an image file as a request asks:
// the plan first (nothing written), then the clone, with the progress
// the UI follows and the result it hears.
func TestRun(t *testing.T) {
	m := sourceMedia(t)
	img := filepath.Join(t.TempDir(), "clone.img")
	var plan strings.Builder
	res, err := Run(context.Background(), Request{From: m.img, Target: img, SaveSize: 40 << 20, Plan: true}, UI{Out: &plan})
	if err != nil || res != nil {
		t.Fatalf("plan: %v, %+v", err, res)
	}
	if !strings.Contains(plan.String(), "target image "+img) || !strings.HasSuffix(plan.String(), "nothing written (--plan)\n") {
		t.Errorf("the plan:\n%s", plan.String())
	}
	if _, err := os.Stat(img); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the plan wrote %s: %v", img, err)
	}

	var phases []string
	var heard *Result
	ui := UI{Writing: func(p *Progress) func(*Result, error) {
		p.OnPhase = func() {
			if ph := p.Snapshot().Phase; len(phases) == 0 || phases[len(phases)-1] != ph {
				phases = append(phases, ph)
			}
		}
		return func(r *Result, err error) { heard = r }
	}}
	res, err = Run(context.Background(), Request{From: m.img, Target: img, SaveSize: 40 << 20, Size: 100<<20 + 1}, ui)
	if err != nil {
		t.Fatal(err)
	}
	if heard != res || res.Target != img || res.Size != 101<<20 || !res.SaveDat {
		t.Errorf("result %+v, the UI heard %+v", res, heard)
	}
	if strings.Join(phases, " ") != "prepare write verify finish" {
		t.Errorf("phases %q", phases)
	}
	oracles(t, img)
}

// TestRunRefused: requests Run refuses before writing anything, and why.
func TestRunRefused(t *testing.T) {
	m := sourceMedia(t)
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists.img")
	if err := os.WriteFile(exists, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  Request
		ui   UI
		is   error
		want string
	}{
		{"no target", Request{From: m.img}, UI{}, cloneapi.ErrBadRequest, "name a target"},
		{"encrypt without a save.dat", Request{From: m.img, Target: filepath.Join(dir, "a.img"), Encrypt: true}, UI{}, cloneapi.ErrBadRequest, "--save-size"},
		{"bad KDF costs", Request{From: m.img, Target: filepath.Join(dir, "a.img"), SaveSize: 64 << 20, Encrypt: true, KDFMemoryKiB: 1}, UI{}, cloneapi.ErrBadRequest, "--kdf-memory 1K"},
		{"no passphrase to ask for", Request{From: m.img, Target: filepath.Join(dir, "a.img"), SaveSize: 64 << 20, Encrypt: true, KDFMemoryKiB: 32 << 10, KDFTime: 1}, UI{}, cloneapi.ErrBadRequest, "no passphrase"},
		{"the source itself", Request{From: m.img, Target: m.img, Force: true}, UI{}, ErrSameAsSource, "it is the source"},
		{"an existing file", Request{From: m.img, Target: exists}, UI{}, ErrRefused, "--force replaces it"},
		{"too small", Request{From: m.img, Target: filepath.Join(dir, "a.img"), Size: 1 << 20}, UI{}, ErrTooSmall, "cannot hold the clone"},
		{"no such device", Request{From: m.img, Target: "/dev/byz-no-such-disk"}, UI{}, nil, "no such device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), tc.req, tc.ui)
			if err == nil || res != nil || tc.is != nil && !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, %+v; want %v saying %q", err, res, tc.is, tc.want)
			}
		})
	}
	if b, _ := os.ReadFile(exists); string(b) != "keep me" {
		t.Error("a refused clone replaced the file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("refused clones left %v", ents)
	}
}
