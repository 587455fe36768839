package gateway

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"byzantium/ci/testenv"

	"github.com/vishvananda/netlink"
)

// nsSeq keeps namespace and interface names unique within one test run;
// the pid keeps them apart from another run's.
var nsSeq atomic.Int32

// testNS makes a fresh network namespace (deleted, with its interfaces,
// when the test ends) and returns its name and its /run/netns path.
func testNS(t testing.TB, tag string) (name, path string) {
	t.Helper()
	testenv.RequireRoot(t)
	name = fmt.Sprintf("byzt-gw%s-%d-%d", tag, os.Getpid(), nsSeq.Add(1))
	ip(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

// ifName is a short unique interface name (at most 15 bytes).
func ifName(tag string) string {
	return fmt.Sprintf("%s%d", tag, nsSeq.Add(1))
}

// ip runs the ip tool and fails the test on error.
func ip(t testing.TB, args ...string) string {
	t.Helper()
	tool := testenv.RequireTool(t, "ip")
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nsExec runs a command inside ns and returns its output.
func nsExec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// handleIn is a netlink handle in the namespace at path.
func handleIn(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	ns, err := openNetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.close)
	h, err := ns.handle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// veth links a (in nsA) to b (in nsB), both up.
func veth(t testing.TB, nsA, a, nsB, b string) {
	t.Helper()
	ip(t, "link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB)
	ip(t, "-n", nsA, "link", "set", a, "up")
	ip(t, "-n", nsB, "link", "set", b, "up")
}
