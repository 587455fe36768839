package npm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultCacheDir is where tarballs are kept unless BYZ_NPM_CACHE says
// otherwise: beside the build cache and the fetched .debs.
const DefaultCacheDir = ".cache/npm"

// Cache is a folder of tarballs named by their integrity
// ("sha512-HEX.tgz"), shared by every application: a tarball is fetched
// once, and a build reads it without the network.
type Cache struct{ Dir string }

// DefaultCache is the cache at BYZ_NPM_CACHE, else DefaultCacheDir.
func DefaultCache() Cache {
	if d := os.Getenv("BYZ_NPM_CACHE"); d != "" {
		return Cache{Dir: d}
	}
	return Cache{Dir: DefaultCacheDir}
}

// Path is where the tarball of a package with this integrity is kept.
func (c Cache) Path(in *Integrity) string { return filepath.Join(c.Dir, in.Key()+".tgz") }

// MaxTarball bounds a downloaded tarball: the largest packages on npm are
// a few hundred megabytes.
const MaxTarball = 1 << 30

// Missing lists the packages of app whose tarball is not in the cache
// (present ones are not checked here: Fetch and Open check them).
func (c Cache) Missing(app *App) []*Package {
	var out []*Package
	for _, p := range app.Install {
		if p.InBundle {
			continue
		}
		in, err := ParseIntegrity(p.Integrity)
		if err != nil {
			out = append(out, p)
			continue
		}
		if _, err := os.Stat(c.Path(in)); err != nil {
			out = append(out, p)
		}
	}
	return out
}

// Fetcher downloads the tarballs an application needs into a Cache.
type Fetcher struct {
	// Registry is where missing tarballs come from (LoadRegistry); it
	// may be nil when every tarball is cached.
	Registry *Registry
	Cache    Cache
	// Client defaults to one trusting Registry.CAFile (or the system's
	// authorities), with connect and header timeouts.
	Client *http.Client
	// Jobs is the number of parallel downloads; default 4.
	Jobs int
	// Logf, when set, reports each download.
	Logf func(format string, args ...any)
	// Attempts per tarball for network errors and 5xx answers; default 3.
	Attempts int
}

// FetchStats counts what Fetch did.
type FetchStats struct {
	Fetched, Cached int
	Bytes           int64 // downloaded
}

// Fetch makes sure every tarball app installs is in the cache and matches
// its integrity. A tarball already there is checked, not fetched again; a
// cached file that does not match is an error (delete it and fetch again:
// Fetch never removes what it did not write). A download that does not
// match is refused, naming the package and both digests, and nothing is
// kept of it. Fetches stop at the first error or when ctx is done.
func (f *Fetcher) Fetch(ctx context.Context, app *App) (FetchStats, error) {
	var st FetchStats
	if err := os.MkdirAll(f.Cache.Dir, 0o755); err != nil {
		return st, fmt.Errorf("npm cache: %w", err)
	}
	client := f.Client
	if client == nil && f.Registry != nil {
		c, err := f.Registry.client()
		if err != nil {
			return st, err
		}
		client = c
	}
	// One job per tarball: two paths may install the same package.
	type job struct {
		pkg *Package
		in  *Integrity
		url string
	}
	var jobs []job
	seen := map[string]bool{}
	for _, p := range app.Install {
		if p.InBundle {
			continue
		}
		in, err := ParseIntegrity(p.Integrity)
		if err != nil {
			return st, fmt.Errorf("%s: %w", p.ID(), err)
		}
		if seen[in.Key()] {
			continue
		}
		seen[in.Key()] = true
		// Every URL is checked before the first request.
		u := ""
		if f.Registry != nil {
			if u, err = f.Registry.TarballURL(p); err != nil {
				return st, err
			}
		}
		jobs = append(jobs, job{p, in, u})
	}
	n := f.Jobs
	if n <= 0 {
		n = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan job)
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				fetched, size, err := f.one(ctx, client, j.pkg, j.in, j.url)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
					cancel()
				} else if fetched {
					st.Fetched++
					st.Bytes += size
				} else {
					st.Cached++
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		// The first real error, not the cancellations it caused.
		sort.SliceStable(errs, func(i, k int) bool {
			return !errors.Is(errs[i], context.Canceled) && errors.Is(errs[k], context.Canceled)
		})
		return st, errs[0]
	}
	return st, ctx.Err()
}

// one fetches a tarball unless the cache has it, and reports whether it
// downloaded.
func (f *Fetcher) one(ctx context.Context, client *http.Client, p *Package, in *Integrity, u string) (bool, int64, error) {
	dst := f.Cache.Path(in)
	if err := verifyFile(dst, in, p); err == nil {
		return false, 0, nil
	} else if !errors.Is(err, ErrNotCached) {
		return false, 0, fmt.Errorf("%w: delete it and fetch again", err)
	}
	if f.Registry == nil {
		return false, 0, fmt.Errorf("%w: %s is not in %s and no registry was given", ErrRegistry, p.ID(), f.Cache.Dir)
	}
	attempts := f.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var err error
	for a := 0; a < attempts; a++ {
		if a > 0 {
			select {
			case <-time.After(time.Duration(a*a) * time.Second):
			case <-ctx.Done():
				return false, 0, ctx.Err()
			}
		}
		var size int64
		var retry bool
		size, retry, err = f.download(ctx, client, p, in, u, dst)
		if err == nil {
			if f.Logf != nil {
				f.Logf("fetched %s (%d bytes)", p.ID(), size)
			}
			return true, size, nil
		}
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return false, 0, err
}

// download writes the tarball at u to a temporary file beside dst,
// hashing it on the way, and renames it to dst only if it matches.
func (f *Fetcher) download(ctx context.Context, client *http.Client, p *Package, in *Integrity, u, dst string) (int64, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Accept", "application/octet-stream")
	req.Header.Set("User-Agent", "byz (npm tarball fetch)")
	resp, err := client.Do(req)
	if err != nil {
		return 0, true, fmt.Errorf("%s: %s: %w", p.ID(), u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		retry := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
		hint := ""
		if resp.StatusCode == http.StatusNotFound {
			hint = ": is the registry the one the lock was made with?"
		}
		return 0, retry, fmt.Errorf("%s: %s: %s%s", p.ID(), u, resp.Status, hint)
	}
	if resp.ContentLength > MaxTarball {
		return 0, false, fmt.Errorf("%s: %s: %w: %d bytes, over the %d MiB limit", p.ID(), u, ErrUnsafe, resp.ContentLength, MaxTarball>>20)
	}
	tmp, err := os.CreateTemp(f.Cache.Dir, ".fetch-*.tgz")
	if err != nil {
		return 0, false, fmt.Errorf("npm cache: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := in.Hash()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, MaxTarball+1))
	if err != nil {
		return 0, true, fmt.Errorf("%s: %s: %w", p.ID(), u, err)
	}
	if n > MaxTarball {
		return 0, false, fmt.Errorf("%s: %s: %w: over the %d MiB limit", p.ID(), u, ErrUnsafe, MaxTarball>>20)
	}
	if err := in.check(h, p.ID(), u); err != nil {
		return 0, false, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return 0, false, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, false, fmt.Errorf("npm cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, false, fmt.Errorf("npm cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, false, fmt.Errorf("npm cache: %w", err)
	}
	ok = true
	return n, false, nil
}

// verifyFile checks a cached tarball against its integrity. A missing
// file is ErrNotCached.
func verifyFile(name string, in *Integrity, p *Package) error {
	file, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s (%s)", ErrNotCached, p.ID(), name)
	}
	if err != nil {
		return err
	}
	defer file.Close()
	h := in.Hash()
	if _, err := io.Copy(h, file); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return in.check(h, p.ID(), name)
}

// TarballURL is where p's tarball is: the lock's resolved URL when it is
// on p's configured registry, else REGISTRY/NAME/-/BASENAME-VERSION.tgz,
// the path every npm registry serves. A resolved URL on any other host is
// refused: a lock must not send fetches to hosts the user did not choose.
func (r *Registry) TarballURL(p *Package) (string, error) {
	reg := r.For(p.Name)
	if p.Resolved != "" {
		u, err := url.Parse(p.Resolved)
		if err != nil {
			return "", fmt.Errorf("%w: %s (%s): resolved %q: %v", ErrRegistry, p.ID(), p.Path, p.Resolved, err)
		}
		if u.Scheme != reg.Scheme || u.Host != reg.Host || !strings.HasPrefix(u.Path, reg.Path) || u.User != nil {
			return "", fmt.Errorf("%w: %s (%s): the lock's resolved URL is not on the configured registry (%s, from %s); "+
				"refusing to fetch from another host: relock without resolved URLs (make npm-relock) or configure that registry",
				ErrRegistry, p.ID(), p.Path, redact(reg), r.From)
		}
		return u.String(), nil
	}
	base := p.Name
	if _, b, ok := strings.Cut(p.Name, "/"); ok {
		base = b
	}
	rel := &url.URL{Path: p.Name + "/-/" + base + "-" + p.Version + ".tgz"}
	return reg.ResolveReference(rel).String(), nil
}

// redact prints a registry for messages: scheme, host and path only.
func redact(u *url.URL) string { return u.Scheme + "://" + u.Host + u.Path }

// client makes the HTTP client: npm's cafile as the only authorities when
// set, bounded connect and header waits, and no transparent decompression
// (the integrity is of the bytes served).
func (r *Registry) client() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 30 * time.Second
	tr.ResponseHeaderTimeout = 60 * time.Second
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			return nil, fmt.Errorf("npm cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("npm cafile %s: no PEM certificates in it", r.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// A whole tarball may take a while on a slow link; a stalled one is
	// cut by the header timeout or, mid-body, by the context.
	return &http.Client{Transport: tr, Timeout: 30 * time.Minute}, nil
}
