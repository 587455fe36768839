package builder

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/modules"
	"byzantium/modules/manifest"
)

// moduleManifest reads the one manifest a built module carries.
func moduleManifest(t *testing.T, path string) *manifest.Manifest {
	t.Helper()
	m, err := modules.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ms, err := m.Manifests()
	if err != nil || len(ms) != 1 {
		t.Fatalf("%s: manifests %+v, %v; want one", path, ms, err)
	}
	return ms[0]
}

// TestModuleServices: the services a spec declares for a module are in
// the manifest of the module the builder makes, exactly; and they are part
// of the module's cache key, so changing one rebuilds that module alone.
func TestModuleServices(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"base/bin", "app/usr/sbin"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "base/bin/sh"), []byte("sh"), 0o755)
	os.WriteFile(filepath.Join(dir, "app/usr/sbin/app"), []byte("app"), 0o755)
	y := `name: node
kernel: {deb: none.deb}
base:
  - name: base
    sources: [base/]
optional:
  - name: app
    sources: [app/]
    depends: [base]
    services:
      - name: app
        command: [/usr/sbin/app, --foreground]
        user: appd
        ports: [8080/tcp]
        config:
          - path: /etc/app.conf
            mode: "0640"
            template: "name = {{.Node}}\n"
        health: {tcp: "127.0.0.1:8080"}
        limits: {memory_mb: 32}
outputs: {dir: true}
`
	specPath := filepath.Join(dir, "node.yaml")
	os.WriteFile(specPath, []byte(y), 0o644)
	s, err := spec.Load(specPath, spec.Options{SkipInputChecks: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &cache.Cache{Dir: filepath.Join(dir, "cache")}
	stage := func() []built {
		t.Helper()
		b := &builder{spec: s, opts: Options{Epoch: epoch, Logf: t.Logf}, cache: c, tool: "test"}
		mods, err := b.moduleStage()
		if err != nil {
			t.Fatalf("moduleStage: %v", err)
		}
		if len(mods) != 2 || mods[1].file != "001-app.xzm" || mods[1].layer != "optional" {
			t.Fatalf("modules %+v, want base/001-base.xzm and optional/001-app.xzm", mods)
		}
		return mods
	}
	mods := stage()
	want := s.Optional[0].Services
	if got := moduleManifest(t, mods[1].path); !reflect.DeepEqual(got.Services, want) {
		t.Errorf("manifest services =\n%+v\nwant\n%+v", got.Services, want)
	}
	if got := moduleManifest(t, mods[0].path); got.Services != nil {
		t.Errorf("the base module's manifest has services %+v", got.Services)
	}

	s.Optional[0].Services[0].Ports = []string{"8081/tcp"}
	mods = stage()
	if h, m := c.Stats(); h != 1 || m != 3 {
		t.Errorf("after changing a service: %d hits, %d misses in all; want 1 and 3 (the app module rebuilt)", h, m)
	}
	if got := moduleManifest(t, mods[1].path); !reflect.DeepEqual(got.Services[0].Ports, []string{"8081/tcp"}) {
		t.Errorf("rebuilt manifest ports = %v, want [8081/tcp]", got.Services[0].Ports)
	}
}
