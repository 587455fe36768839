package npm

import (
	"bytes"
	"io"
	"os"
	"path"
	"strings"
	"testing"

	"byzantium/modules/entry"
	"byzantium/modules/npm/npmtest"
)

// FuzzParseLock: any input is parsed or refused, never a panic; what is
// accepted has paths that stay inside node_modules.
func FuzzParseLock(f *testing.F) {
	if b, err := os.ReadFile("../../examples/apps/npm-sample/package-lock.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"lockfileVersion": 1}`))
	f.Add([]byte(`{"lockfileVersion": 3, "packages": {"": {}, "node_modules/@s/a/node_modules/b": {"version": "1", "integrity": "sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "os": "linux"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLock(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		for p, pkg := range l.Packages {
			if entry.Clean(p) != p || !strings.HasPrefix(p, "node_modules/") || strings.Contains("/"+p+"/", "/../") ||
				strings.Contains(p, "/.bin") {
				t.Fatalf("accepted path %q", p)
			}
			if !pkg.InBundle {
				if _, err := ParseIntegrity(pkg.Integrity); err != nil {
					t.Fatalf("accepted %s with integrity %q", p, pkg.Integrity)
				}
			}
		}
	})
}

// FuzzTarWalker: any tarball is read or refused; every file handed out
// has a clean path inside the package and no more bytes than its size.
func FuzzTarWalker(f *testing.F) {
	f.Add(npmtest.Tarball(f, npmtest.File{Name: "package/package.json", Body: "{}"}, npmtest.File{Name: "package/.gitignore", Body: "x"}))
	f.Add(npmtest.Tarball(f, npmtest.File{Name: "package/../x", Body: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := newTarWalker(bytes.NewReader(b), "fuzz", Limits{Bytes: 1 << 20, Files: 1000})
		if err != nil {
			return
		}
		defer w.Close()
		for {
			tf, err := w.Next()
			if err != nil {
				return
			}
			if tf.rel == "." || entry.Clean(tf.rel) != tf.rel || path.IsAbs(tf.rel) || strings.Contains("/"+tf.rel+"/", "/../") {
				t.Fatalf("handed out %q", tf.rel)
			}
			n, _ := io.Copy(io.Discard, io.LimitReader(w, tf.size+1))
			if n > tf.size {
				t.Fatalf("%s: body longer than its size %d", tf.rel, tf.size)
			}
		}
	})
}
