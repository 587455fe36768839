package npm

import (
	"errors"
	"strings"
	"testing"
)

const okSRI = "sha512-BLI3Tl1TW3Pvl70l3yq3Y64i+awpwXqsGBYWkkqMtnbXgrMD+yj7rhW0kuEDxzJaYXGjEW5ogapKNMEKNMjibA=="

func TestParseLock(t *testing.T) {
	pkg := func(path, body string) string { return `"` + path + `": {` + body + `}` }
	lock := func(version string, entries ...string) string {
		return `{"name": "app", "version": "1.0.0", "lockfileVersion": ` + version + `, "packages": {"": {"name": "app"}` +
			func() string {
				s := ""
				for _, e := range entries {
					s += ", " + e
				}
				return s
			}() + `}}`
	}
	good := `"version": "2.0.2", "integrity": "` + okSRI + `"`
	for _, tc := range []struct {
		name, in string
		want     []string // paths parsed, or
		err      string   // a substring of the error (which wraps ErrLock or ErrIntegrity)
	}{
		{name: "v3", in: lock("3", pkg("node_modules/which", good)), want: []string{"node_modules/which"}},
		{name: "v2 keeps its legacy dependencies", in: `{"lockfileVersion": 2, "dependencies": {"which": {"version": "2.0.2"}}, "packages": {"": {}, ` +
			pkg("node_modules/which", good) + `}}`, want: []string{"node_modules/which"}},
		{name: "nested and scoped", in: lock("3", pkg("node_modules/a", good), pkg("node_modules/a/node_modules/@s/b", good),
			pkg("node_modules/@s/b/node_modules/c", good)),
			want: []string{"node_modules/@s/b/node_modules/c", "node_modules/a", "node_modules/a/node_modules/@s/b"}},
		{name: "resolved on a registry is accepted here", in: lock("3", pkg("node_modules/a", good+`, "resolved": "https://mirror.invalid/a/-/a-2.0.2.tgz"`)),
			want: []string{"node_modules/a"}},
		{name: "bundled needs no integrity", in: lock("3", pkg("node_modules/a", good), pkg("node_modules/a/node_modules/b", `"version": "1.0.0", "inBundle": true`)),
			want: []string{"node_modules/a", "node_modules/a/node_modules/b"}},
		{name: "v1 refused", in: `{"name": "app", "lockfileVersion": 1, "dependencies": {"which": {"version": "2.0.2"}}}`, err: "lockfileVersion 1 has no \"packages\" map"},
		{name: "v4 refused", in: lock("4"), err: "lockfileVersion 4 is newer"},
		{name: "no version field", in: `{"packages": {}}`, err: "no lockfileVersion"},
		{name: "not JSON", in: "{\n\"lockfileVersion\": 3,\n\"packages\": {\n}}}", err: "line 4"},
		{name: "wrong type", in: `{"lockfileVersion": "3"}`, err: "line 1"},
		{name: "no root", in: `{"lockfileVersion": 3, "packages": {` + pkg("node_modules/a", good) + `}}`, err: `no root entry`},
		{name: "no integrity", in: lock("3", pkg("node_modules/a", `"version": "1.0.0"`)), err: "a@1.0.0 has no integrity"},
		{name: "no version", in: lock("3", pkg("node_modules/a", `"integrity": "`+okSRI+`"`)), err: "node_modules/a: no version"},
		{name: "bad integrity", in: lock("3", pkg("node_modules/a", `"version": "1.0.0", "integrity": "sha512-AAAA"`)), err: "not 64 bytes"},
		{name: "workspace path", in: lock("3", pkg("packages/a", good)), err: "workspaces are not supported"},
		{name: "link", in: lock("3", pkg("node_modules/a", `"link": true, "resolved": "packages/a"`)), err: "a link to a local folder"},
		{name: "git", in: lock("3", pkg("node_modules/a", good+`, "resolved": "git+ssh://git@host.invalid/a.git#abc"`)), err: "git, file: and other sources"},
		{name: "climbing path", in: lock("3", pkg("node_modules/../etc", good)), err: `"node_modules/../etc"`},
		{name: "dot-dot name", in: lock("3", pkg("node_modules/a/node_modules/..", good)), err: "not a package name"},
		{name: ".bin name", in: lock("3", pkg("node_modules/.bin", good)), err: `".bin" is not a package name`},
		{name: "scope alone", in: lock("3", pkg("node_modules/@s", good)), err: "scope @s without a package name"},
		{name: "empty component", in: lock("3", pkg("node_modules//a", good)), err: "not a package name"},
		{name: "backslash", in: lock("3", pkg(`node_modules/a\\b`, good)), err: "not a package name"},
		{name: "version with a slash", in: lock("3", pkg("node_modules/a", `"version": "../../x", "integrity": "`+okSRI+`"`)), err: "not a registry version"},
		{name: "null entry", in: lock("3", `"node_modules/a": null`), err: "null entry"},
		{name: "bad alias name", in: lock("3", pkg("node_modules/a", good+`, "name": "../x"`)), err: `name "../x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseLock(strings.NewReader(tc.in), "package-lock.json")
			if tc.err != "" {
				if err == nil {
					t.Fatalf("ParseLock = nil error, want one with %q", tc.err)
				}
				if !errors.Is(err, ErrLock) && !errors.Is(err, ErrIntegrity) {
					t.Errorf("error %v wraps neither ErrLock nor ErrIntegrity", err)
				}
				if !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "package-lock.json: ") {
					t.Errorf("error %q, want the file name and %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLock: %v", err)
			}
			got := sortedKeys(l.Packages)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("packages %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseLockNames(t *testing.T) {
	in := `{"lockfileVersion": 3, "packages": {"": {},
		"node_modules/a": {"version": "1.0.0", "integrity": "` + okSRI + `"},
		"node_modules/@s/b": {"version": "1.0.0", "integrity": "` + okSRI + `"},
		"node_modules/alias": {"name": "@s/real", "version": "2.0.0", "integrity": "` + okSRI + `", "os": "linux", "cpu": ["x64", "arm64"]}}}`
	l, err := ParseLock(strings.NewReader(in), "lock")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"node_modules/a": "a@1.0.0", "node_modules/@s/b": "@s/b@1.0.0", "node_modules/alias": "@s/real@2.0.0"} {
		if got := l.Packages[path].ID(); got != want {
			t.Errorf("%s: ID %s, want %s", path, got, want)
		}
	}
	a := l.Packages["node_modules/alias"]
	if strings.Join(a.OS, ",") != "linux" || strings.Join(a.CPU, ",") != "x64,arm64" {
		t.Errorf("os %v cpu %v: a string and a list should both read", a.OS, a.CPU)
	}
}

func TestParseIntegrity(t *testing.T) {
	sha1 := "sha1-" + "2jmj7l5rSw0yVb/vlWAYkK/YBwk=" // of ""
	sha256 := "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	for _, tc := range []struct {
		in, algo string
		n        int
		err      string
	}{
		{in: okSRI, algo: "sha512", n: 1},
		{in: sha1, algo: "sha1", n: 1},
		{in: sha1 + " " + okSRI, algo: "sha512", n: 1},
		{in: sha256 + "?opt " + sha1, algo: "sha256", n: 1},
		{in: okSRI + " " + okSRI, algo: "sha512", n: 2},
		{in: "md5-1B2M2Y8AsgTpgAmY7PhCfg== " + sha1, algo: "sha1", n: 1},
		{in: "md5-1B2M2Y8AsgTpgAmY7PhCfg==", err: "names no sha512"},
		{in: "", err: "names no sha512"},
		{in: "sha512-not*base64", err: "not 64 bytes"},
		{in: sha256[:20], err: "not 32 bytes"},
	} {
		in, err := ParseIntegrity(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseIntegrity(%q) = %v, want ErrIntegrity with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseIntegrity(%q): %v", tc.in, err)
			continue
		}
		if in.Algo != tc.algo || len(in.Digests) != tc.n {
			t.Errorf("ParseIntegrity(%q) = %s ×%d, want %s ×%d", tc.in, in.Algo, len(in.Digests), tc.algo, tc.n)
		}
	}
	in, _ := ParseIntegrity(sha1)
	h := in.Hash()
	if !in.Matches(h.Sum(nil)) {
		t.Error("the sha1 of nothing does not match its own integrity")
	}
	if err := in.check(in.Hash(), "a@1", "here"); err != nil {
		t.Errorf("check of a matching hash: %v", err)
	}
	h = in.Hash()
	h.Write([]byte("x"))
	err := in.check(h, "a@1.0.0", "file.tgz")
	var me *MismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrIntegrity) {
		t.Fatalf("check of another hash = %v, want a *MismatchError", err)
	}
	for _, want := range []string{"a@1.0.0", "file.tgz", "expects " + sha1, "is sha1-EfatjsUqKYSrqv18O1FlA3hcIHI="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestListOK(t *testing.T) {
	for _, tc := range []struct {
		v    string
		list []string
		want bool
	}{
		{"linux", nil, true},
		{"linux", []string{"any"}, true},
		{"linux", []string{"linux"}, true},
		{"linux", []string{"darwin", "linux"}, true},
		{"linux", []string{"darwin"}, false},
		{"linux", []string{"!win32"}, true},
		{"linux", []string{"!linux"}, false},
		{"linux", []string{"!win32", "darwin"}, false},
		{"x64", []string{"x64", "!arm"}, true},
	} {
		if got := listOK(tc.v, tc.list); got != tc.want {
			t.Errorf("listOK(%s, %v) = %v, want %v", tc.v, tc.list, got, tc.want)
		}
	}
}
