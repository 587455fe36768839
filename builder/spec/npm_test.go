package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/modules/npm/npmtest"
)

// TestNPMSource: an npm:DIR source resolves against the spec's folder
// like oci:PATH, and its folder must hold a package lock.
func TestNPMSource(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "apps", "chat")
	os.MkdirAll(app, 0o755)
	npmtest.App(t, app, "chat", nil, nil)
	for _, f := range []string{"kernel.deb", "busybox.deb"} {
		os.WriteFile(filepath.Join(dir, f), []byte("!<arch>\n"), 0o644)
	}
	file := filepath.Join(dir, "node.yaml")
	write := func(src string) {
		os.WriteFile(file, []byte("name: t\nkernel: {deb: kernel.deb}\nbase: [{name: busybox, sources: [busybox.deb]}]\n"+
			"optional: [{name: chat, sources: ['"+src+"']}]\noutputs: {iso: true}\n"), 0o644)
	}
	write("npm:apps/chat")
	s, err := Load(file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Optional[0].Sources[0], "npm:"+app; got != want {
		t.Errorf("source %s, want %s", got, want)
	}
	write("npm:apps/none")
	_, err = Load(file, Options{})
	if err == nil || !strings.Contains(err.Error(), "optional[0].sources[0]") || !strings.Contains(err.Error(), filepath.Join(dir, "apps/none")) {
		t.Errorf("a missing app: %v", err)
	}
	write("npm:apps")
	_, err = Load(file, Options{})
	if err == nil || !strings.Contains(err.Error(), "no package-lock.json in this folder") {
		t.Errorf("a folder without a lock: %v", err)
	}
}
