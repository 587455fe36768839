package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"byzantium/modules"
	"byzantium/modules/manifest"
)

func testdata(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGolden(t *testing.T) {
	dir := testdata(t)
	in := func(p string) string { return filepath.Join(dir, p) }
	want := &Spec{
		File:    filepath.Join("testdata", "golden.yaml"),
		Dir:     dir,
		Name:    "golden",
		Version: "1.0-rc1",
		Kernel:  Kernel{Deb: in("inputs/kernel.deb")},
		Cmdline: "quiet loglevel=3",
		Base: []Module{
			{Name: "busybox", Sources: []string{in("inputs/busybox.deb")}, Comp: "xz", BlockSize: 1 << 20},
			{Name: "rootfs", Sources: []string{in("inputs/rootfs"), in("inputs/layer.tar.gz")},
				Comp: "gzip", Level: 9, BlockSize: 64 << 10, Depends: []string{"busybox", "kernel"}},
		},
		Modules: []Module{
			{Name: "runtime", Sources: []string{in("inputs/rootfs")}, Comp: "zstd", BlockSize: 128 << 10, Depends: []string{"rootfs"}},
		},
		Optional: []Module{
			{Name: "prebuilt", Sources: []string{in("inputs/prebuilt.xzm")}, Comp: "zstd", BlockSize: 128 << 10},
			{Name: "web", Sources: []string{"oci:" + in("inputs/oci-layout") + ":web", "docker.io/library/nginx:1.27"},
				Comp: "zstd", Level: 22, BlockSize: 128 << 10, Depends: []string{"runtime"},
				Services: []manifest.Service{{Name: "web", Description: "a web server",
					Command: []string{"/usr/sbin/nginx", "-g", "daemon off;"}, User: "www",
					Capabilities: []string{"CAP_NET_BIND_SERVICE"}, Ports: []string{"80/tcp"},
					Environment: map[string]string{"TZ": "UTC"},
					Config: []manifest.ConfigFile{{Path: "/etc/nginx/conf.d/node.conf", Mode: "0644",
						Template: "server_name {{.Node}}.local;\n"}},
					Data: "/var/lib/web", Health: &manifest.Health{TCP: "127.0.0.1:80", Expect: "HTTP"},
					Limits: manifest.Limits{MemoryMB: 128, Processes: 16, OpenFiles: 4096}}}},
		},
		Rootcopy: []string{in("rootcopy")},
		Menu: []MenuEntry{
			{Label: "Golden"},
			{Label: "Golden (RAM)", Append: "copy2ram", Default: true},
		},
		Outputs: Outputs{
			ISO: "golden-1.0.iso",
			USB: &USB{File: "golden-usb.img", Size: 1 << 30, Spare: 256 << 20},
			Dir: "golden",
		},
		Console: Console{Shell: ShellRoot},
		Mesh: Mesh{Protocol: "both", SSID: "golden mesh", Channel: 36, Interfaces: []string{"eth1", "wlan0"}, Share: "off",
			Uplink: "eth0", Check: []string{"tcp:9.9.9.9:53", "tcp:[2620:fe::fe]:443"}},
	}
	got, err := Load(want.File, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got.pos = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(%s) =\n%+v\nwant\n%+v", want.File, got, want)
	}
	// Every source the golden spec names is one ParseSource accepts, of
	// the kind its spelling promises.
	kinds := map[string]modules.Kind{}
	for _, list := range [][]Module{got.Base, got.Modules, got.Optional} {
		for _, m := range list {
			for _, ref := range m.Sources {
				src, err := modules.ParseSource(ref)
				if err != nil {
					t.Errorf("ParseSource(%s): %v", ref, err)
				}
				kinds[filepath.Base(ref)] = src.Kind
			}
		}
	}
	for name, kind := range map[string]modules.Kind{"busybox.deb": modules.KindDeb, "rootfs": modules.KindDir,
		"layer.tar.gz": modules.KindTar, "prebuilt.xzm": modules.KindModule, "nginx:1.27": modules.KindOCI} {
		if kinds[name] != kind {
			t.Errorf("source %s: kind %q, want %q", name, kinds[name], kind)
		}
	}
}

func TestPosition(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "golden.yaml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"name":                   "testdata/golden.yaml:2:7",
		"base[1]":                "testdata/golden.yaml:12:5",
		"base[1].block-size":     "testdata/golden.yaml:18:17",
		"optional[1].sources[1]": "testdata/golden.yaml:30:9",
		"outputs.usb.spare":      "testdata/golden.yaml:61:12",
		"mesh.interfaces[1]":     "testdata/golden.yaml:69:22",
		"no.such.path":           "testdata/golden.yaml",
	} {
		if got := s.Position(path).String(); got != want {
			t.Errorf("Position(%q) = %s, want %s", path, got, want)
		}
	}
}

// TestExamples loads the specs in examples/, whose inputs are fetched and
// built by make, so their existence is not checked here.
func TestExamples(t *testing.T) {
	for _, tc := range []struct {
		file, kernel string
		outputs      Outputs
	}{
		{"byzantium.yaml", "linux-image-6.1.0-56-amd64_", Outputs{ISO: "byzantium.iso",
			USB: &USB{File: "byzantium-usb.img", Size: 2 << 30, Spare: 1 << 30}}},
		{"test.yaml", "linux-image-6.1.0-56-cloud-amd64_", Outputs{ISO: "byzantium-test.iso",
			USB: &USB{File: "byzantium-test-usb.img", Size: 256 << 20, Spare: 64 << 20}, Dir: "byzantium-test"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s, err := Load(filepath.Join("..", "..", "examples", tc.file), Options{SkipInputChecks: true})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !strings.HasPrefix(filepath.Base(s.Kernel.Deb), tc.kernel) {
				t.Errorf("kernel %s, want %s*", s.Kernel.Deb, tc.kernel)
			}
			if !reflect.DeepEqual(s.Outputs, tc.outputs) {
				t.Errorf("outputs %+v, want %+v", s.Outputs, tc.outputs)
			}
			if len(s.Base) == 0 || !strings.Contains(s.Base[0].Sources[0], "busybox-static_") {
				t.Errorf("base %+v, want busybox-static first", s.Base)
			}
			// The rootcopy folder is part of the repository, so it is
			// checked even here.
			for _, dir := range s.Rootcopy {
				if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
					t.Errorf("rootcopy %s: not a directory (%v)", dir, err)
				}
			}
		})
	}
}

// TestValid parses small specs that exercise one rule each.
func TestValid(t *testing.T) {
	const head = "name: t\nkernel: {deb: inputs/kernel.deb}\n"
	const base = "base: [{name: busybox, sources: [inputs/busybox.deb]}]\n"
	dir := testdata(t)
	for _, tc := range []struct {
		name, yaml string
		check      func(*Spec) string // "" when fine
	}{
		{"minimal", head + base + "outputs: {iso: true}\n", func(s *Spec) string {
			if s.Outputs.ISO != "t.iso" || s.Outputs.USB != nil || s.Outputs.Dir != "" {
				return "outputs"
			}
			if len(s.Menu) != 1 || s.Menu[0] != (MenuEntry{Label: "t", Default: true}) {
				return "default menu"
			}
			if m := s.Base[0]; m.Comp != "zstd" || m.BlockSize != 128<<10 || m.Level != 0 {
				return "module defaults"
			}
			return ""
		}},
		{"vmlinuz and modules", "name: t\nkernel:\n  vmlinuz: inputs/vmlinuz\n  modules: inputs/lib/modules/6.1.0\n" + base +
			"outputs: {dir: media}\n", func(s *Spec) string {
			if s.Kernel.Vmlinuz != filepath.Join(dir, "inputs/vmlinuz") || s.Kernel.Deb != "" || s.Outputs.Dir != "media" {
				return "kernel"
			}
			return ""
		}},
		{"usb true", head + base + "outputs: {usb: true, iso: false}\n", func(s *Spec) string {
			if s.Outputs.USB == nil || *s.Outputs.USB != (USB{File: "t-usb.img"}) || s.Outputs.ISO != "" {
				return "usb"
			}
			return ""
		}},
		{"empty lists", head + base + "modules:\noptional:\nrootcopy:\nmenu:\noutputs: {iso: true}\n", func(s *Spec) string {
			if s.Modules != nil || len(s.Optional) != 0 || len(s.Rootcopy) != 0 || len(s.Menu) != 1 {
				return "lists"
			}
			return ""
		}},
		{"anchors", head + "base:\n  - name: busybox\n    sources: &src [inputs/busybox.deb]\n    comp: &gz gzip\n" +
			"optional:\n  - name: other\n    sources: *src\n    comp: *gz\n" +
			"outputs: {iso: true}\n", func(s *Spec) string {
			if o := s.Optional[0]; o.Comp != "gzip" || !reflect.DeepEqual(o.Sources, s.Base[0].Sources) {
				return "aliased values"
			}
			return ""
		}},
		{"registry and absolute sources", head + "base:\n  - name: busybox\n    sources:\n      - debian:bookworm\n" +
			"      - ghcr.io/x/y@sha256:" + strings.Repeat("0", 64) + "\n      - " + filepath.Join(dir, "inputs/busybox.deb") +
			"\n      - docker-archive:inputs/layer.tar.gz:repo:tag\noutputs: {iso: true}\n", func(s *Spec) string {
			want := []string{"debian:bookworm", "ghcr.io/x/y@sha256:" + strings.Repeat("0", 64),
				filepath.Join(dir, "inputs/busybox.deb"), "docker-archive:" + filepath.Join(dir, "inputs/layer.tar.gz") + ":repo:tag"}
			if !reflect.DeepEqual(s.Base[0].Sources, want) {
				return "sources " + strings.Join(s.Base[0].Sources, " ")
			}
			return ""
		}},
		{"sizes", head + "base: [{name: busybox, sources: [inputs/busybox.deb], block-size: 4K}]\n" +
			"outputs: {usb: {size: 64M, spare: 0, file: stick.img}}\n", func(s *Spec) string {
			if s.Base[0].BlockSize != 4096 || *s.Outputs.USB != (USB{File: "stick.img", Size: 64 << 20}) {
				return "sizes"
			}
			return ""
		}},
		{"quoted number as string", "name: t\nversion: \"1.10\"\nkernel: {deb: inputs/kernel.deb}\n" + base +
			"outputs: {iso: true}\n", func(s *Spec) string {
			if s.Version != "1.10" {
				return "version " + s.Version
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := tc.yaml
			s, err := Parse([]byte(yaml), filepath.Join("testdata", "snippet.yaml"))
			if err == nil {
				err = s.Validate(Options{})
			}
			if err != nil {
				t.Fatalf("%s:\n%s", err, yaml)
			}
			if tc.check != nil {
				if what := tc.check(s); what != "" {
					t.Errorf("wrong %s: %+v", what, s)
				}
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"512", 512}, {"4K", 4096}, {"4k", 4096}, {"2G", 2 << 30}, {"512M", 512 << 20},
		{"64MiB", 64 << 20}, {"1GB", 1 << 30}, {"3T", 3 << 40}, {" 8M ", 8 << 20},
	} {
		if got, err := ParseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1.5G", "2X", "99999999999T", "0x10"} {
		if _, err := ParseSize(in); !errors.Is(err, ErrSize) {
			t.Errorf("ParseSize(%q) = %v, want ErrSize", in, err)
		}
	}
	for n, want := range map[int64]string{0: "0", 1000: "1000", 4096: "4K", 3 << 30: "3G", 1536 << 20: "1536M"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %s, want %s", n, got, want)
		}
	}
}
