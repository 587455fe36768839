package babel

import (
	"byzantium/ci/testenv"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// TestBabeldReadsConfig runs the real babeld on the golden keyed
// configuration (paths moved to a temporary folder) in a network
// namespace with an eth1 and a wlan0, and reads its socket: babeld
// accepted every line, announces exactly our two addresses and the
// table-200 proto-201 prefix, and none of the others on the node.
func TestBabeldReadsConfig(t *testing.T) {
	testenv.RequireBabeld(t)
	ns := fmt.Sprintf("byzbabel-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	in := func(args ...string) { run(t, append([]string{"ip", "-n", ns}, args...)...) }
	in("link", "set", "lo", "up")
	in("link", "add", "eth1", "type", "veth", "peer", "name", "wlan0")
	in("link", "set", "eth1", "up")
	in("link", "set", "wlan0", "up")
	in("addr", "add", "10.140.46.1/32", "dev", "lo")
	in("addr", "add", "fd19:f45:f324:8c2e::1/128", "dev", "lo")
	in("addr", "add", "192.168.5.9/24", "dev", "eth1") // an uplink-like address: not announced
	in("route", "add", "unreachable", "10.140.46.0/24", "table", "200", "proto", "201")
	in("route", "add", "unreachable", "10.77.0.0/24", "table", "200", "proto", "static") // wrong proto
	in("route", "add", "10.78.0.0/24", "dev", "eth1", "proto", "static")                 // main table

	dir := t.TempDir()
	c := testConfig()
	c.Key = "correct horse battery staple"
	c.Socket = filepath.Join(dir, "babeld.sock")
	c.StateFile = filepath.Join(dir, "babel-state")
	conf, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "babeld.conf"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cmd := exec.Command("ip", "netns", "exec", ns, "babeld", "-c", filepath.Join(dir, "babeld.conf"), "-I", "")
	out := &tailBuffer{max: 4096}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var cl *Client
	for i := 0; i < 50; i++ {
		if cl, err = Dial(ctx, c.Socket); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("babeld's socket: %v (babeld said%s)", err, out.last())
	}
	defer cl.Close()
	if cl.Header.MyID != c.RouterID {
		t.Errorf("babeld's id %s, want the configured %s", cl.Header.MyID, c.RouterID)
	}
	want := map[string]bool{"10.140.46.1/32": true, "fd19:f45:f324:8c2e::1/128": true, "10.140.46.0/24": true}
	var s State
	for i := 0; i < 30; i++ { // babeld scans kernel routes shortly after start
		if s, err = cl.Dump(); err != nil {
			t.Fatal(err)
		}
		if len(s.XRoutes) >= len(want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := map[string]bool{}
	for _, x := range s.XRouteList() {
		got[x.Prefix.String()] = true
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("babeld announces %v, want %v", got, want)
	}
	if len(s.Interfaces) != 2 {
		t.Errorf("babeld's interfaces: %+v", s.Interfaces)
	}

	// The monitor's sign of life: babeld answers an empty line "ok",
	// on a connection of its own (babeld serves four at a time).
	defer func(i, p time.Duration) { idle, pingWait = i, p }(idle, pingWait)
	idle, pingWait = 200*time.Millisecond, 500*time.Millisecond
	mc, err := Dial(ctx, c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	mctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	syncs := 0
	err = mc.Monitor(mctx, func(ev Event, _ bool) {
		if ev.Kind == 0 {
			syncs++
		}
	})
	if !errors.Is(err, context.DeadlineExceeded) || syncs != 1 {
		t.Errorf("monitor pinged for 1.5 s: %v after %d syncs, want the context's end after 1", err, syncs)
	}
}
