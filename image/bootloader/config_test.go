package bootloader

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenConfig is the input of the golden configs (testdata/README.md).
func goldenConfig() Config {
	return Config{
		Cmdline: "console=tty0 console=ttyS0,115200",
		MediaID: "0123456789abcdef",
		Entries: StandardMenu("Byzantium"),
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		gen  func(Config) ([]byte, error)
	}{
		{"isolinux.cfg", Isolinux},
		{"grub.cfg", Grub},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := tc.gen(goldenConfig())
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from %s (go test -run TestGolden -update rewrites it):\n%s", tc.file, golden, got)
			}
		})
	}
}

func TestConfigDetails(t *testing.T) {
	c := goldenConfig()
	c.Entries = []Entry{{Label: "A"}, {Label: "B", Default: true, Append: "debug"}}
	c.Timeout = 1500e6 // 1.5 s: isolinux 15 tenths, GRUB rounds up to 2 s
	iso, err := Isolinux(c)
	if err != nil {
		t.Fatal(err)
	}
	grub, err := Grub(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TIMEOUT 15\n", "DEFAULT byz2\n", "APPEND console=tty0 console=ttyS0,115200 debug byz.media=0123456789abcdef\n"} {
		if !strings.Contains(string(iso), want) {
			t.Errorf("isolinux.cfg lacks %q:\n%s", want, iso)
		}
	}
	if !strings.HasPrefix(string(iso), "SERIAL 0 115200\n") {
		t.Errorf("isolinux.cfg must start with SERIAL:\n%s", iso)
	}
	for _, want := range []string{"set timeout=2\n", "set default=1\n", "--file /byzantium/media-0123456789abcdef;"} {
		if !strings.Contains(string(grub), want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, grub)
		}
	}
}

// TestMenuRefused feeds labels and parameters that would inject config
// syntax (or break a line) and expects ErrBadMenu from both generators.
func TestMenuRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"newline in label", func(c *Config) { c.Entries[0].Label = "x\nLABEL evil" }},
		{"quote in label", func(c *Config) { c.Entries[0].Label = "x' { linux /evil }'" }},
		{"dollar in label", func(c *Config) { c.Entries[0].Label = "x${root}" }},
		{"semicolon in label", func(c *Config) { c.Entries[0].Label = "a; reboot" }},
		{"brace in label", func(c *Config) { c.Entries[0].Label = "a}" }},
		{"hash in label", func(c *Config) { c.Entries[0].Label = "a #b" }},
		{"hot key in label", func(c *Config) { c.Entries[0].Label = "^Boot" }},
		{"empty label", func(c *Config) { c.Entries[0].Label = "" }},
		{"padded label", func(c *Config) { c.Entries[0].Label = " a" }},
		{"long label", func(c *Config) { c.Entries[0].Label = strings.Repeat("a", 65) }},
		{"bad title", func(c *Config) { c.Title = "T\n" }},
		{"newline in append", func(c *Config) { c.Entries[1].Append = "quiet\n}\nmenuentry x {" }},
		{"tab in cmdline", func(c *Config) { c.Cmdline = "quiet\tdebug" }},
		{"dollar in cmdline", func(c *Config) { c.Cmdline = "init=$x" }},
		{"quote in append", func(c *Config) { c.Entries[1].Append = `a="b c"` }},
		{"two defaults", func(c *Config) { c.Entries[1].Default = true }},
		{"no entries", func(c *Config) { c.Entries = nil }},
		{"bad media ID", func(c *Config) { c.MediaID = "ABC" }},
		{"no media ID", func(c *Config) { c.MediaID = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goldenConfig()
			tc.edit(&c)
			for name, gen := range map[string]func(Config) ([]byte, error){"isolinux": Isolinux, "grub": Grub} {
				if out, err := gen(c); !errors.Is(err, ErrBadMenu) {
					t.Errorf("%s: err = %v, want ErrBadMenu; output:\n%s", name, err, out)
				}
			}
		})
	}
}
