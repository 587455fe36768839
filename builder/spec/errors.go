package spec

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Pos is a position in a spec file. Line and Col count from 1; 0 means
// unknown (the YAML library reports some syntax errors by line only).
type Pos struct {
	File      string
	Line, Col int
}

// String formats p as FILE:LINE:COL, the form editors and terminals jump to,
// leaving out what is unknown.
func (p Pos) String() string {
	s := p.File
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
		if p.Col > 0 {
			s += ":" + strconv.Itoa(p.Col)
		}
	}
	return s
}

// Error is one problem in a spec, at a position in its file.
type Error struct {
	Pos  Pos
	Path string // the key path of the value, e.g. "base[0].block-size"; may be empty
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// joinSorted joins errors in file order, so a long list reads top to bottom
// beside the file; errors at one position keep the order they were found.
func joinSorted(errs []error) error {
	slices.SortStableFunc(errs, func(a, b error) int {
		var ea, eb *Error
		if !errors.As(a, &ea) || !errors.As(b, &eb) {
			return 0
		}
		if c := ea.Pos.Line - eb.Pos.Line; c != 0 {
			return c
		}
		return ea.Pos.Col - eb.Pos.Col
	})
	return errors.Join(errs...)
}

// suggest returns the known key nearest to key by edit distance, or ""
// when none is near enough to be a plausible typo.
func suggest(key string, known []string) string {
	best, bestDist := "", -1
	lower := strings.ToLower(key)
	for _, k := range known {
		d := editDistance(lower, k)
		if d <= max(1, len(k)/3) && (bestDist < 0 || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes: keys
// are ASCII, and a non-ASCII typo only needs to come out as "far".
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unknownKey builds the message for a key the schema does not have.
func unknownKey(key, where string, known []string) error {
	if s := suggest(key, known); s != "" {
		return fmt.Errorf("unknown key %q %s (did you mean %q?)", key, where, s)
	}
	return fmt.Errorf("unknown key %q %s (known keys: %s)", key, where, strings.Join(known, ", "))
}
