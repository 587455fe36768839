package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/modules/npm/npmtest"
)

// TestModuleFetchNPM: byz module fetch fills the npm cache from the
// registry npm's configuration names (here npm_config_registry, a
// loopback registry), byz module create lays the app out from it, and a
// second fetch needs no registry at all.
func TestModuleFetchNPM(t *testing.T) {
	app, cache := t.TempDir(), filepath.Join(t.TempDir(), "npm")
	srv := npmtest.NewRegistry(t, npmtest.Sample(t, app)...)
	run := func(env []string, args ...string) result {
		t.Helper()
		cmd := exec.Command(byzBin, args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir(), "SOURCE_DATE_EPOCH=1700000000"), env...)
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{out.String(), errb.String(), code}
	}
	reg := []string{"npm_config_registry=" + srv.URL}
	if r := run(reg, "module", "fetch", "npm:"+app, "--npm-cache", cache); r.code != 0 ||
		!strings.Contains(r.stderr, "4 fetched") || !strings.Contains(r.stderr, "fetched greet@1.0.0") {
		t.Fatalf("byz module fetch: exit %d\n%s", r.code, r.stderr)
	}
	// Everything cached: no registry needed, none asked.
	before := srv.Count()
	if r := run([]string{"npm_config_registry=", "PATH=/nonexistent"}, "module", "fetch", "npm:"+app, "--npm-cache", cache); r.code != 0 ||
		!strings.Contains(r.stderr, "0 fetched") || !strings.Contains(r.stderr, "4 already in") || srv.Count() != before {
		t.Errorf("second fetch: exit %d, %d requests\n%s", r.code, srv.Count()-before, r.stderr)
	}
	out := filepath.Join(t.TempDir(), "060-app.xzm")
	if r := run(nil, "module", "create", "npm:"+app, "-o", out, "--npm-cache", cache, "-q"); r.code != 0 {
		t.Fatalf("byz module create: exit %d\n%s", r.code, r.stderr)
	}
	ls := run(nil, "module", "ls", out)
	for _, want := range []string{"/opt/app/node_modules/greet/node_modules/dep/index.js", "/opt/app/node_modules/.bin/greet -> ../greet/bin/greet.js"} {
		if !strings.Contains(ls.stdout, want) {
			t.Errorf("byz module ls has no %s:\n%s", want, ls.stdout)
		}
	}
	// Without the cache, create says what to run.
	r := run(nil, "module", "create", "npm:"+app, "-o", out+"2", "--npm-cache", t.TempDir())
	if r.code == 0 || !strings.Contains(r.stderr, "byz module fetch npm:"+app) {
		t.Errorf("create without the tarballs: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(nil, "module", "fetch", app); r.code != 2 || !strings.Contains(r.stderr, "only npm:DIR sources are fetched") {
		t.Errorf("fetch of a plain folder: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(nil, "module", "fetch", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
		t.Errorf("byz module fetch --help: exit %d\n%s", r.code, r.stdout)
	}
}
