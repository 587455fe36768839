// Package browser lets tests drive Debian's headless Chromium over the
// DevTools protocol, for server-rendered pages that work without JavaScript:
// navigate, fill fields, click buttons that submit forms, read text, switch
// the browser's language and emulate a phone, and keep full-page screenshots
// as test artifacts.
//
// The browser reaches loopback addresses only: every other request goes to a
// local sink that refuses it and records it (see [Browser.Blocked]). It
// trusts no self-signed certificate except those whose public keys a test
// pins with [Options.SPKIHashes]; it never ignores certificate errors
// wholesale.
//
// Chromium comes from Debian's chromium package (ci/packages.txt). A test
// that calls [New] skips without it, or fails under CI (see ci/testenv).
package browser

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"byzantium/ci/testenv"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// Viewport is the size of the emulated screen in CSS pixels.
type Viewport struct {
	Width, Height int
	// Scale is the device scale factor: a screenshot is Width×Scale
	// pixels wide. 0 means 1.
	Scale float64
	// Mobile emulates a phone: the page's viewport meta tag applies,
	// scrollbars overlay and touch events are on.
	Mobile bool
}

// Phone is a small phone held upright; Desktop is a laptop screen.
var (
	Phone   = Viewport{Width: 360, Height: 740, Scale: 2, Mobile: true}
	Desktop = Viewport{Width: 1280, Height: 800, Scale: 1}
)

// Options configure a browser. The zero value is a desktop browser that
// trusts no self-signed certificate and keeps Chromium's language (en-US).
type Options struct {
	// Viewport is the emulated screen; the zero value means Desktop.
	Viewport Viewport
	// SPKIHashes are the base64 SHA-256 hashes of the SubjectPublicKeyInfo
	// of certificates to accept though no CA signed them (see SPKIHash).
	// Chromium still refuses every other certificate error.
	SPKIHashes []string
	// Language is the browser's language list (see SetLanguage).
	Language string
	// ArtifactDir receives the screenshots; "" means ArtifactDir(t).
	ArtifactDir string
	// Timeout bounds each action (a navigation, a click, a read); 0 means
	// 30 seconds. Starting Chromium has its own bound of a minute.
	Timeout time.Duration
	// Path is the Chromium executable; "" means Find().
	Path string
	// Hosts are names that resolve to 127.0.0.1, as a node's DNS would
	// resolve its apps' names to the node (the tests' nodes are reached
	// through ports forwarded to the host's loopback). Every other name
	// still resolves to nothing.
	Hosts []string
}

// ErrNotFound means Debian's Chromium is not installed.
var ErrNotFound = errors.New("browser: chromium not found (Debian package chromium)")

// Find returns the Chromium executable. It prefers the binary of Debian's
// package to its launcher /usr/bin/chromium, a shell script that sources
// /etc/chromium.d: that enables remote extensions, loads the extensions of
// /usr/share/chromium/extensions and exports API keys, none of which a test
// wants.
func Find() (string, error) {
	const debianBinary = "/usr/lib/chromium/chromium"
	if fi, err := os.Stat(debianBinary); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return debianBinary, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// SPKIHash returns the pin of cert for Options.SPKIHashes: the base64
// SHA-256 of its SubjectPublicKeyInfo (RFC 7469's pin-sha256).
func SPKIHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Browser is one headless Chromium with one tab. Its methods fail the test
// on error; the Try* variants return the error instead. A Browser is not
// safe for concurrent use.
type Browser struct {
	t        testing.TB
	ctx      context.Context
	timeout  time.Duration
	dir      string
	viewport Viewport
	sink     *sink
	output   *tailBuffer

	// Started is how long Chromium took to start and open its tab.
	Started time.Duration
}

// New starts Chromium for the test t, or skips the test (fails it under CI)
// when Chromium is missing. Chromium stops in the test's cleanup; if the test
// failed, it first keeps a screenshot named "failure" and logs the end of
// Chromium's output. (New takes no context: t.Context ends before cleanups
// run, too early for that screenshot.)
func New(t testing.TB, opts Options) *Browser {
	t.Helper()
	path := opts.Path
	if path == "" {
		var err error
		if path, err = Find(); err != nil {
			testenv.Unavailable(t, err.Error()+": run ci/install-deps (packages in ci/packages.txt)")
		}
	}
	b := &Browser{
		t:        t,
		timeout:  opts.Timeout,
		viewport: opts.Viewport,
		dir:      opts.ArtifactDir,
		output:   &tailBuffer{max: 64 << 10},
	}
	if b.timeout == 0 {
		b.timeout = 30 * time.Second
	}
	if b.viewport == (Viewport{}) {
		b.viewport = Desktop
	}
	if b.dir == "" {
		b.dir = ArtifactDir(t)
	}
	var err error
	if b.sink, err = startSink(); err != nil {
		t.Fatalf("browser: %v", err)
	}
	t.Cleanup(b.sink.close)

	// Chromium writes its NSS database under $HOME/.pki whatever the
	// profile directory, and leaves a folder for its singleton socket in
	// $TMPDIR: give it a home and a temporary folder of its own.
	home, err := os.MkdirTemp("", "byz-browser-home")
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })

	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Env("HOME="+home, "TMPDIR="+home),
		chromedp.CombinedOutput(b.output),
		chromedp.WindowSize(b.viewport.Width, b.viewport.Height),
		// Loopback only. Requests go through a proxy, the sink, but for
		// loopback addresses and localhost (Chromium's implicit bypass
		// would also let link-local addresses through). No name but
		// localhost resolves, nor any IP literal outside 127/8 and ::1,
		// so nothing asks a DNS server or connects on its own either.
		chromedp.ProxyServer("http://"+b.sink.addr()),
		chromedp.Flag("proxy-bypass-list", strings.Join(append([]string{"<-loopback>", "localhost", "127.0.0.1/8", "[::1]"}, opts.Hosts...), ";")),
		chromedp.Flag("host-resolver-rules", hostRules(opts.Hosts)),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-gpu", true),
		// Fewer background requests for the sink to refuse.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,AutofillServerCommunication,NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,CertificateTransparencyComponentUpdater"),
		chromedp.Flag("disable-field-trial-config", true),
		chromedp.Flag("no-service-autorun", true),
		chromedp.Flag("disable-component-extensions-with-background-pages", true),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox (CI runs as
		// root). chromedp adds this for root too; say it here.
		allocOpts = append(allocOpts, chromedp.NoSandbox)
	}
	if len(opts.SPKIHashes) > 0 {
		// Honoured only with a --user-data-dir, which chromedp always
		// passes (a temporary profile it removes afterwards).
		allocOpts = append(allocOpts, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(opts.SPKIHashes, ",")))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	t.Cleanup(cancelAlloc) // runs after cancelTab: waits for Chromium to exit
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	b.ctx = tabCtx
	t.Cleanup(func() {
		if t.Failed() {
			b.keepFailure()
		}
		cancelTab()
	})

	start := time.Now()
	stop := time.AfterFunc(time.Minute, cancelTab)
	err = chromedp.Do(tabCtx) // starts Chromium and opens the tab
	stop.Stop()
	if err != nil {
		t.Fatalf("browser: starting %s: %v\n%s", path, err, b.output)
	}
	b.Started = time.Since(start)
	if err := b.TrySetViewport(b.viewport); err != nil {
		t.Fatalf("browser: %v", err)
	}
	if opts.Language != "" {
		b.SetLanguage(opts.Language)
	}
	return b
}

// hostRules maps hosts to 127.0.0.1 and every other name but localhost
// to nothing (Chromium takes the first rule that matches).
func hostRules(hosts []string) string {
	var rules []string
	for _, h := range hosts {
		rules = append(rules, "MAP "+h+" 127.0.0.1")
	}
	return strings.Join(append(rules, "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.* , EXCLUDE ::1"), " , ")
}

// do runs actions under the per-action timeout.
func (b *Browser) do(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

func run[T any](b *Browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

func (b *Browser) fatal(op string, err error) {
	b.t.Helper()
	b.t.Fatalf("browser: %s: %v", op, err)
}

// TryNavigate loads url and waits for the page to load. It returns the HTTP
// status of the page, or an error when the page did not load (a refused
// certificate, a blocked host, a refused connection).
func (b *Browser) TryNavigate(url string) (int, error) {
	if err := b.do(chromedp.Navigate(url)); err != nil {
		return 0, fmt.Errorf("navigate %s: %w", url, err)
	}
	return b.status()
}

// Navigate loads url, waits for the page to load and returns its HTTP status.
func (b *Browser) Navigate(url string) int {
	b.t.Helper()
	status, err := b.TryNavigate(url)
	if err != nil {
		b.fatal("Navigate", err)
	}
	return status
}

// SetField sets the value of the form field (input, textarea or select) that
// the CSS selector matches, waiting for it to appear.
func (b *Browser) SetField(selector, value string) {
	b.t.Helper()
	took, err := query[bool](b, selector, `(e, v) => { e.value = v; return e.value === v }`, value)
	switch {
	case err != nil:
		b.fatal("SetField", err)
	case !took:
		b.t.Fatalf("browser: SetField %q: the field refused %q (a select without that option?)", selector, value)
	}
}

// SetChecked ticks (or clears) the checkbox or radio button that the CSS
// selector matches, waiting for it to appear.
func (b *Browser) SetChecked(selector string, on bool) {
	b.t.Helper()
	if _, err := query[bool](b, selector, `(e, on) => { e.checked = on; return true }`, on); err != nil {
		b.fatal("SetChecked", err)
	}
}

// TryClick clicks the element that the CSS selector matches, as a mouse
// would at its centre once it is visible, and waits for the page that the
// click loads: clicking a submit button sends its form with the button's
// name and value, as it does for a person. It returns the HTTP status of the
// new page (after redirects), and fails when the click loads no page within
// the timeout.
func (b *Browser) TryClick(selector string) (int, error) {
	type point struct {
		X float64 `json:"x"`
		Y float64 `json:"y"`
	}
	p, err := query[*point](b, selector, `e => {
		e.scrollIntoView({block: "center", inline: "center"});
		const r = e.getBoundingClientRect();
		return r.width > 0 && r.height > 0 ? {x: r.left + r.width / 2, y: r.top + r.height / 2} : null;
	}`)
	if err != nil {
		return 0, fmt.Errorf("click: %w", err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.MouseClickXY(p.X, p.Y)); err != nil {
		return 0, fmt.Errorf("click %q: %w", selector, err)
	}
	return b.status()
}

// Click clicks the element that the CSS selector matches and waits for the
// page it loads (see TryClick); it returns the new page's HTTP status.
func (b *Browser) Click(selector string) int {
	b.t.Helper()
	status, err := b.TryClick(selector)
	if err != nil {
		b.fatal("Click", err)
	}
	return status
}

// Text returns the rendered text of the element that the CSS selector
// matches (its innerText), waiting for it to appear.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	s, err := query[string](b, selector, `e => e.innerText`)
	if err != nil {
		b.fatal("Text", err)
	}
	return s
}

// query waits until the CSS selector matches an element and fn, a JavaScript
// function of the element and args, returns something other than null for
// it; it returns that value. It works in the page's current document through
// Runtime.evaluate and uses no DOM node ids: chromedp's copy of the DOM can
// lag just behind a navigation, and a query through it then fails now and
// then with "No node with given id found".
func query[T any](b *Browser, selector, fn string, args ...any) (T, error) {
	var zero T
	js, err := json.Marshal(append([]any{selector}, args...))
	if err != nil {
		return zero, err
	}
	expr := `((sel, ...args) => {
		const e = document.querySelector(sel);
		if (!e) return null;
		const v = (` + fn + `)(e, ...args);
		return v === null || v === undefined ? null : {v};
	})(...` + string(js) + `)`
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	for {
		r, err := chromedp.Run(ctx, chromedp.Evaluate[*struct {
			V T `json:"v"`
		}](expr))
		var exc *chromedp.ExceptionError
		switch {
		case errors.As(err, &exc):
			return zero, fmt.Errorf("%q: %w", selector, err) // a bad selector, say
		case err == nil && r != nil:
			return r.V, nil
		}
		// Not there (yet), or the page is between two documents.
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("no such element, or not visible")
			}
			return zero, fmt.Errorf("%q: %w (after %v)", selector, err, b.timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Type sends text as key presses to whatever has the focus (focus it
// first, with Eval or a click), as a person types: each character is a
// key down, a character and a key up, which editors that listen to keys
// (a pad's, a chat's input) see as typing. "\r" is Enter.
func (b *Browser) Type(text string) {
	b.t.Helper()
	if err := b.do(chromedp.KeyEvent(text)); err != nil {
		b.fatal("Type", err)
	}
}

// Eval runs a JavaScript expression in the page and returns its value,
// decoded as JSON into T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := run(b, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fatal("Eval", err)
	}
	return v
}

// WaitFor evaluates a JavaScript expression until it is true, or fails
// the test after d.
func (b *Browser) WaitFor(what, expr string, d time.Duration) {
	b.t.Helper()
	end := time.Now().Add(d)
	for {
		ok, err := run(b, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(end) {
			b.t.Fatalf("browser: waiting %v for %s (%s): last error %v", d, what, expr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// URL returns the address of the page the tab shows.
func (b *Browser) URL() string {
	b.t.Helper()
	s, err := run(b, chromedp.Location())
	if err != nil {
		b.fatal("URL", err)
	}
	return s
}

// SetLanguage sets the browser's languages, most preferred first and without
// q-values, e.g. "de-DE,de,en": Chromium sends them as Accept-Language with
// its own q-values ("de-DE,de;q=0.9,en;q=0.8") and shows them as
// navigator.languages. It applies to later requests, and keeps the user agent.
func (b *Browser) SetLanguage(acceptLanguage string) {
	b.t.Helper()
	err := b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		v, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
		if err != nil {
			return err
		}
		_, err = chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
			UserAgent:      v.UserAgent,
			AcceptLanguage: acceptLanguage,
		})
		return err
	}))
	if err != nil {
		b.fatal("SetLanguage", err)
	}
}

// TrySetViewport emulates the screen v. It applies to the page shown at once;
// a page laid out for another width reflows.
func (b *Browser) TrySetViewport(v Viewport) error {
	scale := v.Scale
	if scale == 0 {
		scale = 1
	}
	err := b.do(chromedp.EmulateViewport(int64(v.Width), int64(v.Height), func(m *emulation.SetDeviceMetricsOverrideParams, touch *emulation.SetTouchEmulationEnabledParams) {
		m.DeviceScaleFactor = scale
		m.Mobile = v.Mobile
		touch.Enabled = v.Mobile
	}))
	if err != nil {
		return fmt.Errorf("set viewport %dx%d: %w", v.Width, v.Height, err)
	}
	b.viewport = v
	return nil
}

// SetViewport emulates the screen v (see TrySetViewport).
func (b *Browser) SetViewport(v Viewport) {
	b.t.Helper()
	if err := b.TrySetViewport(v); err != nil {
		b.fatal("SetViewport", err)
	}
}

// Screenshot writes a PNG of the whole page (beyond the visible part) to
// name.png in the artifact directory, logs its path and returns it.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	path, err := b.screenshot(name)
	if err != nil {
		b.fatal("Screenshot", err)
	}
	b.t.Logf("browser: screenshot %s", path)
	return path
}

func (b *Browser) screenshot(name string) (string, error) {
	png, err := run(b, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, safeName(name)+".png")
	return path, os.WriteFile(path, png, 0o644)
}

// Blocked returns the requests the browser tried to send beyond loopback,
// each as its request line ("CONNECT host:443 HTTP/1.1"), in order. They
// include Chromium's own background requests (component updates, sign-in,
// connectivity checks), which no flag fully stops.
func (b *Browser) Blocked() []string { return b.sink.requests() }

// keepFailure keeps what shows why a test failed: a screenshot of the page
// and the end of Chromium's output.
func (b *Browser) keepFailure() {
	if path, err := b.screenshot("failure"); err == nil {
		b.t.Logf("browser: page at failure: %s", path)
	}
	if out := b.output.String(); out != "" {
		b.t.Logf("browser: end of chromium's output:\n%s", out)
	}
}

// status returns the HTTP status of the page shown, as the page's
// navigation timing has it (0 for an error page). chromedp's
// NavigateResponse now and then misses the response of the page after an
// error page, so it is not used.
func (b *Browser) status() (int, error) {
	n, err := run(b, chromedp.Evaluate[int](`performance.getEntriesByType("navigation")[0]?.responseStatus ?? 0`))
	if err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	return n, nil
}

// safeName turns a screenshot name into a file name: letters, digits, '-',
// '_' and '.' stay, anything else becomes '_'.
func safeName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
