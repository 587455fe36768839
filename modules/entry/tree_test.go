package entry

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// tnode is a writer's node as the tests see it: one payload field.
type tnode struct {
	Node[*tnode]
	tag string
}

// add is one Add: a path, a type and a tag for the payload.
type add struct {
	path string
	typ  Type
	tag  string
}

// dump lists every node below d as "path type tag", depth first in name
// order, implicit directories tagged "implied".
func dump(t *Tree[*tnode]) []string {
	var out []string
	var walk func(d *tnode)
	walk = func(d *tnode) {
		for _, k := range t.Sort(d) {
			out = append(out, fmt.Sprintf("%s %s %s", k.Path, k.Type, k.tag))
			if k.IsDir() {
				walk(k)
			}
		}
	}
	walk(t.Root())
	return out
}

func newTestTree(setup func(*Tree[*tnode])) *Tree[*tnode] {
	t := NewTree("test", &tnode{tag: "root"}, func() *tnode { return &tnode{tag: "implied"} })
	if setup != nil {
		setup(t)
	}
	return t
}

func TestTree(t *testing.T) {
	fold := func(t *Tree[*tnode]) { t.Fold, t.FixedKinds = strings.ToUpper, true }
	for _, tc := range []struct {
		name  string
		setup func(*Tree[*tnode])
		adds  []add
		want  []string
		err   error  // of the last add
		msg   string // in the last add's error
	}{
		{name: "implied parents", adds: []add{{"a/b/c", TypeRegular, "c"}},
			want: []string{"a dir implied", "a/b dir implied", "a/b/c regular c"}},
		{name: "siblings in a row", adds: []add{{"d/x", TypeRegular, "x"}, {"d/y", TypeRegular, "y"}, {"e", TypeSymlink, "e"}},
			want: []string{"d dir implied", "d/x regular x", "d/y regular y", "e symlink e"}},
		{name: "last wins", adds: []add{{"f", TypeRegular, "1"}, {"f", TypeSymlink, "2"}},
			want: []string{"f symlink 2"}},
		{name: "a directory again keeps its children", adds: []add{{"d/x", TypeRegular, "x"}, {"d", TypeDir, "named"}},
			want: []string{"d dir named", "d/x regular x"}},
		{name: "a file over a directory drops the subtree", adds: []add{{"d/x", TypeRegular, "x"}, {"d", TypeRegular, "f"}, {"d2/y", TypeRegular, "y"}},
			want: []string{"d regular f", "d2 dir implied", "d2/y regular y"}},
		{name: "the parent cache does not outlive its directory", adds: []add{{"d/x", TypeRegular, "x"}, {"d", TypeRegular, "f"}, {"d/y", TypeRegular, "y"}},
			want: []string{"d regular f"}, err: ErrBadHeader, msg: "test: d/y: parent d is a regular file, not a directory"},
		{name: "a directory over a file", adds: []add{{"d", TypeRegular, "f"}, {"d", TypeDir, "d"}, {"d/x", TypeRegular, "x"}},
			want: []string{"d dir d", "d/x regular x"}},
		{name: "root", adds: []add{{".", TypeDir, "again"}, {"a", TypeRegular, "a"}},
			want: []string{"a regular a"}},
		{name: "name too long", setup: func(t *Tree[*tnode]) { t.MaxName = 3 }, adds: []add{{"abc/abcd", TypeRegular, "x"}},
			err: ErrUnsupported, msg: "test: abc/abcd: name longer than 3 bytes"},
		{name: "name too long leaves no parents", setup: func(t *Tree[*tnode]) { t.MaxName = 3 }, adds: []add{{"abcd/abc", TypeRegular, "x"}},
			err: ErrUnsupported, msg: "test: abcd: name longer than 3 bytes"},
		{name: "check name", setup: func(t *Tree[*tnode]) {
			t.CheckName = func(name, p string) error {
				if strings.Contains(name, ":") {
					return fmt.Errorf("test: %s: colon: %w", p, ErrUnsupported)
				}
				return nil
			}
		}, adds: []add{{"a:b/c", TypeRegular, "x"}}, err: ErrUnsupported, msg: "test: a:b: colon"},
		{name: "fold clash", setup: fold, adds: []add{{"d/Boot", TypeRegular, "1"}, {"d/BOOT", TypeRegular, "2"}},
			want: []string{"d dir implied", "d/Boot regular 1"}, err: ErrUnsupported, msg: "test: d/Boot and d/BOOT differ only by case, and TEST names ignore case"},
		{name: "fold clash in a parent", setup: fold, adds: []add{{"EFI/a", TypeRegular, "1"}, {"efi/b", TypeRegular, "2"}},
			want: []string{"EFI dir implied", "EFI/a regular 1"}, err: ErrUnsupported, msg: "test: EFI and efi differ"},
		{name: "fixed kinds", setup: fold, adds: []add{{"d", TypeDir, "d"}, {"d", TypeRegular, "f"}},
			want: []string{"d dir d"}, err: ErrBadHeader, msg: "test: d: cannot replace a directory with a regular"},
		{name: "fixed kinds, the other way", setup: fold, adds: []add{{"f", TypeRegular, "f"}, {"f", TypeDir, "d"}},
			want: []string{"f regular f"}, err: ErrBadHeader, msg: "cannot replace a regular file with a dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestTree(tc.setup)
			var err error
			for i, a := range tc.adds {
				n := &tnode{tag: a.tag}
				n.Type = a.typ
				var got *tnode
				got, err = tr.Add(a.path, n)
				if i < len(tc.adds)-1 && err != nil {
					t.Fatalf("Add(%s): %v", a.path, err)
				}
				if err == nil && got != n {
					got.tag = a.tag // what a writer does with a directory written again
				}
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("last Add: error %v, want %v", err, tc.err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if got := dump(tr); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestTreeLookup(t *testing.T) {
	tr := newTestTree(nil)
	for _, p := range []string{"a/b/c", "a/x", "z"} {
		n := &tnode{tag: p}
		n.Type = TypeRegular
		if _, err := tr.Add(p, n); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		for p, want := range map[string]string{".": "root", "a": "implied", "a/b/c": "a/b/c", "a/x": "a/x", "z": "z", "a/b/d": "", "z/y": "", "q": ""} {
			got := ""
			if n := tr.Lookup(p); n != nil {
				got = n.tag
			}
			if got != want {
				t.Errorf("%s: Lookup(%q) = %q, want %q", when, p, got, want)
			}
		}
	}
	check("before Sort")
	tr.Sort(tr.Root())
	check("after sorting the root")
	dump(tr)
	check("after Sort")
	names := []string{}
	for _, k := range tr.Root().Sorted {
		names = append(names, k.Name)
	}
	if !sort.StringsAreSorted(names) || len(tr.Root().Kids) != 0 {
		t.Errorf("Sort: %v, Kids %v", names, tr.Root().Kids)
	}
}
