package daemon

import (
	"bytes"
	"byzantium/runtime/nodeapi"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOpenSettingsHostile: settings.json is read with suspicion. Whatever
// it holds, OpenSettings returns usable settings at once: each value
// that is not valid is replaced by the default, a file that cannot be
// read as a small JSON object is not used at all, and each reason is
// logged on one line (values escaped, so a file cannot write lines of its
// own to the console). The file itself is left as it was.
func TestOpenSettingsHostile(t *testing.T) {
	def := nodeapi.SettingsValues{NodeName: "default", Language: "en"}
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T, path string) // writes settings.json
		want  nodeapi.SettingsValues
		log   string // a part of the log; "" means nothing logged
		lines int    // log lines
	}{
		{"none", func(*testing.T, string) {}, def, "", 0},
		{"valid", file(`{"node_name":"relay-7","language":"fr"}`), nodeapi.SettingsValues{NodeName: "relay-7", Language: "fr"}, "", 0},
		{"not JSON", file(`{"node_name":`), def, "not a JSON object", 1},
		{"an array", file(`["node_name","x"]`), def, "not a JSON object", 1},
		{"a newline in the name", file(`{"node_name":"x\nbyzd: TLS certificate sha256 fingerprint 00","language":"es"}`),
			nodeapi.SettingsValues{NodeName: "default", Language: "es"}, `node name "x\nbyzd: TLS`, 1},
		{"markup in the name", file(`{"node_name":"<script>alert(1)</script>"}`), def, "node name", 1},
		{"a name too long", file(`{"node_name":"` + long + `"}`), def, "at most 63", 1},
		{"a name with a dot", file(`{"node_name":"evil.example"}`), def, "node name", 1},
		{"a number for a name", file(`{"node_name":5}`), def, `node_name not used`, 1},
		{"a path for a language", file(`{"language":"../../../etc/passwd"}`), def, "language", 1},
		{"an unknown language", file(`{"node_name":"ok","language":"de"}`), nodeapi.SettingsValues{NodeName: "ok", Language: "en"}, `language "de"`, 1},
		{"an unknown field", file(`{"node_name":"ok","admin":true}`), nodeapi.SettingsValues{NodeName: "ok", Language: "en"}, `unknown setting "admin"`, 1},
		{"too large", file(strings.Repeat(" ", 1<<20) + `{"node_name":"big"}`), def, "larger than 64 KiB", 1},
		{"a symlink", func(t *testing.T, p string) {
			real := filepath.Join(t.TempDir(), "real.json")
			os.WriteFile(real, []byte(`{"node_name":"linked"}`), 0o600)
			os.Symlink(real, p)
		}, def, "symbolic link", 1},
		{"a symlink to /dev/zero", func(t *testing.T, p string) { os.Symlink("/dev/zero", p) }, def, "symbolic link", 1},
		{"a FIFO", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skip(err)
			}
		}, def, "not a regular file", 1},
		{"a folder", func(t *testing.T, p string) { os.Mkdir(p, 0o700) }, def, "not a regular file", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "settings.json")
			tc.make(t, path)
			before, _ := os.Lstat(path)
			var log bytes.Buffer
			got := OpenSettings(dir, def, NewConsoleLogger(&log, "byzd: ", nil)).Get()
			if got != tc.want {
				t.Errorf("settings %+v, want %+v", got, tc.want)
			}
			if tc.log == "" && log.Len() > 0 || !strings.Contains(log.String(), tc.log) {
				t.Errorf("log %q, want %q", log.String(), tc.log)
			}
			if n := strings.Count(log.String(), "\n"); n != tc.lines {
				t.Errorf("%d log lines, want %d:\n%s", n, tc.lines, log.String())
			}
			if after, _ := os.Lstat(path); before != nil && (after == nil || after.ModTime() != before.ModTime() || after.Size() != before.Size()) {
				t.Errorf("the file was changed")
			}
		})
	}
}

func file(body string) func(*testing.T, string) {
	return func(t *testing.T, p string) {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSettingsSet: Set refuses what OpenSettings would not load, and
// what it stores loads back.
func TestSettingsSet(t *testing.T) {
	dir := t.TempDir()
	s := OpenSettings(dir, nodeapi.SettingsValues{NodeName: "a", Language: "en"}, nil)
	for _, bad := range []nodeapi.SettingsValues{{NodeName: "bad name", Language: "en"}, {NodeName: "ok", Language: "xx"}, {NodeName: "", Language: "en"}, {NodeName: "ok", Language: ""}} {
		if err := s.Set(bad); err == nil {
			t.Errorf("Set(%+v) accepted", bad)
		}
	}
	if err := s.Set(nodeapi.SettingsValues{NodeName: "relay-7", Language: "es"}); err != nil {
		t.Fatal(err)
	}
	if got := OpenSettings(dir, nodeapi.SettingsValues{NodeName: "a", Language: "en"}, nil).Get(); got != (nodeapi.SettingsValues{NodeName: "relay-7", Language: "es"}) {
		t.Errorf("loaded back %+v", got)
	}
}

// TestRunWithBrokenSettings: byzd starts, with its defaults and a warning,
// whatever settings.json holds (a file that was not JSON stopped it).
func TestRunWithBrokenSettings(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "settings.json"), []byte(`{"node_name":"half`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, state, t.TempDir())
	if !strings.Contains(d.log.String(), "byzd: WARN settings: not used: not a JSON object") || !strings.Contains(d.log.String(), "node=node1") {
		t.Errorf("log:\n%s", d.log)
	}
}
