package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/runtime/savedat/mkfs"
)

// runResize runs the persist resize command in-process and returns its
// output and error.
func runResize(args ...string) (string, error) {
	c := newPersistResizeCmd()
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	c.SilenceUsage, c.SilenceErrors = true, true
	err := c.Execute()
	return out.String(), err
}

// TestPersistResize grows a save.dat, which e2fsck still finds clean, and
// refuses bad sizes, usage mistakes and files that are not save.dats
// without changing them.
func TestPersistResize(t *testing.T) {
	fsck := testenv.RequireTool(t, "e2fsck")
	dir := t.TempDir()
	sd := filepath.Join(dir, "save.dat")
	if err := mkfs.Create(sd, mkfs.Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if out, err := runResize("--help"); err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "next boot") {
		t.Errorf("resize --help: %v\n%s", err, out)
	}
	out, err := runResize(sd, "--size", "128M")
	if err != nil || !strings.Contains(out, "from 64M to 128M") {
		t.Fatalf("resize --size 128M: %v\n%s", err, out)
	}
	if fi, err := os.Stat(sd); err != nil || fi.Size() != 128<<20 {
		t.Fatalf("after resize: %v", err)
	}
	if o, err := exec.Command(fsck, "-fn", sd).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, o)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("hello"), 0o644)
	for _, tt := range []struct {
		name  string
		args  []string
		usage bool
		names string
	}{
		{"shrink", []string{sd, "--size", "64M"}, false, "never shrinks"},
		{"no size", []string{sd}, true, "--size"},
		{"bad size", []string{sd, "--size", "lots"}, true, "lots"},
		{"no file", []string{"--size", "1G"}, true, "accepts 1 arg"},
		{"missing", []string{filepath.Join(dir, "nope"), "--size", "1G"}, false, "nope"},
		{"not a save.dat", []string{junk, "--size", "1G"}, false, "neither"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := os.ReadFile(sd)
			_, err := runResize(tt.args...)
			var ue usageError
			if err == nil || errors.As(err, &ue) != tt.usage || !strings.Contains(err.Error(), tt.names) {
				t.Errorf("resize %v = %v; want an error naming %q (usage error: %v)", tt.args, err, tt.names, tt.usage)
			}
			if after, _ := os.ReadFile(sd); !bytes.Equal(before, after) {
				t.Error("a refused resize changed the save.dat")
			}
		})
	}
	if b, _ := os.ReadFile(junk); string(b) != "hello" {
		t.Errorf("a refused resize changed a file that is not a save.dat: %q", b)
	}
}
