package webfront

import (
	"errors"
	"net/url"
	"strings"
)

// errEscape refuses a path that could leave the app's prefix, or that
// an app might read differently from the front.
var errEscape = errors.New("the path leaves the app's folder or is not a plain path")

// appPath checks the request path of a route at prefix ("/wiki/", or
// "/" for a host route) and returns the path within the app, with its
// leading slash, decoded and as the client escaped it.
//
// Refused: "." and ".." segments, plain or percent-encoded, once or
// twice (a backend may decode again); empty segments ("//"); encoded
// slashes and backslashes (the front and the app would split the path
// differently); backslashes, NUL and other control characters.
// Percent signs themselves are allowed ("/p/50%25" names a pad "50%").
func appPath(u *url.URL, prefix string) (rel, relRaw string, err error) {
	dec, raw := u.Path, u.EscapedPath()
	if !strings.HasPrefix(raw, prefix) || !strings.HasPrefix(dec, prefix) {
		return "", "", errEscape
	}
	lraw := strings.ToLower(raw)
	if strings.Contains(lraw, "%2f") || strings.Contains(lraw, "%5c") || strings.Contains(lraw, "%00") {
		return "", "", errEscape
	}
	for i := 0; i < len(dec); i++ {
		if c := dec[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", "", errEscape
		}
	}
	segs := strings.Split(dec, "/")
	for i, s := range segs {
		if s == "" {
			if i == 0 || i == len(segs)-1 {
				continue
			}
			return "", "", errEscape
		}
		if dotty(s) {
			return "", "", errEscape
		}
		// Decoded once more, as a backend that decodes twice would see it.
		if again, err := url.PathUnescape(s); err == nil && again != s {
			if dotty(again) || strings.ContainsAny(again, "/\\") {
				return "", "", errEscape
			}
		}
	}
	return dec[len(prefix)-1:], raw[len(prefix)-1:], nil
}

func dotty(s string) bool { return s == "." || s == ".." }
