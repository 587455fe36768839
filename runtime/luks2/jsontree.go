package luks2

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON area is read into a tree of its own rather than with
// encoding/json, because the checks cryptsetup makes depend on what
// encoding/json hides: the type of each value as json-c sees it (an
// integer is not a string nor a double: "sector_size": "4096" is
// refused), the order of an object's members, and where the first JSON
// value ends (the bytes after it must all be NUL). Updates edit the same
// tree, so members this package does not model (tokens, requirements,
// flags) are written back as they were.

type jkind uint8

const (
	jNull jkind = iota
	jBool
	jInt
	jDouble
	jString
	jArray
	jObject
)

var jkindNames = [...]string{"null", "boolean", "int", "double", "string", "array", "object"}

func (k jkind) String() string { return jkindNames[k] }

// jval is one JSON value.
type jval struct {
	kind jkind
	b    bool
	i    int64  // jInt: the value, saturated to int64 as json-c's get_int64
	raw  string // jInt, jDouble: the literal as written
	s    string
	arr  []*jval
	obj  []jmember // in the order written
}

type jmember struct {
	key string
	val *jval
}

// get returns the member key of an object (nil if v is not an object or
// has no such member).
func (v *jval) get(key string) *jval {
	if v == nil || v.kind != jObject {
		return nil
	}
	for _, m := range v.obj {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// set replaces or appends member key of an object.
func (v *jval) set(key string, val *jval) {
	for i := range v.obj {
		if v.obj[i].key == key {
			v.obj[i].val = val
			return
		}
	}
	v.obj = append(v.obj, jmember{key, val})
}

// del removes member key of an object.
func (v *jval) del(key string) {
	for i := range v.obj {
		if v.obj[i].key == key {
			v.obj = append(v.obj[:i:i], v.obj[i+1:]...)
			return
		}
	}
}

// is reports whether v is present and of kind k.
func (v *jval) is(k jkind) bool { return v != nil && v.kind == k }

// str returns a string value ("" for anything else).
func (v *jval) str() string {
	if v.is(jString) {
		return v.s
	}
	return ""
}

// clone copies v deeply.
func (v *jval) clone() *jval {
	if v == nil {
		return nil
	}
	c := *v
	if v.arr != nil {
		c.arr = make([]*jval, len(v.arr))
		for i, e := range v.arr {
			c.arr[i] = e.clone()
		}
	}
	if v.obj != nil {
		c.obj = make([]jmember, len(v.obj))
		for i, m := range v.obj {
			c.obj[i] = jmember{m.key, m.val.clone()}
		}
	}
	return &c
}

func jstring(s string) *jval { return &jval{kind: jString, s: s} }

func jint(n int64) *jval { return &jval{kind: jInt, i: n, raw: strconv.FormatInt(n, 10)} }

// errJSON is a JSON area that does not parse.
var errJSON = errors.New("not valid JSON")

// maxJSONDepth bounds nesting, so a hostile area cannot exhaust the stack.
const maxJSONDepth = 64

// maxJSONValues bounds the values in a JSON area. cryptsetup's checks
// compare sections pairwise (keyslot areas, segments, digest references),
// and so do ours: a crafted 4 MiB area of a million values would keep
// byz-init busy for hours. A real header has a few hundred (32 keyslots,
// tokens and segments at most in use); one with more is refused, where
// cryptsetup would read it slowly.
const maxJSONValues = 4096

// parseJSON parses the first JSON value of b and returns it with the
// offset just past it (json-c's char_offset).
func parseJSON(b []byte) (*jval, int, error) {
	p := &jparser{b: b}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, 0, err
	}
	return v, p.pos, nil
}

type jparser struct {
	b      []byte
	pos    int
	values int
}

func (p *jparser) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errJSON, what, p.pos)
}

func (p *jparser) space() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jparser) value(depth int) (*jval, error) {
	if depth > maxJSONDepth {
		return nil, p.fail("nested too deep")
	}
	if p.values++; p.values > maxJSONValues {
		return nil, p.fail(fmt.Sprintf("more than %d values", maxJSONValues))
	}
	if p.pos >= len(p.b) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.b[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return jstring(s), nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case p.literal("true"):
		return &jval{kind: jBool, b: true}, nil
	case p.literal("false"):
		return &jval{kind: jBool}, nil
	case p.literal("null"):
		return &jval{kind: jNull}, nil
	}
	return nil, p.fail(fmt.Sprintf("unexpected %q", p.b[p.pos]))
}

func (p *jparser) literal(word string) bool {
	if strings.HasPrefix(string(p.b[p.pos:min(len(p.b), p.pos+len(word))]), word) {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *jparser) object(depth int) (*jval, error) {
	v := &jval{kind: jObject, obj: []jmember{}}
	index := map[string]int{}
	p.pos++ // {
	p.space()
	if p.pos < len(p.b) && p.b[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		if p.pos >= len(p.b) || p.b[p.pos] != '"' {
			return nil, p.fail("expected a member name")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.b) || p.b[p.pos] != ':' {
			return nil, p.fail("expected ':'")
		}
		p.pos++
		p.space()
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		// A repeated name replaces the earlier value in its place, as
		// json-c's object_add does.
		if i, ok := index[key]; ok {
			v.obj[i].val = val
		} else {
			index[key] = len(v.obj)
			v.obj = append(v.obj, jmember{key, val})
		}
		p.space()
		if p.pos >= len(p.b) {
			return nil, p.fail("unexpected end in an object")
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return nil, p.fail("expected ',' or '}'")
		}
	}
}

func (p *jparser) array(depth int) (*jval, error) {
	v := &jval{kind: jArray, arr: []*jval{}}
	p.pos++ // [
	p.space()
	if p.pos < len(p.b) && p.b[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		e, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.arr = append(v.arr, e)
		p.space()
		if p.pos >= len(p.b) {
			return nil, p.fail("unexpected end in an array")
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return nil, p.fail("expected ',' or ']'")
		}
	}
}

func (p *jparser) string() (string, error) {
	p.pos++ // "
	var sb strings.Builder
	for {
		if p.pos >= len(p.b) {
			return "", p.fail("unterminated string")
		}
		c := p.b[p.pos]
		switch {
		case c == '"':
			p.pos++
			return sb.String(), nil
		case c == '\\':
			if p.pos+1 >= len(p.b) {
				return "", p.fail("unterminated escape")
			}
			e := p.b[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.fail("bad \\u escape")
				}
				if utf16.IsSurrogate(r) && p.pos+1 < len(p.b) && p.b[p.pos] == '\\' && p.b[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					if r2, ok := p.hex4(); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
						r = utf16.DecodeRune(r, r2)
					} else {
						p.pos = save
					}
				}
				sb.WriteRune(r)
			default:
				return "", p.fail(fmt.Sprintf("bad escape \\%c", e))
			}
		case c < 0x20:
			return "", p.fail("control character in a string")
		default:
			sb.WriteByte(c)
			p.pos++
		}
	}
}

func (p *jparser) hex4() (rune, bool) {
	if p.pos+4 > len(p.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.pos:p.pos+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(n), true
}

func (p *jparser) number() (*jval, error) {
	start := p.pos
	if p.b[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if digits() == 0 {
		return nil, p.fail("a number without digits")
	}
	double := false
	if p.pos < len(p.b) && p.b[p.pos] == '.' {
		p.pos++
		double = true
		if digits() == 0 {
			return nil, p.fail("a number without digits after '.'")
		}
	}
	if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
		p.pos++
		double = true
		if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.fail("a number without exponent digits")
		}
	}
	raw := string(p.b[start:p.pos])
	if double {
		return &jval{kind: jDouble, raw: raw}, nil
	}
	v := &jval{kind: jInt, raw: raw}
	n, err := strconv.ParseInt(raw, 10, 64)
	switch {
	case err == nil:
		v.i = n
	case raw[0] == '-':
		v.i = math.MinInt64
	default:
		v.i = math.MaxInt64
	}
	return v, nil
}

// compact writes v without spaces, as cryptsetup stores the JSON area
// (json-c's plain form, "/" not escaped).
func (v *jval) compact() []byte {
	var b []byte
	return v.appendTo(b)
}

func (v *jval) appendTo(b []byte) []byte {
	switch v.kind {
	case jNull:
		return append(b, "null"...)
	case jBool:
		return strconv.AppendBool(b, v.b)
	case jInt, jDouble:
		return append(b, v.raw...)
	case jString:
		return appendJSONString(b, v.s)
	case jArray:
		b = append(b, '[')
		for i, e := range v.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendTo(b)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i, m := range v.obj {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, m.key)
			b = append(b, ':')
			b = m.val.appendTo(b)
		}
		return append(b, '}')
	}
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if c < 0x20 {
				b = fmt.Appendf(b, `\u%04x`, c)
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}
