package babel

import (
	"byzantium/ci/testenv"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBabeldDefaultRoutes runs two real babelds on the generated
// configuration, a — b over a veth, in network namespaces: a is a
// gateway sharing both families (0.0.0.0/0 and ::/0 in table 200 with
// protocol 201, as runtime/mesh/gateway puts them), and also has a mesh
// node prefix and a prefix outside the mesh there. b's kernel, read back,
// must hold both default routes and the mesh prefix from babeld (protocol
// 42), and not the outside prefix (the in filters); withdrawing ::/0 on a
// must take it from b while 0.0.0.0/0 stays.
func TestBabeldDefaultRoutes(t *testing.T) {
	testenv.RequireBabeld(t)
	names := map[string]string{}
	for _, n := range []string{"a", "b"} {
		ns := fmt.Sprintf("byzbabel%s-%d", n, os.Getpid())
		names[n] = ns
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	in := func(n string, args ...string) { t.Helper(); run(t, append([]string{"ip", "-n", names[n]}, args...)...) }
	show := func(n string, args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", names[n]}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run(t, "ip", "link", "add", "eth1", "netns", names["a"], "type", "veth", "peer", "name", "eth1", "netns", names["b"])
	in("a", "link", "set", "eth1", "up")
	in("b", "link", "set", "eth1", "up")
	in("a", "addr", "add", "10.140.46.1/32", "dev", "lo")
	in("a", "addr", "add", "fd19:f45:f324:8c2e::1/128", "dev", "lo")
	in("b", "addr", "add", "10.140.47.1/32", "dev", "lo")
	in("b", "addr", "add", "fd19:f45:f324:8c2f::1/128", "dev", "lo")
	// babeld's IPv4 next hop is the neighbour's address on the link.
	in("a", "addr", "add", "10.140.46.1/32", "dev", "eth1")
	in("b", "addr", "add", "10.140.47.1/32", "dev", "eth1")
	// What a's gateway announces, and what else byzd's table holds.
	in("a", "route", "add", "default", "via", "192.0.2.1", "dev", "eth1", "onlink", "table", "200", "proto", "201")
	in("a", "-6", "route", "add", "default", "via", "fe80::99", "dev", "eth1", "table", "200", "proto", "201")
	in("a", "-6", "route", "add", "unreachable", "fd19:f45:f324:8c2e::/64", "table", "200", "proto", "201")
	in("a", "-6", "route", "add", "unreachable", "2001:db8:5::/48", "table", "200", "proto", "201")

	dir := t.TempDir()
	for i, n := range []string{"a", "b"} {
		c := testConfig()
		c.Interfaces = []Interface{{Name: "eth1"}}
		c.RouterID[7] += byte(i)
		c.Key = "correct horse battery staple"
		c.Socket = filepath.Join(dir, n+".sock")
		c.StateFile = filepath.Join(dir, n+"-state")
		conf, err := Generate(c)
		if err != nil {
			t.Fatal(err)
		}
		// The filters that matter here, as generated.
		for _, line := range []string{"import-table 200", "in ip 0.0.0.0/0 eq 0 allow", "in ip ::/0 eq 0 allow", "in deny", "redistribute proto 201 allow"} {
			if !strings.Contains(string(conf), "\n"+line+"\n") {
				t.Fatalf("the configuration lacks %q:\n%s", line, conf)
			}
		}
		path := filepath.Join(dir, n+".conf")
		if err := os.WriteFile(path, conf, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", names[n], "babeld", "-c", path, "-I", "")
		out := &tailBuffer{max: 4096}
		cmd.Stderr = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("babeld %s said%s", n, out.last())
			}
		})
	}

	// b's kernel: the routes babeld installed (protocol babel, 42).
	babelRoutes := func() (v4, v6 string) {
		return show("b", "-4", "route", "show", "proto", "42"), show("b", "-6", "route", "show", "proto", "42")
	}
	start := time.Now()
	var v4, v6 string
	for time.Since(start) < 30*time.Second {
		v4, v6 = babelRoutes()
		if strings.Contains(v4, "default ") && strings.Contains(v6, "default ") && strings.Contains(v6, "fd19:f45:f324:8c2e::/64") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("b has a's routes after %v:\n%s%s", time.Since(start).Round(100*time.Millisecond), v4, v6)
	for _, want := range []struct{ table, route string }{
		{v4, "default via 10.140.46.1 dev eth1"},
		{v6, "default via fe80::"},
		{v6, "fd19:f45:f324:8c2e::/64 via fe80::"},
		{v6, "fd19:f45:f324:8c2e::1 via fe80::"},
	} {
		if !strings.Contains(want.table, want.route) {
			t.Errorf("b's kernel lacks %q from babeld", want.route)
		}
	}
	if strings.Contains(v6, "2001:db8:5::") {
		t.Errorf("b installed a's prefix outside the mesh:\n%s", v6)
	}
	// The default routes are b's whole way out: in the main table.
	if r := show("b", "-6", "route", "show", "default", "proto", "42", "table", "main"); !strings.Contains(r, "dev eth1") {
		t.Errorf("b's main table has no ::/0 from babeld: %q", r)
	}
	// a did announce the outside prefix: b's in filter refused it.
	cl, err := Dial(context.Background(), filepath.Join(dir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.Dump()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	xs := map[netip.Prefix]bool{}
	for _, x := range st.XRouteList() {
		xs[x.Prefix] = true
	}
	for _, p := range []string{"::/0", "0.0.0.0/0", "2001:db8:5::/48"} {
		if !xs[netip.MustParsePrefix(p)] {
			t.Errorf("a does not announce %s: %v", p, xs)
		}
	}

	// a stops sharing IPv6: b loses ::/0 and keeps 0.0.0.0/0.
	in("a", "-6", "route", "del", "default", "table", "200", "proto", "201")
	start = time.Now()
	for time.Since(start) < 30*time.Second {
		if v4, v6 = babelRoutes(); !strings.Contains(v6, "default ") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("::/0 withdrawn from b after %v", time.Since(start).Round(100*time.Millisecond))
	if strings.Contains(v6, "default ") || !strings.Contains(v4, "default via 10.140.46.1") {
		t.Errorf("after a withdrew ::/0, b holds\n%s%s", v4, v6)
	}
}
