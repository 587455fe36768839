package sandbox

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/ci/testenv"
	"byzantium/modules/manifest"
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
		"echo x > /dev/null && echo devnull=writable",
		// The sandbox's own mounts, as the kernel reports them inside.
		"grep -E ' /(dev|tmp|run|proc) ' /proc/self/mountinfo | sed 's/^/mount: /'",
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
				"env=bar home=", "devnull=writable",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in:\n%s", want, out)
				}
			}
			// Per-mount options (mountinfo's sixth field) of each mount the
			// sandbox makes.
			want := map[string][]string{
				"/proc": {"nosuid", "nodev", "noexec"},
				"/dev":  {"nosuid", "nodev", "noexec"},
				"/tmp":  {"nosuid", "nodev"},
				"/run":  {"nosuid", "nodev"},
			}
			seen := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				f := strings.Fields(strings.TrimPrefix(l, "mount: "))
				if !strings.HasPrefix(l, "mount: ") || len(f) < 6 || want[f[4]] == nil {
					continue
				}
				seen[f[4]] = true
				opts := "," + f[5] + ","
				for _, o := range want[f[4]] {
					if !strings.Contains(opts, ","+o+",") {
						t.Errorf("%s is mounted %s, without %s", f[4], f[5], o)
					}
				}
			}
			if len(seen) != len(want) {
				t.Errorf("mounts seen inside: %v, want %d:\n%s", seen, len(want), out)
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
		{Root: "/x", Argv: []string{"/bin/true"}, UID: 5, GID: 5, Caps: []string{"CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"}},
		{Root: "/x", Argv: []string{"/bin/true"}, UID: 5, GID: 5, Caps: []string{"CAP_MKNOD"}},
	} {
		if _, err := Command("/proc/self/exe", spec); err == nil {
			t.Errorf("Command(%+v) accepted", spec)
		}
	}
	_, err := Command("/proc/self/exe", Spec{Root: "/x", Argv: []string{"/bin/true"}, UID: 5, GID: 5, Caps: []string{"CAP_SYS_MODULE"}})
	if !errors.Is(err, ErrPrivileged) || !strings.Contains(err.Error(), "CAP_SYS_MODULE: it loads kernel modules") {
		t.Errorf("CAP_SYS_MODULE unprivileged: %v", err)
	}
	if _, err := Command("/proc/self/exe", Spec{Root: "/x", Argv: []string{"/bin/true"}, UID: 5, GID: 5, Caps: []string{"CAP_SYS_MODULE"}, Privileged: true}); err != nil {
		t.Errorf("CAP_SYS_MODULE privileged: %v", err)
	}
}

// TestCapabilityNames: the sandbox knows a number for every capability the
// manifest lists (and so judges), and no other.
func TestCapabilityNames(t *testing.T) {
	for c := range manifest.Capabilities {
		if _, ok := capByName[c]; !ok {
			t.Errorf("the sandbox has no number for %s", c)
		}
	}
	for c := range capByName {
		if _, ok := manifest.Capabilities[c]; !ok {
			t.Errorf("the manifest does not judge %s", c)
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
