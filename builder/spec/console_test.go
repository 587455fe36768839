package spec

import (
	"path/filepath"
	"testing"
)

// TestConsole: the console setting parses, defaults to a password prompt,
// and a wrong value, key or module name is an error at its position.
func TestConsole(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string // Console.Shell after Parse
	}{
		{lName + lKernel + lBase + lOutputs, ShellLogin},
		{lName + lKernel + lBase + lOutputs + "console:\n", ShellLogin},
		{lName + lKernel + lBase + lOutputs + "console: {}\n", ShellLogin},
		{lName + lKernel + lBase + lOutputs + "console: {shell: login}\n", ShellLogin},
		{lName + lKernel + lBase + lOutputs + "console: {shell: root}\n", ShellRoot},
		{lName + lKernel + lBase + lOutputs + "console:\n  shell: none\n", ShellNone},
	} {
		s, err := Parse([]byte(tc.yaml), filepath.Join("testdata", "snippet.yaml"))
		if err == nil {
			err = s.Validate(Options{})
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if s.Console.Shell != tc.want {
			t.Errorf("%q: shell %q, want %q", tc.yaml, s.Console.Shell, tc.want)
		}
		if s.Console.Open() != (tc.want == ShellRoot) {
			t.Errorf("%q: Open() = %v", tc.yaml, s.Console.Open())
		}
	}
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown shell", lName + lKernel + lBase + lOutputs + "console: {shell: bash}\n",
			[]string{`5:18: console.shell: "bash": want login (ask for the admin password), root (a root shell without a password: test images) or none (no shell)`}},
		{"empty shell", lName + lKernel + lBase + lOutputs + "console: {shell: ''}\n",
			[]string{`5:18: console.shell: empty`}},
		{"shell is not a string", lName + lKernel + lBase + lOutputs + "console: {shell: true}\n",
			[]string{`5:18: console.shell: want a string, got a boolean`}},
		{"unknown key", lName + lKernel + lBase + lOutputs + "console: {shel: root}\n",
			[]string{`5:11: unknown key "shel" in console (did you mean "shell"?)`}},
		{"console is not a mapping", lName + lKernel + lBase + lOutputs + "console: root\n",
			[]string{`5:10: console: want a mapping, got a string`}},
		{"reserved module name", lName + lKernel + lBase + "modules: [{name: console, sources: [inputs/rootfs]}]\n" + lOutputs,
			[]string{`4:18: modules[0].name: "console" is reserved for the module the build makes for the console setting`}},
	} {
		t.Run(tc.name, func(t *testing.T) { expectErrors(t, tc.yaml, tc.want, nil) })
	}
	// A Spec made in code, without Parse, gets the default too.
	if got := (Console{}).ShellOrDefault(); got != ShellLogin {
		t.Errorf("Console{}.ShellOrDefault() = %q, want %q", got, ShellLogin)
	}
}

// TestExampleConsoles: the image `make` builds asks for a password on its
// console; the test image, which the end-to-end tests drive through its
// serial console, gives a root shell.
func TestExampleConsoles(t *testing.T) {
	for file, want := range map[string]string{"byzantium.yaml": ShellLogin, "test.yaml": ShellRoot} {
		s, err := Load(filepath.Join("..", "..", "examples", file), Options{SkipInputChecks: true})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if s.Console.Shell != want {
			t.Errorf("%s: console shell %q, want %q", file, s.Console.Shell, want)
		}
	}
}
