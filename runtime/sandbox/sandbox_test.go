package sandbox

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		Main()
	}
	os.Exit(m.Run())
}

// busyboxRoot extracts Debian's busybox-static into a folder: a root with
// a shell and the usual tools, as a service root has.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	debs, _ := filepath.Glob(filepath.Join(repoRoot(t), ".cache/debs/busybox-static_*.deb"))
	if len(debs) == 0 {
		testenv.Unavailable(t, "no busybox-static .deb in .cache/debs (make fetch)")
	}
	root := t.TempDir()
	if out, err := exec.Command(testenv.RequireTool(t, "dpkg-deb"), "-x", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	for _, d := range []string{"proc", "dev", "tmp", "run", "etc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	// Only root may read it: the service must not.
	if err := os.WriteFile(filepath.Join(root, "etc/secret"), []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755)
	return root
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

func run(t *testing.T, spec Spec) (string, int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := Command(self, spec)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// TestConfined runs a shell in the sandbox and reads back, from inside,
// everything the sandbox promises.
func TestConfined(t *testing.T) {
	root := busyboxRoot(t)
	script := strings.Join([]string{
		"echo uid=$(id -u) gid=$(id -g) groups=$(id -G) pid=$$",
		"grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status",
		"echo procs=$(ls /proc | grep -c '^[0-9]')",
		"echo tmp=$(ls -A /tmp | wc -l)",
		"echo host=$(hostname)",
		"echo nofile=$(ulimit -n)",
		"cat /etc/secret 2>/dev/null || echo secret=denied",
		"echo x > /tmp/mine && echo tmp=writable",
		"echo y > /etc/new 2>/dev/null || echo etc=readonly-for-me",
		"echo env=$FOO home=$HOME",
	}, "; ")
	for _, tc := range []struct {
		name string
		caps []string
		mask string
	}{
		{"no capabilities", nil, "0000000000000000"},
		{"net_bind_service only", []string{"CAP_NET_BIND_SERVICE"}, "0000000000000400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(t, Spec{Root: root, Argv: []string{"/bin/busybox", "sh", "-c", script}, Env: []string{"FOO=bar", "PATH=/bin"},
				UID: 61001, GID: 61001, Caps: tc.caps, Hostname: "svc-test", OpenFiles: 123})
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			for _, want := range []string{
				"uid=61001 gid=61001 groups=61001 pid=1",
				"CapInh:\t" + tc.mask, "CapPrm:\t" + tc.mask, "CapEff:\t" + tc.mask, "CapBnd:\t" + tc.mask, "CapAmb:\t" + tc.mask,
				"NoNewPrivs:\t1",
				"tmp=0", "host=svc-test", "nofile=123", "secret=denied", "tmp=writable", "etc=readonly-for-me",
				"env=bar home=",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in:\n%s", want, out)
				}
			}
			// Its own PID namespace: it sees itself and its children only.
			if strings.Contains(out, "procs=") && !regexpProcs(out) {
				t.Errorf("the sandbox sees other processes:\n%s", out)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(root, "tmp/mine")); err == nil {
		t.Errorf("the private /tmp leaked into the root: %q", b)
	}
}

// regexpProcs reports a process count of at most 4 (the shell, and the
// short-lived ls, grep and the subshell).
func regexpProcs(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(l, "procs="); ok {
			return len(n) == 1 && n[0] >= '1' && n[0] <= '4'
		}
	}
	return false
}

func TestRefused(t *testing.T) {
	for _, spec := range []Spec{
		{Root: "/x", Argv: []string{"/bin/true"}, UID: 0, GID: 5},
		{Root: "/x", Argv: []string{"/bin/true"}, UID: 5, GID: 0},
		{Root: "/x", Argv: []string{"bin/true"}, UID: 5, GID: 5},
		{Root: "/x", UID: 5, GID: 5},
		{Root: "x", Argv: []string{"/bin/true"}, UID: 5, GID: 5},
		{Root: "/x", Argv: []string{"/bin/true"}, UID: 5, GID: 5, Caps: []string{"CAP_EVERYTHING"}},
		{Root: "/x", Argv: []string{"/bin/true"}, UID: 5, GID: 5, TmpSize: "1;rm"},
	} {
		if _, err := Command("/proc/self/exe", spec); err == nil {
			t.Errorf("Command(%+v) accepted", spec)
		}
	}
}

func TestMissingProgram(t *testing.T) {
	root := busyboxRoot(t)
	out, code := run(t, Spec{Root: root, Argv: []string{"/usr/sbin/nothing-here"}, UID: 61002, GID: 61002})
	if code != 127 || !strings.Contains(out, "exec /usr/sbin/nothing-here") {
		t.Errorf("a missing program: exit %d, %q", code, out)
	}
}
