package tmpdir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// old backdates p past MinAge, as a folder left by a run long gone.
func old(t *testing.T, p string) {
	t.Helper()
	past := time.Now().Add(-2 * MinAge)
	if err := os.Chtimes(p, past, past); err != nil {
		t.Fatal(err)
	}
}

func TestSweep(t *testing.T) {
	parent := t.TempDir()
	live, err := New(parent, ".work-")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()
	os.WriteFile(filepath.Join(live.Path, "f"), make([]byte, 100), 0o644)
	old(t, live.Path)

	stale := filepath.Join(parent, ".work-stale")
	os.MkdirAll(filepath.Join(stale, "sub"), 0o755)
	os.WriteFile(filepath.Join(stale, "sub/a"), make([]byte, 1000), 0o644)
	os.Link(filepath.Join(stale, "sub/a"), filepath.Join(stale, "b")) // counted once
	old(t, stale)

	young := filepath.Join(parent, ".work-young") // made a moment ago, not locked yet
	os.Mkdir(young, 0o755)
	mine := filepath.Join(parent, "work-data") // not the prefix: never touched
	os.Mkdir(mine, 0o755)
	old(t, mine)
	other := filepath.Join(parent, ".work-file") // a file, not a folder
	os.WriteFile(other, nil, 0o644)

	got, err := Sweep(parent, ".work-", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != stale || got[0].Size != 1000 {
		t.Fatalf("dry run found %+v; want only %s with 1000 bytes", got, stale)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("a dry run removed %s", stale)
	}
	if got, err = Sweep(parent, ".work-", false); err != nil || len(got) != 1 {
		t.Fatalf("Sweep = %+v, %v", got, err)
	}
	for p, want := range map[string]bool{stale: false, live.Path: true, young: true, mine: true, other: true} {
		if _, err := os.Lstat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", p, err == nil, want)
		}
	}
	if err := live.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove left %s", live.Path)
	}
	if _, err := Sweep(parent, "work-", false); !errors.Is(err, ErrBadPrefix) {
		t.Errorf("a prefix that is not hidden: %v, want ErrBadPrefix", err)
	}
}

// TestSweepAfterKill: a process holding a folder is killed (SIGKILL: no
// cleanup runs); the kernel drops its lock, and the next sweep removes
// the folder, which it left alone while the process lived.
func TestSweepAfterKill(t *testing.T) {
	parent := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHold$")
	cmd.Env = append(os.Environ(), "TMPDIR_HOLD="+parent)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	held := line[:len(line)-1]
	old(t, held)
	if got, _ := Sweep(parent, ".work-", false); len(got) != 0 {
		t.Errorf("swept %+v while its process lived", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got, _ := Sweep(parent, ".work-", false); len(got) != 1 || got[0].Path != held {
		t.Errorf("after the kill, swept %+v; want %s", got, held)
	}
}

// TestHelperHold is the process TestSweepAfterKill kills.
func TestHelperHold(t *testing.T) {
	parent := os.Getenv("TMPDIR_HOLD")
	if parent == "" {
		t.Skip("helper process for TestSweepAfterKill")
	}
	d, err := New(parent, ".work-")
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString(d.Path + "\n")
	time.Sleep(time.Minute)
}

// TestRemoveWhileWritten removes a folder a goroutine keeps writing small
// files into (an interrupted extract): nothing may be left behind.
func TestRemoveWhileWritten(t *testing.T) {
	for round := 0; round < 5; round++ {
		parent := t.TempDir()
		d, err := New(parent, ".x.byz-")
		if err != nil {
			t.Fatal(err)
		}
		many := filepath.Join(d.Path, "root", "many")
		if err := os.MkdirAll(many, 0o755); err != nil {
			t.Fatal(err)
		}
		stopped := make(chan int)
		go func() {
			i := 0
			for ; ; i++ {
				if os.WriteFile(filepath.Join(many, fmt.Sprintf("f%05d", i)), []byte("x"), 0o644) != nil {
					break
				}
			}
			stopped <- i
		}()
		time.Sleep(20 * time.Millisecond)
		if err := d.Remove(); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		n := <-stopped
		if left, _ := os.ReadDir(parent); len(left) != 0 {
			t.Fatalf("round %d: %d files written, then Remove left %v behind", round, n, left)
		}
	}
}
