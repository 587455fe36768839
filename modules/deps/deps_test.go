package deps

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"byzantium/modules/manifest"
)

func m(name string, depends ...string) *manifest.Manifest {
	return &manifest.Manifest{Name: name, Depends: depends}
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name    string
		mods    []*manifest.Manifest
		want    []string
		wantErr error
		errHas  []string
	}{
		{name: "empty", mods: nil, want: nil},
		{name: "independent sorted by name", mods: []*manifest.Manifest{m("c"), m("a"), m("b")}, want: []string{"a", "b", "c"}},
		{name: "chain", mods: []*manifest.Manifest{m("app", "lib"), m("lib", "base"), m("base")}, want: []string{"base", "lib", "app"}},
		{name: "diamond", mods: []*manifest.Manifest{m("d", "b", "c"), m("b", "a"), m("c", "a"), m("a")}, want: []string{"a", "b", "c", "d"}},
		{name: "provides", mods: []*manifest.Manifest{m("irc", "httpd"), {Name: "nginx", Provides: []string{"httpd"}}}, want: []string{"nginx", "irc"}},
		{name: "missing", mods: []*manifest.Manifest{m("app", "lib")}, wantErr: ErrMissing, errHas: []string{"app", "lib"}},
		{name: "cycle", mods: []*manifest.Manifest{m("a", "b"), m("b", "c"), m("c", "a")}, wantErr: ErrCycle, errHas: []string{"a → b → c → a"}},
		{name: "conflict", mods: []*manifest.Manifest{{Name: "x", Conflicts: []string{"y"}}, m("y")}, wantErr: ErrConflict, errHas: []string{"x", "y"}},
		{name: "duplicate", mods: []*manifest.Manifest{m("x"), m("x")}, wantErr: ErrDuplicate, errHas: []string{"x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.mods)
			var got []string
			if err == nil {
				got, err = g.Order()
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Order() error = %v, want %v", err, tt.wantErr)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Order() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Order() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClosureAndDependents(t *testing.T) {
	g, err := New([]*manifest.Manifest{m("irc", "tls"), m("tls", "base"), m("base"), m("pad", "base"), m("other")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Closure("irc")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"base", "tls", "irc"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Closure(irc) = %v, want %v", got, want)
	}
	if got, want := g.Dependents("base"), []string{"irc", "pad", "tls"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Dependents(base) = %v, want %v", got, want)
	}
	if _, err := g.Closure("nope"); !errors.Is(err, ErrMissing) {
		t.Errorf("Closure(nope) error = %v, want ErrMissing", err)
	}
}
