package fat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"byzantium/modules/entry"
)

// maxLongName is the longest VFAT name in UTF-16 code units.
const maxLongName = 255

// checkName rejects names a FAT directory cannot hold: characters Windows
// forbids in long names, control characters, trailing dots and spaces
// (which Windows and Linux strip, so the name would change), invalid
// UTF-8 and names over 255 UTF-16 units.
func checkName(name, full string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("fat: %s: name is not valid UTF-8: %w", full, entry.ErrUnsupported)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || strings.ContainsRune(`"*/:<>?\|`, r) }); i >= 0 {
		return fmt.Errorf("fat: %s: name contains %q, which FAT forbids: %w", full, name[i:i+1], entry.ErrUnsupported)
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return fmt.Errorf("fat: %s: name ends in a dot or space, which FAT drivers strip: %w", full, entry.ErrUnsupported)
	}
	if n := len(utf16.Encode([]rune(name))); n > maxLongName {
		return fmt.Errorf("fat: %s: name is %d UTF-16 units, FAT allows %d: %w", full, n, maxLongName, entry.ErrUnsupported)
	}
	return nil
}

// foldKey is the key under which FAT compares names: case-insensitively,
// by upper-casing each rune the way Windows' up-case table does (simple,
// one rune to one rune).
func foldKey(name string) string {
	return strings.Map(unicode.ToUpper, name)
}

// shortChar reports whether c may appear in an 8.3 name (ASCII only: we
// write no OEM code page characters).
func shortChar(c rune) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c < 0x80 && strings.ContainsRune("$%'-_@~`!(){}^#&", c)
}

// exactShort returns the 11-byte 8.3 form of name if upper-casing name
// gives a valid 8.3 name with nothing lost ("readme.txt" → "README  TXT"),
// or "" if it does not.
func exactShort(name string) string {
	up := foldKey(name)
	base, ext, dotted := strings.Cut(up, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || (dotted && ext == "") {
		return ""
	}
	for _, c := range base + ext {
		if !shortChar(c) {
			return ""
		}
	}
	return pad(base, 8) + pad(ext, 3)
}

func pad(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }

// basis returns the base (≤ 8) and extension (≤ 3) of a generated short
// name, following fatgen103: upper-case, replace characters 8.3 cannot
// hold by "_", drop spaces and leading dots, split at the last dot.
func basis(name string) (base, ext string) {
	var b strings.Builder
	for _, c := range foldKey(name) {
		switch {
		case c == ' ':
		case c == '.' || shortChar(c):
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s, ext = s[:i], s[i+1:]
	}
	base = strings.ReplaceAll(s, ".", "")
	if len(base) > 8 {
		base = base[:8]
	}
	if len(ext) > 3 {
		ext = ext[:3]
	}
	if base == "" {
		base = "_"
	}
	return base, ext
}

// shortNamer hands out unique 8.3 names within one directory.
type shortNamer struct {
	taken map[string]bool
	next  map[string]int // basis → next numeric tail to try
}

// assignShortNames gives each name of one directory its 11-byte short
// name, deterministically: names that are 8.3 names once upper-cased keep
// them (so no other name's short form can equal them), the rest get
// "BASE~N.EXT" with the smallest free N, in the order given.
func assignShortNames(names []string) ([]string, error) {
	out := make([]string, len(names))
	sn := shortNamer{taken: map[string]bool{}, next: map[string]int{}}
	for i, n := range names {
		if s := exactShort(n); s != "" {
			out[i] = s
			sn.taken[s] = true
		}
	}
	for i, n := range names {
		if out[i] != "" {
			continue
		}
		base, ext := basis(n)
		key := base + "." + ext
		for k := max(sn.next[key], 1); ; k++ {
			tail := "~" + strconv.Itoa(k)
			if len(tail) > 7 {
				return nil, fmt.Errorf("fat: %s: no free short name for basis %s: %w", n, key, ErrNoSpace)
			}
			s := pad(base[:min(len(base), 8-len(tail))]+tail, 8) + pad(ext, 3)
			if !sn.taken[s] {
				out[i] = s
				sn.taken[s] = true
				sn.next[key] = k + 1
				break
			}
		}
	}
	return out, nil
}

// shortChecksum is the checksum of an 11-byte short name that every LFN
// entry of the name carries.
func shortChecksum(short string) byte {
	var sum byte
	for i := range 11 {
		sum = (sum&1)<<7 + sum>>1 + short[i]
	}
	return sum
}

// needsLFN reports whether name must be stored as a long name: anything
// but a name that is exactly its own upper-case 8.3 form.
func needsLFN(name, short string) bool {
	return exactShort(name) != short || foldKey(name) != name
}

// lfnEntries encodes name as VFAT long-name entries, in on-disk order
// (last part first), each 32 bytes.
func lfnEntries(name string, sum byte) []byte {
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	// The name ends with a NUL unless it fills the last entry exactly;
	// unused slots after it are 0xFFFF.
	if len(u)%13 != 0 {
		u = append(u, 0)
	}
	for len(u) < n*13 {
		u = append(u, 0xFFFF)
	}
	out := make([]byte, 0, n*dirEntrySize)
	for seq := n; seq >= 1; seq-- {
		e := make([]byte, dirEntrySize)
		e[0] = byte(seq)
		if seq == n {
			e[0] |= 0x40 // last logical entry
		}
		e[11] = attrLFN
		e[13] = sum
		part := u[(seq-1)*13 : seq*13]
		for j, off := range lfnOffsets {
			e[off] = byte(part[j])
			e[off+1] = byte(part[j] >> 8)
		}
		out = append(out, e...)
	}
	return out
}

// lfnOffsets are the byte offsets of the 13 UTF-16 units in an LFN entry.
var lfnOffsets = [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}
