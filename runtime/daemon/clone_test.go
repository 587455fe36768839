package daemon

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"byzantium/image/clone/cloneapi"
	"byzantium/runtime/luks2"
)

// fakeByz writes a stand-in for byz clone: it records its arguments and
// the request it reads on its standard input, prints progress lines, and
// succeeds or fails as told.
func fakeByz(t *testing.T, fail bool) (path, argsFile, reqFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile, reqFile = filepath.Join(dir, "args"), filepath.Join(dir, "request")
	script := "#!/bin/sh\necho \"$@\" > " + argsFile + "\ncat > " + reqFile + "\n" +
		`echo '{"phase":"write","file":"byzantium/base/000-busybox.xzm","bytes":1048576,"total":4194304,"rate":524288,"eta_s":6}'` + "\n" +
		"sleep 0.3\n"
	if fail {
		script += `echo '{"phase":"error","error":"refusing /dev/sdb: it holds the boot media"}'` + "\nexit 1\n"
	} else {
		script += `echo '{"phase":"done","bytes":4194304,"total":4194304}'` + "\n"
	}
	path = filepath.Join(dir, "byz")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, argsFile, reqFile
}

// sentRequest decodes the request byzd handed byz, as byz clone
// --request - does.
func sentRequest(t *testing.T, reqFile string) cloneapi.Request {
	t.Helper()
	f, err := os.Open(reqFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	req, err := cloneapi.Decode(f)
	if err != nil {
		t.Fatalf("byz clone would refuse the request byzd sent: %v", err)
	}
	return req
}

func waitJob(t *testing.T, c *Cloner, state string) CloneJob {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if j := c.Job(); j.State == state {
			return j
		}
	}
	t.Fatalf("the job never reached %s: %+v", state, c.Job())
	return CloneJob{}
}

func TestCloner(t *testing.T) {
	byz, argsFile, reqFile := fakeByz(t, false)
	c := &Cloner{Byz: byz, Log: slog.New(slog.DiscardHandler)}
	if j := c.Job(); j.State != "idle" {
		t.Errorf("a new cloner: %+v", j)
	}
	for _, bad := range []CloneRequest{{Target: "sdb"}, {Target: "/dev/sdb1/../x"}, {Target: "/dev/sdb", Passphrase: "no save.dat"}} {
		if _, err := c.Start(bad); statusOf(err) != http.StatusBadRequest {
			t.Errorf("Start(%+v): %v", bad, err)
		}
	}
	if _, err := c.Start(CloneRequest{Target: "/dev/sdb", SaveSizeBytes: 256 << 20, Passphrase: "new stick pass", WithState: true, KDFMemoryKiB: 65536, KDFTime: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(CloneRequest{Target: "/dev/sdc"}); statusOf(err) != http.StatusConflict {
		t.Errorf("a second clone while one runs: %v", err)
	}
	j := waitJob(t, c, "done")
	if j.Bytes != 4194304 || j.Target != "/dev/sdb" || j.Finished == nil {
		t.Errorf("done: %+v", j)
	}
	args, _ := os.ReadFile(argsFile)
	if got := strings.TrimSpace(string(args)); got != "clone --request - --yes --progress=json" {
		t.Errorf("byz was run with %q", got)
	}
	want := cloneapi.Request{Target: "/dev/sdb", SaveSize: 256 << 20, Encrypt: true, Passphrase: "new stick pass",
		KDFMemoryKiB: luks2.LocalKDFMemory(65536), KDFTime: 1, WithState: true}
	if got := sentRequest(t, reqFile); !reflect.DeepEqual(got, want) {
		t.Errorf("byz was asked for\n%+v, want\n%+v", got, want)
	}
	if strings.Contains(string(args), "new stick pass") {
		t.Error("the passphrase is on the command line")
	}
	// Modules: none ([]) is not all (null).
	byz, _, reqFile = fakeByz(t, false)
	c.Byz = byz
	if _, err := c.Start(CloneRequest{Target: "/dev/sdc", Modules: []string{}, SaveSizeBytes: 100<<20 + 5}); err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, "done")
	if got := sentRequest(t, reqFile); got.Modules == nil || len(got.Modules) != 0 || got.Encrypt || got.SaveSize != 100<<20 {
		t.Errorf("no optional modules, a save.dat in whole MiB: %+v", got)
	}

	byz, _, _ = fakeByz(t, true)
	c.Byz = byz
	if _, err := c.Start(CloneRequest{Target: "/dev/sdb"}); err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, c, "failed"); !strings.Contains(j.Error, "holds the boot media") {
		t.Errorf("failed: %+v", j)
	}
	if err := c.Cancel(); statusOf(err) != http.StatusConflict {
		t.Errorf("cancel with nothing running: %v", err)
	}
}

func TestListDisks(t *testing.T) {
	root := t.TempDir()
	for name, files := range map[string]map[string]string{
		"sda":   {"size": "41943040", "removable": "0", "device/model": "QEMU HARDDISK"},
		"sdb":   {"size": "4194304", "removable": "1", "device/model": "QEMU USB", "device/vpd_pg80": "\x00\x80\x00\x06BLANK1"},
		"vda":   {"size": "2097152", "serial": "v1"},
		"loop0": {"size": "100"},
		"sr0":   {"size": "100"},
		"sdc":   {"size": "0"},
	} {
		for f, v := range files {
			p := filepath.Join(root, "sys/block", name, f)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(v+"\n"), 0o644)
		}
	}
	got := listDisks(root)
	if len(got) != 3 {
		t.Fatalf("disks %+v", got)
	}
	for _, d := range got {
		switch d.Name {
		case "sdb":
			if !d.Removable || d.Serial != "BLANK1" || d.SizeBytes != 2<<30 || d.Model != "QEMU USB" {
				t.Errorf("sdb %+v", d)
			}
		case "vda":
			if d.Serial != "v1" || d.Removable {
				t.Errorf("vda %+v", d)
			}
		}
	}
}

// TestClonePanel: the panel's form shows the node's disks, asks again
// naming the chosen disk's model, serial and size, then starts the clone
// and follows it (the page refreshes itself while it runs). The request
// waits on the server under a one-time nonce: the confirmation page does
// not carry the new passphrase, and a nonce works once, for its own
// login, before it expires.
func TestClonePanel(t *testing.T) {
	tw := newTestWeb(t)
	byz, argsFile, reqFile := fakeByz(t, false)
	tw.Cloner.Byz = byz
	for f, v := range map[string]string{"size": "2097152", "removable": "1", "device/model": "Stick 3000", "device/vpd_pg80": "\x00\x80\x00\x05SER42"} {
		p := filepath.Join(tw.Root, "sys/block/sdb", f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(v), 0o644)
	}
	c, csrf := tw.claim(t, "long enough pass")
	if r := tw.do(t, c, "GET", "/clone", nil, nil); r.code != http.StatusOK || !strings.Contains(r.body, `<option value="/dev/sdb">/dev/sdb · 1.0 GiB · Stick 3000 · removable`) {
		t.Fatalf("the clone page: %d\n%s", r.code, r.body)
	}
	body, hdr := form("csrf", csrf, "target", "/dev/sdb", "save_mb", "128", "passphrase", "a", "confirm_passphrase", "b")
	if r := tw.do(t, c, "POST", "/clone", body, hdr); r.code != http.StatusBadRequest {
		t.Errorf("passphrases that differ: %d", r.code)
	}
	const pass = "new stick passphrase"
	ask := func(c *http.Client, csrf string) string {
		t.Helper()
		body, hdr := form("csrf", csrf, "target", "/dev/sdb", "save_mb", "128", "with_state", "on", "passphrase", pass, "confirm_passphrase", pass)
		r := tw.do(t, c, "POST", "/clone", body, hdr)
		for _, want := range []string{"Erase this disk?", "Stick 3000", "SER42", "1.0 GiB", `name="confirm" value="yes"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("the confirmation lacks %q", want)
			}
		}
		if strings.Contains(r.body, pass) || strings.Contains(r.body, "passphrase\" value") {
			t.Errorf("the confirmation page carries the passphrase back:\n%s", r.body)
		}
		m := regexp.MustCompile(`name="nonce" value="([A-Za-z0-9_-]{20,})"`).FindStringSubmatch(r.body)
		if m == nil {
			t.Fatalf("no nonce on the confirmation page")
		}
		return m[1]
	}
	confirm := func(c *http.Client, csrf, nonce string) resp {
		body, hdr := form("csrf", csrf, "confirm", "yes", "nonce", nonce)
		return tw.do(t, c, "POST", "/clone", body, hdr)
	}
	nonce := ask(c, csrf)
	if _, err := os.Stat(argsFile); err == nil {
		t.Fatal("byz clone ran before the confirmation")
	}
	// Another login cannot use it, nor a made-up nonce.
	c2, csrf2 := tw.claimedLogin(t, "long enough pass")
	for _, tc := range []struct {
		name        string
		c           *http.Client
		csrf, nonce string
	}{{"another login", c2, csrf2, nonce}, {"a made-up nonce", c, csrf, "bm90LWEtbm9uY2Utbm90LWEtbm9uY2U"}, {"no nonce", c, csrf, ""}} {
		if r := confirm(tc.c, tc.csrf, tc.nonce); r.code != http.StatusBadRequest || !strings.Contains(r.body, "expired") {
			t.Errorf("%s: %d", tc.name, r.code)
		}
	}
	if r := confirm(c, csrf, nonce); r.code != http.StatusSeeOther {
		t.Fatalf("confirmed: %d %s", r.code, r.body)
	}
	if r := tw.do(t, c, "GET", "/clone", nil, nil); r.hdr.Get("Refresh") != "2" || !strings.Contains(r.body, "writing") {
		t.Errorf("while it runs: Refresh %q", r.hdr.Get("Refresh"))
	}
	waitJob(t, tw.Cloner, "done")
	if r := tw.do(t, c, "GET", "/clone", nil, nil); r.hdr.Get("Refresh") != "" || !strings.Contains(r.body, "the stick is ready") {
		t.Errorf("once done: Refresh %q", r.hdr.Get("Refresh"))
	}
	if args, _ := os.ReadFile(argsFile); string(args) != "clone --request - --yes --progress=json\n" {
		t.Errorf("byz clone ran with %q", args)
	}
	if got := sentRequest(t, reqFile); got.Target != "/dev/sdb" || got.SaveSize != 128<<20 || !got.WithState || !got.Encrypt || got.Passphrase != pass {
		t.Errorf("byz clone was asked for %+v", got)
	}
	// Once used, the nonce is gone.
	if r := confirm(c, csrf, nonce); r.code != http.StatusBadRequest {
		t.Errorf("a nonce used twice: %d", r.code)
	}
	// Expired.
	now := time.Now()
	tw.clones.now = func() time.Time { return now }
	nonce = ask(c, csrf)
	now = now.Add(pendingCloneTTL)
	if r := confirm(c, csrf, nonce); r.code != http.StatusBadRequest {
		t.Errorf("an expired nonce: %d", r.code)
	}
}

// TestPendingClonesBounded: however many confirmation pages are asked
// for, at most maxPendingClones requests are kept, the newest.
func TestPendingClonesBounded(t *testing.T) {
	var p pendingClones
	now := time.Now()
	p.now = func() time.Time { return now }
	var nonces []string
	for i := 0; i < 100; i++ {
		now = now.Add(time.Second)
		nonces = append(nonces, p.put(CloneRequest{Target: "/dev/sdb", Passphrase: "secret"}, Disk{}, "s"))
	}
	if p.len() != maxPendingClones {
		t.Errorf("%d kept, want %d", p.len(), maxPendingClones)
	}
	if _, ok := p.take(nonces[0], "s"); ok {
		t.Error("the oldest was kept")
	}
	if pc, ok := p.take(nonces[99], "s"); !ok || pc.req.Passphrase != "secret" {
		t.Error("the newest was not kept")
	}
}
