package spec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad parses and validates arbitrary bytes as a spec: no input may
// panic, and every error must be an *Error naming the file. Seeds: the
// golden and example specs (added here) and the cases kept in
// testdata/fuzz/FuzzLoad (found by the fuzzer or written from TestInvalid).
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"testdata/golden.yaml", "../../examples/byzantium.yaml", "../../examples/test.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	file := filepath.Join("testdata", "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, file)
		if (s == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of a spec and an error", s, err)
		}
		if err != nil {
			checkErrors(t, err, file)
			return
		}
		for _, opts := range []Options{{SkipInputChecks: true}, {}} {
			if err := s.Validate(opts); err != nil {
				checkErrors(t, err, file)
			}
		}
	})
}

func checkErrors(t *testing.T, err error, file string) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var se *Error
		if !errors.As(e, &se) {
			t.Fatalf("error %q is a %T, not an *Error", e, e)
		}
		if se.Pos.File != file || se.Err == nil {
			t.Fatalf("error %q: position %v, want it in %s", e, se.Pos, file)
		}
	}
}
