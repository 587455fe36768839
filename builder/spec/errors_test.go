package spec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/modules"
)

// The lines of a small valid spec, for cases that change one of them.
const (
	lName    = "name: t\n"
	lKernel  = "kernel: {deb: inputs/kernel.deb}\n"
	lBase    = "base: [{name: busybox, sources: [inputs/busybox.deb]}]\n"
	lOutputs = "outputs: {iso: true}\n"
)

// TestInvalid feeds specs with mistakes and checks each error, in order:
// its position (LINE:COL, or LINE alone for YAML syntax errors, whose
// column yaml.v3 does not report) and a phrase of its message.
func TestInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // "LINE:COL: phrase"
		is         error    // when set, some error must wrap it
	}{
		// Syntax, keys and types: Parse.
		{"unknown key with suggestion", lName + "kernal: {deb: inputs/kernel.deb}\n" + lBase + lOutputs,
			[]string{`1:1: missing required key "kernel"`, `2:1: unknown key "kernal" at top level (did you mean "kernel"?)`}, nil},
		{"unknown nested key", lName + "kernel: {dep: inputs/kernel.deb}\n" + lBase + lOutputs,
			[]string{`2:10: unknown key "dep" in kernel (did you mean "deb"?)`}, nil},
		{"unknown key without suggestion", lName + lKernel + "base:\n  - name: busybox\n    sources: [inputs/busybox.deb]\n    packages: [web]\n" + lOutputs,
			[]string{`6:5: unknown key "packages" in base[0] (known keys: name, sources, comp, level, block-size, depends, exclude, services)`}, nil},
		{"underscore for dash", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], block_size: 4K}]\n" + lOutputs,
			[]string{`3:49: unknown key "block_size" in base[0] (did you mean "block-size"?)`}, nil},
		{"list for string", lName + "version: [1, 2]\n" + lKernel + lBase + lOutputs,
			[]string{`2:10: version: want a string, got a list`}, nil},
		{"number for string", lName + "version: 1.10\n" + lKernel + lBase + lOutputs,
			[]string{`2:10: version: want a string, got a number (quote it: "1.10")`}, nil},
		{"null for string", "name:\n" + lKernel + lBase + lOutputs,
			[]string{`1:6: name: want a string, got null`}, nil},
		{"string for mapping", lName + "kernel: inputs/kernel.deb\n" + lBase + lOutputs,
			[]string{`2:9: kernel: want a mapping, got a string`}, nil},
		{"string for list", lName + lKernel + "base: [{name: b, sources: inputs/busybox.deb}]\n" + lOutputs,
			[]string{`3:27: base[0].sources: want a list, got a string`}, nil},
		{"string for number", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], level: high}]\n" + lOutputs,
			[]string{`3:56: base[0].level: want a whole number, got a string`}, nil},
		{"string for boolean", lName + lKernel + lBase + "menu: [{label: x, default: yes}]\n" + lOutputs,
			[]string{`4:28: menu[0].default: want true or false, got a string`}, nil},
		{"bad size", lName + lKernel + lBase + "outputs: {usb: {size: 2X}}\n",
			[]string{`4:23: outputs.usb.size: bad size "2X"`}, ErrSize},
		{"duplicate key", lName + lKernel + lBase + lOutputs + "name: u\n",
			[]string{`5:1: duplicate key "name" at top level (first at line 1)`}, nil},
		{"duplicate nested key", lName + "kernel:\n  deb: inputs/kernel.deb\n  deb: inputs/kernel.deb\n" + lBase + lOutputs,
			[]string{`4:3: duplicate key "deb" in kernel (first at line 3)`}, nil},
		{"missing required", lKernel + lBase + lOutputs,
			[]string{`1:1: missing required key "name"`}, nil},
		{"missing required in module", lName + lKernel + "base:\n  - sources: [inputs/busybox.deb]\n" + lOutputs,
			[]string{`4:5: base[0]: missing required key "name"`}, nil},
		{"two documents", lName + lKernel + lBase + lOutputs + "---\nname: u\n",
			[]string{`5:1: a second YAML document`}, nil},
		// yaml.v3 gives syntax errors a line only, and for a parser error
		// the line where the unfinished construct began.
		{"syntax: unclosed flow mapping", lName + "kernel: {deb: inputs/kernel.deb\n" + lBase + lOutputs,
			[]string{`2: YAML syntax: did not find expected ',' or '}'`}, nil},
		// ... or, when that is line 1, the line where it noticed.
		{"syntax: unclosed flow mapping on line 1", "kernel: {deb: inputs/kernel.deb\n" + lBase + lOutputs,
			[]string{`2: YAML syntax: did not find expected ',' or '}'`}, nil},
		{"syntax: list item in a mapping", lName + lKernel + "- x\n" + lBase + lOutputs,
			[]string{`3: YAML syntax: did not find expected key`}, nil},
		{"syntax: mapping in a list", lName + lKernel + "base:\n  - name: b\n  sources: []\n" + lOutputs,
			[]string{`4: YAML syntax: did not find expected '-' indicator`}, nil},
		{"syntax: key in a plain value", lName + "version: a: b\n" + lKernel + lBase + lOutputs,
			[]string{`2: YAML syntax: mapping values are not allowed`}, nil},
		{"syntax: tab indentation", lName + lKernel + "base:\n\t- {name: b, sources: [inputs/busybox.deb]}\n" + lOutputs,
			[]string{`4: YAML syntax: found character that cannot start any token`}, nil},
		{"syntax: unknown anchor", lName + lKernel + lBase + "outputs: {iso: *yes}\n",
			[]string{`4:16: YAML syntax: unknown anchor 'yes' referenced`}, nil},
		{"invalid utf-8", "name: \xff\n" + lKernel + lBase + lOutputs,
			[]string{`1:7: invalid UTF-8`}, nil},
		{"control character", "name: a\x01b\n" + lKernel + lBase + lOutputs,
			[]string{`1:8: control character U+0001`}, nil},
		{"empty", "# nothing\n",
			[]string{`1:1: empty spec`}, nil},
		{"only a document marker", "# nothing\n---\n",
			[]string{`2:1: empty spec`}, nil},
		{"boolean for string", "name: true\n" + lKernel + lBase + lOutputs,
			[]string{`1:7: name: want a string, got a boolean (quote it: "true")`}, nil},
		{"not a mapping", "- name: t\n",
			[]string{`1:1: want a mapping, got a list`}, nil},
		{"merge key", lName + lKernel + "base:\n  - <<: {name: b}\n    sources: [inputs/busybox.deb]\n" + lOutputs,
			[]string{`4:5: unknown key "<<" in base[0]`, `4:5: base[0]: missing required key "name"`}, nil},

		// Values: Validate.
		{"bad name", "name: Byz\n" + lKernel + lBase + lOutputs,
			[]string{`1:7: name: "Byz" is not a valid name`}, nil},
		{"duplicate module", lName + lKernel + lBase + "optional:\n  - name: busybox\n    sources: [inputs/prebuilt.xzm]\n" + lOutputs,
			[]string{`5:11: optional[0].name: module "busybox" is already defined at testdata/snippet.yaml:3:15 (base[0])`}, nil},
		{"reserved module name", lName + lKernel + "base: [{name: kernel, sources: [inputs/busybox.deb]}]\n" + lOutputs,
			[]string{`3:15: base[0].name: "kernel" is reserved`}, nil},
		{"missing source", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb, inputs/nope.deb]}]\n" + lOutputs,
			[]string{`3:48: base[0].sources[1]: bad source: ` + filepath.Join(testdata(t), "inputs/nope.deb") + `: no such file`}, modules.ErrSource},
		{"source of unknown kind", lName + lKernel + "base: [{name: b, sources: [inputs/oci-layout/index.json]}]\n" + lOutputs,
			[]string{`3:28: unknown kind of file`}, modules.ErrSource},
		{"missing oci layout", lName + lKernel + "base: [{name: b, sources: ['oci:inputs/none:latest']}]\n" + lOutputs,
			[]string{`3:28: base[0].sources[0]: stat ` + filepath.Join(testdata(t), "inputs/none")}, fs.ErrNotExist},
		{"missing kernel", lName + "kernel: {deb: inputs/linux.deb}\n" + lBase + lOutputs,
			[]string{`2:15: kernel.deb: stat `}, fs.ErrNotExist},
		{"kernel not a deb", lName + "kernel: {deb: inputs/vmlinuz}\n" + lBase + lOutputs,
			[]string{`2:15: kernel.deb: ` + filepath.Join(testdata(t), "inputs/vmlinuz") + ` is not a .deb`}, nil},
		{"both kernel forms", lName + "kernel: {deb: inputs/kernel.deb, vmlinuz: inputs/vmlinuz}\n" + lBase + lOutputs,
			[]string{`2:9: kernel: give either deb, or vmlinuz and modules, not both`}, nil},
		{"vmlinuz without modules", lName + "kernel:\n  vmlinuz: inputs/vmlinuz\n" + lBase + lOutputs,
			[]string{`3:3: kernel: missing required key "modules"`}, nil},
		{"modules not a directory", lName + "kernel: {vmlinuz: inputs/vmlinuz, modules: inputs/vmlinuz}\n" + lBase + lOutputs,
			[]string{`2:44: kernel.modules: ` + filepath.Join(testdata(t), "inputs/vmlinuz") + ` is not a directory`}, nil},
		{"empty kernel", lName + "kernel: {}\n" + lBase + lOutputs,
			[]string{`2:9: kernel: missing required key "deb"`}, nil},
		{"block size not a power of two", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], block-size: 3000}]\n" + lOutputs,
			[]string{`3:61: base[0].block-size: 3000: want a power of two from 4K to 1M`}, nil},
		{"exclude with a leading slash", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], exclude: [/etc/x]}]\n" + lOutputs,
			[]string{`3:59: base[0].exclude[0]: "/etc/x": want a path.Match pattern without a leading slash`}, nil},
		{"exclude not a pattern", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], exclude: ['a[']}]\n" + lOutputs,
			[]string{`3:59: base[0].exclude[0]: "a[": want a path.Match pattern`}, nil},
		{"block size too big", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], block-size: 2M}]\n" + lOutputs,
			[]string{`3:61: base[0].block-size: 2097152: want a power of two`}, nil},
		{"unknown compressor", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], comp: lz4}]\n" + lOutputs,
			[]string{`3:55: base[0].comp: "lz4": want zstd, gzip or xz`}, nil},
		{"level out of range", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], comp: gzip, level: 12}]\n" + lOutputs,
			[]string{`3:68: base[0].level: gzip level 12: want 1 to 9`}, nil},
		{"no base", lName + lKernel + "base: []\n" + lOutputs,
			[]string{`3:7: base: no modules`}, nil},
		{"no sources", lName + lKernel + "base: [{name: b, sources: []}]\n" + lOutputs,
			[]string{`3:27: base[0].sources: no sources`}, nil},
		{"unknown dependency", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], depends: [libc]}]\n" + lOutputs,
			[]string{`3:59: base[0].depends[0]: no module named "libc"`}, nil},
		{"dependency on a later layer", lName + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], depends: [web]}]\n" +
			"optional: [{name: web, sources: [inputs/rootfs]}]\n" + lOutputs,
			[]string{`3:59: base[0].depends[0]: b is in base but depends on web in optional`}, nil},
		{"no outputs", lName + lKernel + lBase + "outputs: {iso: false}\n",
			[]string{`4:10: outputs: no outputs`}, nil},
		{"output outside the output directory", lName + lKernel + lBase + "outputs: {iso: ../t.iso}\n",
			[]string{`4:16: outputs.iso: "../t.iso": want a plain relative name`}, nil},
		{"outputs with one name", lName + lKernel + lBase + "outputs: {iso: t.img, usb: {file: t.img}}\n",
			[]string{`4:35: outputs.usb.file: "t.img" is also the name of outputs.iso`}, nil},
		{"usb too small", lName + lKernel + lBase + "outputs: {usb: {size: 32M}}\n",
			[]string{`4:23: outputs.usb.size: 32M is too small: want at least 64M`}, nil},
		{"output is the output directory", lName + lKernel + lBase + "outputs: {dir: .}\n",
			[]string{`4:16: outputs.dir: "." is the output directory itself`}, nil},
		{"iso is the output directory", lName + lKernel + lBase + "outputs: {iso: \"./\"}\n",
			[]string{`4:16: outputs.iso: "./": want a plain relative name`}, nil},
		{"output inside another", lName + lKernel + lBase + "outputs: {dir: media, iso: media/t.iso}\n",
			[]string{`4:16: outputs.dir: "media" and outputs.iso ("media/t.iso") are one inside the other`}, nil},
		{"output named like a staging folder", lName + lKernel + lBase + "outputs: {dir: .byz-build-1}\n",
			[]string{`4:16: outputs.dir: ".byz-build-1": names starting with .byz-build- are the build's own`}, nil},
		{"usb too large", lName + lKernel + lBase + "outputs: {usb: {size: 900T}}\n",
			[]string{`4:23: outputs.usb.size: 900T is too large: want at most 2T`}, nil},
		{"usb size not in MiB", lName + lKernel + lBase + "outputs: {usb: {size: 100000K}}\n",
			[]string{`4:23: outputs.usb.size: 100000K is not a whole number of MiB`}, nil},
		{"spare fills the stick", lName + lKernel + lBase + "outputs: {usb: {size: 1G, spare: 1G}}\n",
			[]string{`4:34: outputs.usb.spare: 1G leaves no room`}, nil},
		{"two default entries", lName + lKernel + lBase + "menu:\n  - {label: a, default: true}\n  - {label: b, default: true}\n" + lOutputs,
			[]string{`6:25: menu[1].default: more than one default entry (menu[0] is default too)`}, nil},
		{"newline in cmdline", lName + lKernel + "cmdline: \"quiet\\ndebug\"\n" + lBase + lOutputs,
			[]string{`3:10: cmdline: control character U+000A at offset 5`}, nil},
		{"rootcopy is a file", lName + lKernel + lBase + "rootcopy: [inputs/vmlinuz]\n" + lOutputs,
			[]string{`4:12: rootcopy[0]: ` + filepath.Join(testdata(t), "inputs/vmlinuz") + ` is not a directory`}, nil},
		{"all errors, in file order", "name: T\n" + lKernel + "base: [{name: b, sources: [inputs/busybox.deb], comp: lz4}]\n" +
			"outputs: {usb: {size: 1M}}\nrootcopy: [inputs/none]\n",
			[]string{`1:7: name:`, `3:55: base[0].comp:`, `4:23: outputs.usb.size:`, `5:12: rootcopy[0]: stat`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { expectErrors(t, tc.yaml, tc.want, tc.is) })
	}
}

// expectErrors parses and validates yaml as testdata/snippet.yaml and
// checks the errors, in order: each "LINE:COL: phrase" of want gives where
// one is and a phrase of its message; when is is set, some error must
// wrap it.
func expectErrors(t *testing.T, yaml string, want []string, is error) {
	t.Helper()
	file := filepath.Join("testdata", "snippet.yaml")
	s, err := Parse([]byte(yaml), file)
	if err == nil {
		err = s.Validate(Options{})
	}
	if err == nil {
		t.Fatalf("no error; want %q\n%s", want, yaml)
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	if len(errs) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, e := range errs {
		var se *Error
		if !errors.As(e, &se) {
			t.Errorf("error %d is a %T, not an *Error: %v", i, e, e)
		}
		at, phrase, _ := strings.Cut(want[i], ": ")
		if prefix := file + ":" + at + ": "; !strings.HasPrefix(e.Error(), prefix) {
			t.Errorf("error %d = %q, want it at %s", i, e, prefix)
		}
		if !strings.Contains(e.Error(), phrase) {
			t.Errorf("error %d = %q, want %q in it", i, e, phrase)
		}
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %v does not wrap %v", err, is)
	}
}

// TestSkipInputChecks: without input checks a spec whose inputs are all
// missing is valid, and the value checks still run.
func TestSkipInputChecks(t *testing.T) {
	spec := "name: t\nkernel: {vmlinuz: none/vmlinuz, modules: none/modules}\n" +
		"base: [{name: b, sources: [none/b.deb, none/dir/, 'oci:none/layout']}]\nrootcopy: [none]\n" + lOutputs
	s, err := Parse([]byte(spec), filepath.Join("testdata", "snippet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(Options{SkipInputChecks: true}); err != nil {
		t.Errorf("Validate(SkipInputChecks): %v", err)
	}
	if err := s.Validate(Options{}); err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 6 {
		t.Errorf("Validate: want 6 missing inputs, got %v", err)
	}
	s.Base[0].Comp = "lz4"
	if err := s.Validate(Options{SkipInputChecks: true}); err == nil || !strings.Contains(err.Error(), "lz4") {
		t.Errorf("Validate(SkipInputChecks) = %v, want the compressor error", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join("testdata", "nope.yaml"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing file) = %v, want ErrNotExist", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("#", MaxFileSize+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big, Options{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big file) = %v, want a size error", err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"name", "version", "kernel", "cmdline", "base", "modules", "optional", "rootcopy", "menu", "outputs"}
	for key, want := range map[string]string{
		"kernal": "kernel", "Name": "name", "module": "modules", "output": "outputs", "root-copy": "rootcopy",
		"cmd_line": "cmdline", "optinal": "optional", "services": "", "x": "", "": "",
	} {
		if got := suggest(key, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}
