package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQEMU is a script standing in for qemu-system-x86_64: it ignores its
// arguments and prints lines as a guest console would.
func fakeQEMU(t *testing.T, lines ...string) string {
	t.Helper()
	script := "#!/bin/sh\n"
	for _, l := range lines {
		script += fmt.Sprintf("echo '%s'\n", l)
	}
	script += "exec sleep 30\n"
	p := filepath.Join(t.TempDir(), "qemu")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder is a Cleanuper that keeps what StartT reports.
type recorder struct {
	cleanups []func()
	errors   []string
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
}
func (r *recorder) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// TestFailOn: a boot that falls back to RAM fails the next Expect at once
// (not at its timeout), and the test even when nothing is expected after
// the line; without FailOn the same console passes.
func TestFailOn(t *testing.T) {
	console := []string{"byz-init: unlocked byzantium/changes/save.dat",
		"byz-init: WARNING: persistence is OFF: byzantium/changes/save.dat: mount -t ext4 /dev/dm-0: no such file or directory",
		"byzd: serving"}
	for _, failOn := range [][]string{nil, {"persistence is OFF"}} {
		r := &recorder{}
		vm := StartT(r, Config{Options: Options{Disk: "disk.img", Binary: fakeQEMU(t, console...)}, FailOn: failOn})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if _, err := vm.Expect(ctx, "unlocked"); err != nil && failOn == nil {
			t.Error(err)
		}
		start := time.Now()
		_, err := vm.Expect(ctx, "byzd: serving")
		cancel()
		if failOn == nil {
			if err != nil {
				t.Errorf("without FailOn: %v", err)
			}
			r.end()
			if len(r.errors) != 0 {
				t.Errorf("without FailOn, StartT reported %q", r.errors)
			}
			continue
		}
		if !errors.Is(err, ErrFailLine) || !strings.Contains(err.Error(), "mount -t ext4") {
			t.Errorf("Expect after the fail line = %v, want ErrFailLine quoting it", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Expect took %v: it waited instead of failing", d)
		}
		if vm.FailLine() != console[1] {
			t.Errorf("FailLine = %q", vm.FailLine())
		}
		r.end()
		if len(r.errors) != 1 || !strings.Contains(r.errors[0], "persistence is OFF") {
			t.Errorf("StartT's cleanup reported %q, want the fail line", r.errors)
		}
	}
}
