package npm

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byzantium/modules/npm/npmtest"
)

func loopbackRegistry(t *testing.T, srv *npmtest.Registry) *Registry {
	t.Helper()
	u, err := registryURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &Registry{URL: u, Scopes: map[string]*url.URL{}, From: "test"}
}

// cacheFiles lists the cache folder: what a fetch left there.
func cacheFiles(t *testing.T, c Cache) []string {
	t.Helper()
	es, err := os.ReadDir(c.Dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestFetch: every tarball is fetched once, checked, and then laid out
// without the network; a second fetch asks the registry nothing.
func TestFetch(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: filepath.Join(t.TempDir(), "npm")}
	pkgs := npmtest.Sample(t, dir)
	srv := npmtest.NewRegistry(t, pkgs...)
	app, err := LoadApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fetcher{Registry: loopbackRegistry(t, srv), Cache: c}
	st, err := f.Fetch(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != 4 || st.Cached != 0 || srv.Count() != 4 {
		t.Errorf("first fetch: %+v, %d requests; want 4 fetched (devonly is dev)", st, srv.Count())
	}
	if n := len(cacheFiles(t, c)); n != 4 {
		t.Errorf("%d files in the cache, want 4", n)
	}
	st, err = f.Fetch(context.Background(), app)
	if err != nil || st.Fetched != 0 || st.Cached != 4 || srv.Count() != 4 {
		t.Errorf("second fetch: %+v, %v, %d requests; want all 4 cached and no request", st, err, srv.Count())
	}
	srv.Close()
	if _, err := lay(t, dir, c, Options{}); err != nil {
		t.Errorf("layout from the cache with the registry gone: %v", err)
	}
}

// TestFetchRefusesTampered: a registry serving other bytes than the lock
// pins (a tampered tarball, or a lock whose integrity is wrong) gets an
// error naming the package, its version, both digests, and nothing is
// kept.
func TestFetchRefusesTampered(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	srv := npmtest.NewRegistry(t, pkgs...)
	evil := bytes.Clone(pkgs[2].Tarball)
	evil[len(evil)-5] ^= 1
	srv.Put("dep", "1.0.0", evil)
	app, err := LoadApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Fetcher{Registry: loopbackRegistry(t, srv), Cache: c, Jobs: 1}).Fetch(context.Background(), app)
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("Fetch = %v, want a *MismatchError", err)
	}
	for _, want := range []string{"dep@1.0.0", srv.URL + "/dep/-/dep-1.0.0.tgz", "expects " + npmtest.SRI(pkgs[2].Tarball), "is " + npmtest.SRI(evil)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	in, _ := ParseIntegrity(npmtest.SRI(pkgs[2].Tarball))
	for _, n := range cacheFiles(t, c) {
		if strings.HasPrefix(n, ".fetch-") || n == filepath.Base(c.Path(in)) {
			t.Errorf("%s left in the cache", n)
		}
	}
}

// TestFetchCachedMismatch: a cached file that does not match its name is
// an error saying to delete it; Fetch never removes it itself.
func TestFetchCachedMismatch(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	srv := npmtest.NewRegistry(t, pkgs...)
	fill(t, c, pkgs...)
	in, _ := ParseIntegrity(npmtest.SRI(pkgs[0].Tarball))
	os.WriteFile(c.Path(in), []byte("corrupt"), 0o644)
	app, _ := LoadApp(dir)
	_, err := (&Fetcher{Registry: loopbackRegistry(t, srv), Cache: c}).Fetch(context.Background(), app)
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "greet@1.0.0") || !strings.Contains(err.Error(), "delete it and fetch again") {
		t.Fatalf("Fetch = %v", err)
	}
	if b, _ := os.ReadFile(c.Path(in)); string(b) != "corrupt" {
		t.Error("Fetch replaced a file it did not write")
	}
}

func TestFetchRetriesAndFails(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	srv := npmtest.NewRegistry(t, pkgs...)
	app, _ := LoadApp(dir)
	f := &Fetcher{Registry: loopbackRegistry(t, srv), Cache: c}

	// A 503 then a 200: fetched.
	srv.FailNext("dep", "1.0.0", http.StatusServiceUnavailable)
	if _, err := f.Fetch(context.Background(), app); err != nil {
		t.Fatalf("after one 503: %v", err)
	}

	// A 404 is not retried and says what may be wrong.
	c2 := Cache{Dir: t.TempDir()}
	srv2 := npmtest.NewRegistry(t, pkgs[1:]...)
	before := srv2.Count()
	_, err := (&Fetcher{Registry: loopbackRegistry(t, srv2), Cache: c2, Jobs: 1}).Fetch(context.Background(), app)
	if err == nil || !strings.Contains(err.Error(), "greet@1.0.0") || !strings.Contains(err.Error(), "404 Not Found: is the registry the one") {
		t.Fatalf("Fetch of a missing tarball = %v", err)
	}
	if n := srv2.Count() - before; n > 4 {
		t.Errorf("%d requests: the 404 was retried or the others went on", n)
	}
	for _, n := range cacheFiles(t, c2) {
		if strings.HasPrefix(n, ".fetch-") {
			t.Errorf("%s left in the cache", n)
		}
	}
}

// TestFetchRefusesForeignResolved: a lock whose resolved URL points off
// the configured registry fetches nothing at all.
func TestFetchRefusesForeignResolved(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	srv := npmtest.NewRegistry(t, pkgs...)
	other := npmtest.NewRegistry(t, pkgs...)
	pkgs[1].Lock = map[string]any{"resolved": other.URL + "/dep/-/dep-2.0.0.tgz"}
	npmtest.App(t, dir, "app", map[string]string{"greet": "1.0.0", "dep": "1.0.0", "@s/tool": "1.0.0"}, nil, pkgs...)
	app, err := LoadApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Fetcher{Registry: loopbackRegistry(t, srv), Cache: c}).Fetch(context.Background(), app)
	if !errors.Is(err, ErrRegistry) || !strings.Contains(err.Error(), "dep@2.0.0") {
		t.Fatalf("Fetch = %v, want ErrRegistry for dep@2.0.0", err)
	}
	if srv.Count()+other.Count() != 0 {
		t.Errorf("%d requests made before refusing", srv.Count()+other.Count())
	}
	// On the configured registry, the resolved URL is used as it is.
	pkgs[1].Lock = map[string]any{"resolved": srv.URL + "/elsewhere/dep-2.0.0.tgz"}
	srv.Put("elsewhere", "x", nil)
	npmtest.App(t, dir, "app", map[string]string{"greet": "1.0.0", "dep": "1.0.0", "@s/tool": "1.0.0"}, nil, pkgs...)
	app, _ = LoadApp(dir)
	_, err = (&Fetcher{Registry: loopbackRegistry(t, srv), Cache: c, Jobs: 1}).Fetch(context.Background(), app)
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/elsewhere/dep-2.0.0.tgz: 404") {
		t.Errorf("Fetch with a resolved URL on the registry = %v, want it fetched from there", err)
	}
}

func TestFetchCancelled(t *testing.T) {
	dir, c := t.TempDir(), Cache{Dir: t.TempDir()}
	pkgs := npmtest.Sample(t, dir)
	srv := npmtest.NewRegistry(t, pkgs...)
	app, _ := LoadApp(dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Fetcher{Registry: loopbackRegistry(t, srv), Cache: c}).Fetch(ctx, app)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch = %v, want context.Canceled", err)
	}
	for _, n := range cacheFiles(t, c) {
		t.Errorf("%s left in the cache by a cancelled fetch", n)
	}
}
