package overlays

import (
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
)

// media is a media tree with the corners of the order: bytewise ("10-"
// before "9-", upper case before lower), .xzm in any case, a folder
// named like a module, files that are not modules.
func media(load string) fstest.MapFS {
	m := fstest.MapFS{}
	for _, f := range []string{
		"base/000-kernel.xzm", "base/10-b.xzm", "base/9-a.xzm", "base/Zed.XZM", "base/aa.xzm",
		"modules/001-x.xzm", "modules/001-x2.Xzm", "modules/README.txt", "modules/002-folder.xzm/f",
		"optional/001-kde.xzm", "optional/002-gnome.xzm", "optional/003-Firefox.xzm",
	} {
		m["byzantium/"+f] = &fstest.MapFile{}
	}
	if load != "" {
		m[LoadList] = &fstest.MapFile{Data: []byte(load)}
	}
	return m
}

var allBase = []string{
	"byzantium/base/000-kernel.xzm", "byzantium/base/10-b.xzm", "byzantium/base/9-a.xzm",
	"byzantium/base/Zed.XZM", "byzantium/base/aa.xzm",
}

var allModules = []string{"byzantium/modules/001-x.xzm", "byzantium/modules/001-x2.Xzm"}

func TestSelect(t *testing.T) {
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name string
		load string // the media's LoadList
		sel  Selection
		want []string
	}{
		{"default: base and modules, no optional", "", Selection{}, cat(allBase, allModules)},
		{"load= a substring", "", Selection{Load: []string{"kde"}}, cat(allBase, allModules, []string{"byzantium/optional/001-kde.xzm"})},
		{"load= every optional", "", Selection{Load: []string{"."}},
			cat(allBase, allModules, []string{"byzantium/optional/001-kde.xzm", "byzantium/optional/002-gnome.xzm", "byzantium/optional/003-Firefox.xzm"})},
		{"noload= in any folder", "", Selection{Load: []string{"."}, Noload: []string{"gnome|kernel", "x2"}},
			cat(allBase[1:], allModules[:1], []string{"byzantium/optional/001-kde.xzm", "byzantium/optional/003-Firefox.xzm"})},
		{"base_only", "", Selection{BaseOnly: true, Load: []string{"kde"}}, cat(allBase, []string{"byzantium/optional/001-kde.xzm"})},
		{"the load list names modules", "# next boot\n gnome \n\nFirefox\n", Selection{},
			cat(allBase, allModules, []string{"byzantium/optional/002-gnome.xzm", "byzantium/optional/003-Firefox.xzm"})},
		{"the load list is exact, not a pattern", "gno\nfirefox\n", Selection{}, cat(allBase, allModules)},
		{"base_only ignores the load list", "gnome\n", Selection{BaseOnly: true}, allBase},
		{"noload= beats the load list", "gnome\n", Selection{Noload: []string{"GNOME"}}, cat(allBase, allModules)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(media(tc.load), tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Select =\n  %q\nwant\n  %q", got, tc.want)
			}
		})
	}
}

func TestSelectMissingFolders(t *testing.T) {
	got, err := Select(fstest.MapFS{"byzantium/base/a.xzm": {}}, Selection{Load: []string{"."}})
	if err != nil || !slices.Equal(got, []string{"byzantium/base/a.xzm"}) {
		t.Fatalf("Select = %q, %v", got, err)
	}
}

// notADir fails every read but the root's.
type notADir struct{ fstest.MapFS }

func (f notADir) ReadDir(name string) ([]fs.DirEntry, error) {
	return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrPermission}
}

func TestSelectUnreadableFolder(t *testing.T) {
	_, err := Select(notADir{media("")}, Selection{})
	if err == nil || err.Error() != "listing byzantium/base: readdir byzantium/base: permission denied" {
		t.Fatalf("Select = %v", err)
	}
}

func TestMatchAny(t *testing.T) {
	for _, tc := range []struct {
		name     string
		patterns []string
		want     bool
	}{
		{"003-kde.xzm", []string{"kde"}, true},
		{"003-KDE.xzm", []string{"kde"}, true},
		{"003-kde.xzm", []string{"gnome", "kd"}, true},
		{"003-kde.xzm", []string{"003-kde.xzm"}, true},
		{"003-kde.xzm", []string{"gnome"}, false},
		{"003-kde.xzm", nil, false},
		{"003-kde.xzm", []string{""}, false},
		{"010-firefox.xzm", []string{"fire|chrom"}, true}, // egrep syntax, as in Porteus
		{"010-c++.xzm", []string{"c++"}, true},            // not a valid regexp: literal
		{"010-cxx.xzm", []string{"c++"}, false},
	} {
		if got := MatchAny(tc.name, tc.patterns); got != tc.want {
			t.Errorf("MatchAny(%q, %q) = %v, want %v", tc.name, tc.patterns, got, tc.want)
		}
	}
}

func TestNameFromFile(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"byzantium/base/000-busy-box.xzm", "busy-box"},
		{"byzantium/base/kde.xzm", "kde"},
		{"003-Firefox.XZM", "Firefox"},
		{"v2-tool.xzm", "v2-tool"},
		{"-x.xzm", "-x"},
	} {
		if got := NameFromFile(tc.file); got != tc.want {
			t.Errorf("NameFromFile(%q) = %q, want %q", tc.file, got, tc.want)
		}
	}
}

func TestParseLoadList(t *testing.T) {
	got := ParseLoadList([]byte("# Modules byz-init stacks\nkde\n\n  gnome  \r\n#x\n"))
	if want := []string{"kde", "gnome"}; !slices.Equal(got, want) {
		t.Fatalf("ParseLoadList = %q, want %q", got, want)
	}
	if got := ParseLoadList(nil); got != nil {
		t.Fatalf("ParseLoadList(nil) = %q", got)
	}
}

func TestIsModuleFile(t *testing.T) {
	for name, want := range map[string]bool{"a.xzm": true, "a.XZM": true, "a.Xzm": true, "a.xz": false, "xzm": false, "a.xzm.txt": false} {
		if got := IsModuleFile(name); got != want {
			t.Errorf("IsModuleFile(%q) = %v", name, got)
		}
	}
}
