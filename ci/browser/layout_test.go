package browser

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// layoutPages are small pages with the faults Layout.Check finds, and
// their fixed versions.
var layoutPages = map[string]struct{ style, body string }{
	// The panel's System card as it was: a label column as wide as its
	// longest label, and values that may break anywhere squeezed to a
	// character per line.
	"/cramped": {`dl { display: grid; grid-template-columns: minmax(7rem, max-content) 1fr; }
dd { margin: 0; overflow-wrap: anywhere; }`, systemCard},
	"/stacked": {`dd { margin: 0; overflow-wrap: anywhere; }`, systemCard},
	// Something wider than a phone, in the page or in its own scroller.
	"/wide":     {`.w { width: 600px; }`, `<p>Fits.</p><div class="w">A box as wide as a laptop screen.</div>`},
	"/scroller": {`.s { overflow-x: auto; } .w { width: 600px; }`, `<p>Fits.</p><div class="s"><div class="w">A wide table scrolls in its box.</div></div>`},
	// A text field a few pixels wide.
	"/field": {`input { width: 20px; }`, `<label for="n">Name</label><input id="n" name="n">`},
}

const systemCard = `<h1>Status</h1><dl>
<dt>Node identity</dt><dd><code>9f86d081884c7d65</code></dd>
<dt>TLS certificate fingerprint (SHA-256)</dt><dd><code>4D:43:9A:1F:0C:77:E2:5B:A8:31:6F:D0:42:9E:BB:13:C5:08:7A:E4:61:2D:F9:30:5C:8B:17:A2:EE:46:D3:90</code></dd>
<dt>Up for</dt><dd>0d 01h 22m</dd>
<dt>Load (1, 5, 15 min)</dt><dd>5.16 · 7.42 · 10.05</dd>
<dt>Memory</dt><dd>22.1 GiB free of 23.5 GiB</dd>
</dl>`

func serveLayoutPages(w http.ResponseWriter, r *http.Request) {
	p, ok := layoutPages[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { margin: 1rem; font: 16px/1.45 sans-serif; } %s</style></head><body>%s</body></html>`, p.style, p.body)
}

// TestLayoutCheck has Layout.Check judge pages at phone width: each fault
// is found and named, and the fixed pages pass.
func TestLayoutCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(serveLayoutPages))
	defer srv.Close()
	b := New(t, Options{Viewport: Phone})
	rules := LayoutRules{MinChars: 8, MaxHeightPerLine: 70}
	for _, c := range []struct {
		path string
		want []string // a substring of each problem, in order; none for a page that passes
	}{
		{"/cramped", []string{`dd:nth-of-type(1) > code ("9f86d081884c7d65") is`, `dd:nth-of-type(2) > code`, `dd:nth-of-type(3) ("0d 01h 22m")`,
			`dd:nth-of-type(4)`, `dd:nth-of-type(5)`, "px tall for 11 lines of content"}},
		{"/stacked", nil},
		{"/wide", []string{`the page is 616 px wide on a 360 px screen (it scrolls sideways): div ("A box as wide as a laptop screen.") ends at 616 px`}},
		{"/scroller", nil},
		{"/field", []string{`input#n (a field) is`}},
	} {
		t.Run(strings.TrimPrefix(c.path, "/"), func(t *testing.T) {
			b.Navigate(srv.URL + c.path)
			l := b.Layout()
			t.Log(l)
			got := l.Check(rules)
			if len(got) != len(c.want) {
				t.Fatalf("%d problems, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.Contains(got[i], c.want[i]) {
					t.Errorf("problem %d: %s\nwant it to say %q", i, got[i], c.want[i])
				}
			}
		})
	}
}
