package browser

import (
	"fmt"
	"math"
	"strings"

	"github.com/chromedp/chromedp"
)

// Layout is how the page shown is laid out, measured in the rendered page
// (CSS pixels). It is read through the DevTools protocol: the page itself
// runs no script.
type Layout struct {
	URL string `json:"url"`
	// ScreenWidth is the width of the emulated screen; ScrollWidth is the
	// document's scrollWidth, larger when something reaches past the
	// screen's right edge. (InnerWidth, window.innerWidth, is not the
	// measure: a phone widens its layout viewport to the widest content
	// and zooms the page out to fit.)
	ScreenWidth float64 `json:"-"`
	InnerWidth  float64 `json:"innerWidth"`
	ScrollWidth float64 `json:"scrollWidth"`
	// Height is the height of the page's body: the whole page, not the
	// screen, and not the screen's height when the page is shorter.
	Height float64 `json:"height"`
	// CharWidth is the width of "0" in the body's font, LineHeight the
	// body's line height.
	CharWidth  float64 `json:"charWidth"`
	LineHeight float64 `json:"lineHeight"`
	// TextLines counts the non-empty lines of the page's text (its
	// innerText): one per paragraph, label, value or list item, whatever
	// the width, so it measures the content rather than its layout.
	TextLines int `json:"textLines"`
	// Boxes are the rendered elements that hold text themselves, and the
	// visible text fields and lists (which hold values without text).
	Boxes []Box `json:"boxes"`
}

// Box is one element of a Layout.
type Box struct {
	// Path is a CSS selector for the element ("section:nth-of-type(3) > dl > dd:nth-of-type(1)").
	Path string `json:"path"`
	// Text is the element's own text (not its children's), spaces
	// collapsed, cut at 60 characters; Chars is its length before the cut.
	Text  string `json:"text"`
	Chars int    `json:"chars"`
	// Width is the width of its border box; Right is where that box ends,
	// from the viewport's left edge.
	Width float64 `json:"width"`
	Right float64 `json:"right"`
	// CharWidth is the width of "0" in the element's own font.
	CharWidth float64 `json:"charWidth"`
	// Control is a text field, a select or a text area.
	Control bool `json:"control"`
	// Scrolled is an element inside a box that scrolls or clips sideways
	// (a wide table in its own scroller): it may reach past the viewport.
	Scrolled bool `json:"scrolled"`
}

// layoutJS measures the page. Fonts differ between elements (headings,
// code), so each box's character width is measured in its own font, with a
// canvas that is never added to the page.
const layoutJS = `(() => {
	const doc = document.documentElement;
	const ctx = document.createElement("canvas").getContext("2d");
	const widths = new Map();
	const charWidth = st => {
		const f = st.font || (st.fontSize + " " + st.fontFamily);
		if (!widths.has(f)) { ctx.font = f; widths.set(f, ctx.measureText("0").width); }
		return widths.get(f);
	};
	const path = e => {
		const parts = [];
		for (; e && e.nodeType === 1 && e !== doc && e !== document.body; e = e.parentElement) {
			let s = e.localName;
			if (e.id) { parts.unshift(s + "#" + e.id); break; }
			const p = e.parentElement;
			if (p) {
				const same = [...p.children].filter(c => c.localName === e.localName);
				if (same.length > 1) s += ":nth-of-type(" + (same.indexOf(e) + 1) + ")";
			}
			parts.unshift(s);
		}
		return parts.join(" > ");
	};
	const scrolled = e => {
		for (let p = e.parentElement; p && p !== document.body && p !== doc; p = p.parentElement) {
			const o = getComputedStyle(p).overflowX;
			if (o === "auto" || o === "scroll" || o === "hidden" || o === "clip") return true;
		}
		return false;
	};
	const boxes = [];
	for (const e of document.body.querySelectorAll("*")) {
		const st = getComputedStyle(e);
		if (e.getClientRects().length === 0 || st.visibility === "hidden") continue;
		let text = "";
		for (const n of e.childNodes) if (n.nodeType === 3) text += n.textContent;
		text = text.replace(/\s+/g, " ").trim();
		const control = e.matches("input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, textarea");
		if (!text && !control) continue;
		if (e.closest("select")) continue; // options are drawn by the select
		const r = e.getBoundingClientRect();
		const chars = [...text].length;
		boxes.push({path: path(e), text: [...text].slice(0, 60).join(""), chars, width: r.width, right: r.right,
			charWidth: charWidth(st), control, scrolled: scrolled(e)});
	}
	const bs = getComputedStyle(document.body);
	return {url: location.href, innerWidth: innerWidth, scrollWidth: doc.scrollWidth, height: document.body.getBoundingClientRect().height,
		charWidth: charWidth(bs), lineHeight: parseFloat(bs.lineHeight) || 0,
		textLines: document.body.innerText.split("\n").filter(l => l.trim() !== "").length, boxes};
})()`

// TryLayout measures the page shown.
func (b *Browser) TryLayout() (*Layout, error) {
	l, err := run(b, chromedp.Evaluate[*Layout](layoutJS))
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	if l == nil {
		return nil, fmt.Errorf("layout: the page returned nothing")
	}
	l.ScreenWidth = float64(b.viewport.Width)
	return l, nil
}

// Layout measures the page shown (see Layout).
func (b *Browser) Layout() *Layout {
	b.t.Helper()
	l, err := b.TryLayout()
	if err != nil {
		b.fatal("Layout", err)
	}
	return l
}

// LayoutRules are what a page's layout must hold to.
type LayoutRules struct {
	// MinChars is how narrow a box may get: at least MinChars characters
	// wide, or as wide as its own text when that is shorter. A text
	// field or a select must be MinChars wide. 0 means 8.
	MinChars int
	// MaxHeightPerLine bounds the page's height in proportion to its
	// content: Height / (TextLines + the text fields) at most this many
	// pixels. 0 means no bound.
	MaxHeightPerLine float64
}

// narrowGlyphs is how much narrower than a run of zeros text may be in a
// proportional font (i, l and spaces are narrower than 0): a box is
// cramped only below this share of the width its characters need as zeros.
const narrowGlyphs = 0.6

// Lines is the content measure that the height is held against: the
// page's text lines and its text fields (a field holds a line of its own).
func (l *Layout) Lines() int {
	n := l.TextLines
	for _, b := range l.Boxes {
		if b.Control {
			n++
		}
	}
	return n
}

// HeightPerLine is the page's height divided by its Lines.
func (l *Layout) HeightPerLine() float64 {
	return l.Height / float64(max(l.Lines(), 1))
}

// Check returns what breaks the rules, one sentence each, or nothing:
// content reaching past the right edge of the screen (the page scrolls
// sideways), boxes narrower than a few characters (text wrapping a
// character or two per line), and a page much taller than its content.
func (l *Layout) Check(r LayoutRules) []string {
	minChars := r.MinChars
	if minChars == 0 {
		minChars = 8
	}
	var out []string
	if l.ScrollWidth > l.ScreenWidth {
		var past []string
		for _, b := range l.Boxes {
			if b.Right > l.ScreenWidth+1 && !b.Scrolled {
				past = append(past, fmt.Sprintf("%s (%q) ends at %.0f px", b.Path, b.Text, b.Right))
			}
		}
		if len(past) > 5 {
			past = append(past[:5], fmt.Sprintf("and %d more", len(past)-5))
		}
		out = append(out, fmt.Sprintf("%s: the page is %.0f px wide on a %.0f px screen (it scrolls sideways): %s",
			l.URL, l.ScrollWidth, l.ScreenWidth, strings.Join(past, "; ")))
	}
	for _, b := range l.Boxes {
		need := minChars
		if !b.Control {
			need = min(b.Chars, minChars)
		}
		want := float64(need) * b.CharWidth * narrowGlyphs
		if b.Width+0.5 < want {
			what := fmt.Sprintf("%q", b.Text)
			if b.Control {
				what = "a field"
			}
			out = append(out, fmt.Sprintf("%s: %s (%s) is %.0f px wide, %.1f characters: want at least %d characters (%.0f px)",
				l.URL, b.Path, what, b.Width, b.Width/b.CharWidth, need, math.Ceil(want)))
		}
	}
	if r.MaxHeightPerLine > 0 && l.HeightPerLine() > r.MaxHeightPerLine {
		out = append(out, fmt.Sprintf("%s: the page is %.0f px tall for %d lines of content (%.0f px a line, want at most %.0f)",
			l.URL, l.Height, l.Lines(), l.HeightPerLine(), r.MaxHeightPerLine))
	}
	return out
}

// String sums the layout up for a test log.
func (l *Layout) String() string {
	return fmt.Sprintf("%s at %.0f px: %.0f px tall, %d lines of content (%.0f px a line), %.0f px wide",
		l.URL, l.ScreenWidth, l.Height, l.Lines(), l.HeightPerLine(), l.ScrollWidth)
}
