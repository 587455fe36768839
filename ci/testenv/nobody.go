package testenv

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// nobody is the uid and gid a test drops root to (Debian's nobody and
// nogroup).
const nobody = 65534

// nobodyEnv marks the child that RerunAsNobody starts.
const nobodyEnv = "BYZ_TESTENV_NOBODY"

// RerunAsNobody lets a test about permissions run where CI runs, as root,
// which reads mode-000 files and opens every folder. Called as root, it
// runs the calling test again in a copy of the test binary as uid and gid
// 65534 with no supplementary groups, fails the test if the copy fails,
// and returns true: the caller then returns, its part done by the copy.
// Called in that copy, or by a user who is not root, it returns false and
// the test runs on as itself. The copy runs in a temporary folder, with
// TMPDIR inside it (t.TempDir works), and not in the package's folder,
// which nobody may not reach: a test that reads testdata cannot use it.
//
//	if testenv.RerunAsNobody(t) {
//		return
//	}
func RerunAsNobody(t *testing.T) bool {
	t.Helper()
	if os.Getenv(nobodyEnv) != "" {
		if os.Geteuid() == 0 {
			t.Fatal("RerunAsNobody: the copy still runs as root")
		}
		return false
	}
	if os.Geteuid() != 0 {
		return false
	}
	// go test keeps the binary in a folder only root may enter: copy it.
	dir, err := os.MkdirTemp("", "testenv-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tmp := filepath.Join(dir, "tmp")
	for _, err := range []error{os.Chmod(dir, 0o755), os.Mkdir(tmp, 0o700), os.Chown(tmp, nobody, nobody)} {
		if err != nil {
			t.Fatalf("RerunAsNobody: %v", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("RerunAsNobody: %v", err)
	}
	bin := filepath.Join(dir, filepath.Base(self))
	if err := copyFile(self, bin, 0o755); err != nil {
		t.Fatalf("RerunAsNobody: %v", err)
	}

	// -test.run matches each level of a subtest's name on its own.
	levels := strings.Split(t.Name(), "/")
	for i, l := range levels {
		levels[i] = "^" + regexp.QuoteMeta(l) + "$"
	}
	cmd := exec.Command(bin, "-test.run="+strings.Join(levels, "/"), "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), nobodyEnv+"=1", "TMPDIR="+tmp, "HOME="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	switch {
	case err != nil:
		t.Errorf("the test again as uid %d: %v\n%s", nobody, err, out.Bytes())
	case bytes.Contains(out.Bytes(), []byte("--- SKIP: "+t.Name())):
		t.Skipf("skipped as uid %d:\n%s", nobody, out.Bytes())
	case !bytes.Contains(out.Bytes(), []byte("--- PASS: "+t.Name())):
		t.Errorf("the test again as uid %d did not run:\n%s", nobody, out.Bytes())
	default:
		t.Logf("passed again as uid %d", nobody)
	}
	return true
}

func copyFile(from, to string, mode os.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
