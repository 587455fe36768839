package luks2

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The checks below are the ones cryptsetup makes before it uses a header
// (its metadata validation, keyslot validation and the one repair it
// applies), so that a header is read here exactly when cryptsetup reads
// it: the 85 headers of cryptsetup's luks2-validation-test are the test
// (corpus_test.go). A header that fails them is never used nor written.

// ErrInvalidMetadata reports a JSON area cryptsetup would refuse.
var ErrInvalidMetadata = errors.New("luks2: invalid metadata")

const (
	keyslotsAreaMax = 128 << 20 // the largest keyslots area
	afStripesLUKS   = 4000      // the only stripe count cryptsetup opens
)

// metadataSizes are the sizes one header copy (binary header and JSON
// area) may have; each is also where the secondary copy may start.
var metadataSizes = []uint64{0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMetadata, fmt.Sprintf(format, a...))
}

// checkArea checks the raw JSON area of one header copy (areaSize bytes,
// the binary header's size less 4 KiB) and returns its metadata: one JSON
// object starting at the first byte, then nothing but NUL bytes (at least
// one), valid by validateTree.
func checkArea(area []byte) (*jval, error) {
	root, end, err := parseJSON(area)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMetadata, err)
	}
	if area[0] != '{' {
		return nil, invalid("the JSON area starts with %q, not '{'", area[0])
	}
	if end >= len(area) {
		return nil, invalid("the JSON fills the area: no NUL byte ends it")
	}
	for i := end; i < len(area); i++ {
		if area[i] != 0 {
			return nil, invalid("byte %d after the JSON is %#x, not NUL", i, area[i])
		}
	}
	if root.kind != jObject {
		return nil, invalid("the JSON area holds a %s, not an object", root.kind)
	}
	if err := validateRepair(root, uint64(len(area))); err != nil {
		return nil, err
	}
	return root, nil
}

// validateRepair validates the metadata; if it fails, it applies
// cryptsetup's repair (a keyslot's KDF keeps only the parameters of its
// type) and validates again. root is changed by the repair.
func validateRepair(root *jval, areaSize uint64) error {
	err := validateTree(root, areaSize)
	if err == nil {
		return nil
	}
	if !repairKeyslots(root) {
		return err
	}
	return validateTree(root, areaSize)
}

// validateTree checks the metadata of a header whose JSON area is
// areaSize bytes.
func validateTree(root *jval, areaSize uint64) error {
	for _, check := range []func(*jval) error{
		checkRequirements, checkTokens, checkDigests, checkSegments, checkKeyslots, checkConfig, checkAreas,
	} {
		if err := check(root); err != nil {
			return err
		}
	}
	if err := checkJSONSize(root, areaSize); err != nil {
		return err
	}
	return checkKeyslotTypes(root)
}

// numbered is a member name of keyslots, tokens, digests and segments: digits only.
func numbered(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// strtoull parses s as C's strtoull(s, &end, 10) does and reports
// whether all of s was taken without overflow: leading spaces and a sign
// are allowed (a minus negates modulo 2^64). Offsets and sizes are also
// checked with numbered, which rules those out.
func strtoull(s string) (uint64, bool) {
	i := 0
	for i < len(s) && strings.IndexByte(" \t\n\v\f\r", s[i]) >= 0 {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if i == len(s) {
		return 0, false
	}
	var n uint64
	for ; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxUint64-uint64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// getUint64 is a decimal string member's value, 0 when it is not one.
func getUint64(v *jval) uint64 {
	n, ok := strtoull(v.str())
	if !ok {
		return 0
	}
	return n
}

// atoi is C's atoi of a numbered name (int, so a huge one wraps).
func atoi(s string) int {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		n = math.MaxInt64
	}
	return int(int32(n))
}

// contains is member key of obj if it is of kind k.
func contains(obj *jval, key string, k jkind) *jval {
	if v := obj.get(key); v.is(k) {
		return v
	}
	return nil
}

// containsString is member key of obj if it is a non-empty string.
func containsString(obj *jval, key string) *jval {
	if v := obj.get(key); v.is(jString) && v.s != "" {
		return v
	}
	return nil
}

// isUint32 reports whether an int value fits in 32 bits unsigned.
func isUint32(v *jval) bool { return v.is(jInt) && v.i >= 0 && v.i <= math.MaxUint32 }

// arrayHas reports whether the array arr holds the string s.
func arrayHas(arr *jval, s string) bool {
	if !arr.is(jArray) {
		return false
	}
	for _, e := range arr.arr {
		if e.is(jString) && e.s == s {
			return true
		}
	}
	return false
}

// checkRefs checks that arr is an array of strings, each naming an
// object member of section.
func checkRefs(arr, section *jval, what string) error {
	for i, e := range arr.arr {
		if !e.is(jString) {
			return invalid("%s[%d] is a %s, not a string", what, i, e.kind)
		}
		if contains(section, e.s, jObject) == nil {
			return invalid("%s names %q, which does not exist", what, e.s)
		}
	}
	return nil
}

// mandatoryRequirements is config.requirements.mandatory (nil when absent).
func mandatoryRequirements(root *jval) []string {
	var out []string
	for _, e := range root.get("config").get("requirements").get("mandatory").arrOrNil() {
		out = append(out, e.str())
	}
	return out
}

func (v *jval) arrOrNil() []*jval {
	if v.is(jArray) {
		return v.arr
	}
	return nil
}

// reencryptCandidate is a requirement naming an online re-encryption.
func reencryptCandidate(flag string) bool {
	if flag == "online-reencrypt" {
		return true
	}
	n, ok := strings.CutPrefix(flag, "online-reencrypt-v")
	return ok && n != "" && numbered(n)
}

// onlineReencrypt reports whether the requirements name an online
// re-encryption cryptsetup knows.
func onlineReencrypt(root *jval) bool {
	for _, r := range mandatoryRequirements(root) {
		if r == "online-reencrypt" || r == "online-reencrypt-v2" || r == "online-reencrypt-v3" {
			return true
		}
	}
	return false
}

func checkRequirements(root *jval) error {
	config := contains(root, "config", jObject)
	if config == nil {
		return invalid("no config object")
	}
	req := config.get("requirements")
	if req == nil {
		return nil
	}
	if !req.is(jObject) {
		return invalid("config.requirements is a %s, not an object", req.kind)
	}
	mandatory := req.get("mandatory")
	if mandatory == nil {
		return nil
	}
	if !mandatory.is(jArray) {
		return invalid("config.requirements.mandatory is a %s, not an array", mandatory.kind)
	}
	n := 0
	for _, e := range mandatory.arr {
		if !e.is(jString) {
			return invalid("config.requirements.mandatory holds a %s", e.kind)
		}
		if reencryptCandidate(e.s) {
			n++
		}
	}
	if n > 1 {
		return invalid("config.requirements.mandatory names %d online re-encryptions", n)
	}
	return nil
}

func checkTokens(root *jval) error {
	tokens := contains(root, "tokens", jObject)
	if tokens == nil {
		return invalid("no tokens object")
	}
	keyslots := root.get("keyslots")
	for _, m := range tokens.obj {
		if !numbered(m.key) {
			return invalid("token %q is not a number", m.key)
		}
		if keyslots == nil {
			return invalid("no keyslots object")
		}
		if containsString(m.val, "type") == nil {
			return invalid("token %s has no type", m.key)
		}
		arr := contains(m.val, "keyslots", jArray)
		if arr == nil {
			return invalid("token %s has no keyslots array", m.key)
		}
		if err := checkRefs(arr, keyslots, "token "+m.key+" keyslots"); err != nil {
			return err
		}
	}
	return nil
}

func checkDigests(root *jval) error {
	digests := contains(root, "digests", jObject)
	if digests == nil {
		return invalid("no digests object")
	}
	keyslots := contains(root, "keyslots", jObject)
	if keyslots == nil {
		return invalid("no keyslots object")
	}
	segments := contains(root, "segments", jObject)
	if segments == nil {
		return invalid("no segments object")
	}
	for _, m := range digests.obj {
		if !numbered(m.key) {
			return invalid("digest %q is not a number", m.key)
		}
		if containsString(m.val, "type") == nil {
			return invalid("digest %s has no type", m.key)
		}
		ks, segs := contains(m.val, "keyslots", jArray), contains(m.val, "segments", jArray)
		if ks == nil || segs == nil {
			return invalid("digest %s lacks its keyslots or segments array", m.key)
		}
		if err := checkRefs(ks, keyslots, "digest "+m.key+" keyslots"); err != nil {
			return err
		}
		if err := checkRefs(segs, segments, "digest "+m.key+" segments"); err != nil {
			return err
		}
	}
	return nil
}

// segmentFlag reports whether a segment's flags hold flag (or, with
// prefix, a flag starting with it).
func segmentFlag(seg *jval, flag string, prefix bool) bool {
	for _, e := range seg.get("flags").arrOrNil() {
		if s := e.str(); s == flag || prefix && strings.HasPrefix(s, flag) {
			return true
		}
	}
	return false
}

func isBackupSegment(seg *jval) bool { return segmentFlag(seg, "backup-", true) }

func checkSegments(root *jval) error {
	segments := contains(root, "segments", jObject)
	if segments == nil {
		return invalid("no segments object")
	}
	count := len(segments.obj)
	if count < 1 {
		return invalid("no segments")
	}
	digests := root.get("digests")
	firstBackup := -1
	for _, m := range segments.obj {
		key, seg := m.key, m.val
		if !numbered(key) {
			return invalid("segment %q is not a number", key)
		}
		typ, off, sz := containsString(seg, "type"), containsString(seg, "offset"), containsString(seg, "size")
		if typ == nil || off == nil || sz == nil {
			return invalid("segment %s lacks its type, offset or size", key)
		}
		offset, ok := strtoull(off.s)
		if !numbered(off.s) || !ok {
			return invalid("segment %s: offset %q is not a decimal number", key, off.s)
		}
		var size uint64 // 0: "dynamic", to the end of the device
		if sz.s != "dynamic" {
			if size, ok = strtoull(sz.s); !numbered(sz.s) || !ok || size == 0 {
				return invalid("segment %s: size %q is neither \"dynamic\" nor a decimal number above 0", key, sz.s)
			}
		}
		if offset%512 != 0 || size%512 != 0 {
			return invalid("segment %s: offset %d or size %d is not a multiple of 512", key, offset, size)
		}
		if f := seg.get("flags"); f != nil {
			if !f.is(jArray) {
				return invalid("segment %s: flags is a %s, not an array", key, f.kind)
			}
			for _, e := range f.arr {
				if !e.is(jString) {
					return invalid("segment %s: flags holds a %s", key, e.kind)
				}
			}
		}
		i := atoi(key)
		if isBackupSegment(seg) {
			if firstBackup < 0 || i < firstBackup {
				firstBackup = i
			}
		} else if firstBackup >= 0 && i >= firstBackup {
			return invalid("segment %d comes after backup segment %d", i, firstBackup)
		}
		if typ.s == "crypt" {
			if err := checkCryptSegment(seg, key, digests, size); err != nil {
				return err
			}
		}
		if strings.HasPrefix(typ.s, "hw-opal") {
			if size == 0 {
				return invalid("segment %s: %s cannot be dynamic", key, typ.s)
			}
			opal := containsString(seg, "opal_segment_size")
			if contains(seg, "opal_segment_number", jInt) == nil || contains(seg, "opal_key_size", jInt) == nil || opal == nil {
				return invalid("segment %s lacks its OPAL fields", key)
			}
			osz, ok := strtoull(opal.s)
			if !numbered(opal.s) || !ok || osz == 0 || size > osz {
				return invalid("segment %s: bad opal_segment_size %q", key, opal.s)
			}
			if typ.s == "hw-opal-crypt" {
				if err := checkCryptSegment(seg, key, digests, size); err != nil {
					return err
				}
			}
		}
	}
	if firstBackup == 0 {
		return invalid("no regular segment")
	}
	if firstBackup >= count {
		return invalid("a gap before backup segment %d", firstBackup)
	}
	if firstBackup < 0 {
		firstBackup = count
	}
	type interval struct{ off, len uint64 }
	var ix []interval
	for i := 0; i < firstBackup; i++ {
		seg := segments.get(strconv.Itoa(i))
		if seg == nil {
			return invalid("no segment %d", i)
		}
		l := getUint64(seg.get("size"))
		if l == 0 {
			l = math.MaxUint64 // dynamic
		}
		ix = append(ix, interval{getUint64(seg.get("offset")), l})
	}
	for i, a := range ix {
		if a.len == math.MaxUint64 && i != len(ix)-1 {
			return invalid("segment %d is dynamic but not the last", i)
		}
		for j, b := range ix {
			if i == j {
				continue
			}
			if b.len != math.MaxUint64 && b.off > math.MaxUint64-b.len {
				return invalid("segment %d: offset + size overflows", j)
			}
			if a.off >= b.off && (b.len == math.MaxUint64 || a.off < b.off+b.len) {
				return invalid("segments %d and %d overlap", i, j)
			}
		}
	}
	for i := firstBackup; i < count; i++ {
		if segments.get(strconv.Itoa(i)) == nil {
			return invalid("no segment %d", i)
		}
	}
	return checkReencryptSegments(root, segments, firstBackup, count)
}

func checkCryptSegment(seg *jval, key string, digests *jval, size uint64) error {
	iv := containsString(seg, "iv_tweak")
	sector := contains(seg, "sector_size", jInt)
	if iv == nil || containsString(seg, "encryption") == nil || sector == nil {
		return invalid("crypt segment %s lacks its iv_tweak, encryption or sector_size", key)
	}
	if integ := seg.get("integrity"); integ != nil {
		if !integ.is(jObject) || containsString(integ, "type") == nil ||
			containsString(integ, "journal_encryption") == nil || containsString(integ, "journal_integrity") == nil {
			return invalid("segment %s: bad integrity object", key)
		}
	}
	if !isUint32(sector) || sector.i == 0 || sector.i%512 != 0 {
		return invalid("segment %s: sector size %s", key, sector.raw)
	}
	if _, ok := strtoull(iv.s); !numbered(iv.s) || !ok {
		return invalid("segment %s: iv_tweak %q is not a decimal number", key, iv.s)
	}
	if size%uint64(sector.i) != 0 {
		return invalid("segment %s: size %d is not a multiple of its sector size %d", key, size, sector.i)
	}
	if digests.is(jObject) {
		for _, d := range digests.obj {
			if arrayHas(d.val.get("segments"), key) {
				return nil
			}
		}
	}
	return invalid("crypt segment %s has no digest", key)
}

// sameSegment compares two segments as a re-encryption's backup copies
// are compared.
func sameSegment(a, b *jval) bool {
	ta, tb := a.get("type"), b.get("type")
	if !ta.is(jString) || !tb.is(jString) || ta.s != tb.s {
		return false
	}
	if ta.s != "crypt" {
		return true
	}
	sectorSize := func(s *jval) int64 {
		if v := s.get("sector_size"); v.is(jInt) && v.i >= 0 {
			return v.i
		}
		return 512
	}
	cipher := func(s *jval) string {
		if v := s.get("encryption"); v != nil {
			return v.str()
		}
		return "null"
	}
	return sectorSize(a) == sectorSize(b) && cipher(a) == cipher(b)
}

func checkReencryptSegments(root, segments *jval, firstBackup, count int) error {
	if !onlineReencrypt(root) {
		return nil
	}
	var final, previous *jval
	for i := firstBackup; i < count; i++ {
		seg := segments.get(strconv.Itoa(i))
		switch {
		case segmentFlag(seg, "backup-final", false):
			final = seg
		case segmentFlag(seg, "backup-previous", false):
			previous = seg
		}
	}
	if final == nil || previous == nil {
		return invalid("a re-encryption without its backup segments")
	}
	for i := 0; i < firstBackup; i++ {
		seg := segments.get(strconv.Itoa(i))
		if segmentFlag(seg, "in-reencryption", false) {
			if !sameSegment(seg, final) {
				return invalid("segment %d in re-encryption differs from the final backup", i)
			}
			continue
		}
		if !sameSegment(seg, final) && !sameSegment(seg, previous) {
			return invalid("segment %d matches neither backup segment", i)
		}
	}
	return nil
}

func checkKeyslots(root *jval) error {
	keyslots := contains(root, "keyslots", jObject)
	if keyslots == nil {
		return invalid("no keyslots object")
	}
	for _, m := range keyslots.obj {
		if !numbered(m.key) {
			return invalid("keyslot %q is not a number", m.key)
		}
		if containsString(m.val, "type") == nil {
			return invalid("keyslot %s has no type", m.key)
		}
		if ks := contains(m.val, "key_size", jInt); ks == nil || !isUint32(ks) {
			return invalid("keyslot %s: no key_size, or not a 32-bit size", m.key)
		}
	}
	return nil
}

// configSizes returns config.json_size and config.keyslots_size (0 when
// not numbers).
func configSizes(root *jval) (jsonSize, keyslotsSize uint64) {
	c := root.get("config")
	return getUint64(c.get("json_size")), getUint64(c.get("keyslots_size"))
}

// minSegmentOffset is the lowest offset of a regular segment; 0 when one
// starts at 0 (a detached header).
func minSegmentOffset(root *jval) uint64 {
	low := uint64(math.MaxUint64)
	for _, m := range root.get("segments").obj {
		if isBackupSegment(m.val) {
			continue
		}
		off := getUint64(m.val.get("offset"))
		if off == 0 {
			return 0
		}
		low = min(low, off)
	}
	return low
}

func checkConfig(root *jval) error {
	config := contains(root, "config", jObject)
	if config == nil {
		return invalid("no config object")
	}
	js, ks := containsString(config, "json_size"), containsString(config, "keyslots_size")
	if js == nil || ks == nil {
		return invalid("config lacks json_size or keyslots_size")
	}
	jsonSize, ok1 := strtoull(js.s)
	keyslotsSize, ok2 := strtoull(ks.s)
	if !ok1 || !ok2 {
		return invalid("config: json_size %q or keyslots_size %q is not a number", js.s, ks.s)
	}
	metadata := jsonSize + binHeaderSize
	if !slices.Contains(metadataSizes, metadata) {
		return invalid("config.json_size %d: a header copy of %d bytes is not one LUKS2 allows", jsonSize, metadata)
	}
	if keyslotsSize%4096 != 0 || keyslotsSize > keyslotsAreaMax {
		return invalid("config.keyslots_size %d: a multiple of 4096, at most 128 MiB", keyslotsSize)
	}
	if off := minSegmentOffset(root); off != 0 && (off < keyslotsSize || off-keyslotsSize < 2*metadata) {
		return invalid("config.keyslots_size %d does not fit between the headers (%d bytes) and the data at %d", keyslotsSize, 2*metadata, off)
	}
	if f := config.get("flags"); f != nil {
		if !f.is(jArray) {
			return invalid("config.flags is a %s, not an array", f.kind)
		}
		for _, e := range f.arr {
			if !e.is(jString) {
				return invalid("config.flags holds a %s", e.kind)
			}
		}
	}
	return nil
}

func checkAreas(root *jval) error {
	keyslots, segments := root.get("keyslots"), root.get("segments")
	if keyslots == nil || segments == nil {
		return invalid("no keyslots or segments")
	}
	jsonSize, keyslotsSize := configSizes(root)
	metadata := jsonSize + binHeaderSize
	end := 2*metadata + keyslotsSize
	type area struct {
		id        string
		off, size uint64
	}
	var areas []area
	for _, m := range keyslots.obj {
		a := contains(m.val, "area", jObject)
		if a == nil || containsString(a, "type") == nil {
			return invalid("keyslot %s has no area, or an area without a type", m.key)
		}
		o, s := containsString(a, "offset"), containsString(a, "size")
		if o == nil || s == nil || !numbered(o.s) || !numbered(s.s) {
			return invalid("keyslot %s: the area's offset or size is not a decimal number", m.key)
		}
		off, ok1 := strtoull(o.s)
		size, ok2 := strtoull(s.s)
		if !ok1 || !ok2 {
			return invalid("keyslot %s: the area's offset %s or size %s is larger than 2^64-1", m.key, o.s, s.s)
		}
		areas = append(areas, area{m.key, off, size})
	}
	for i, a := range areas {
		switch {
		case a.off < 2*metadata:
			return invalid("keyslot %s: its area at %d lies in the header copies (the first %d bytes)", a.id, a.off, 2*metadata)
		case a.size == 0:
			return invalid("keyslot %s: an empty area", a.id)
		case a.off > math.MaxUint64-a.size:
			return invalid("keyslot %s: area offset %d + size %d overflows", a.id, a.off, a.size)
		case a.off+a.size > end:
			return invalid("keyslot %s: its area [%d, %d) runs past the keyslots area's end at %d", a.id, a.off, a.off+a.size, end)
		}
		for j, b := range areas {
			if i == j {
				continue
			}
			if b.off > math.MaxUint64-b.size {
				return invalid("keyslot %s: area offset %d + size %d overflows", b.id, b.off, b.size)
			}
			if a.off >= b.off && a.off < b.off+b.size {
				return invalid("the areas of keyslots %s [%d, %d) and %s [%d, %d) overlap", a.id, a.off, a.off+a.size, b.id, b.off, b.off+b.size)
			}
		}
	}
	return nil
}

// checkJSONSize checks config.json_size against the area and that the
// metadata, written compact, fits in it.
func checkJSONSize(root *jval, areaSize uint64) error {
	jsonSize, _ := configSizes(root)
	if jsonSize != areaSize {
		return invalid("config.json_size %d, but the binary header gives a %d-byte JSON area", jsonSize, areaSize)
	}
	if n := uint64(len(root.compact())); n > areaSize {
		return invalid("the metadata (%d bytes) does not fit its %d-byte JSON area", n, areaSize)
	}
	return nil
}

// checkKeyslotTypes checks the keyslots of the types cryptsetup knows
// ("luks2" and "reencrypt"; others are left alone): their kdf, af and
// area objects, and that each luks2 keyslot has exactly one digest.
func checkKeyslotTypes(root *jval) error {
	reencrypt := 0
	for _, m := range root.get("keyslots").obj {
		switch m.val.get("type").str() {
		case "luks2":
			if err := checkLUKS2Keyslot(m.val); err != nil {
				return fmt.Errorf("keyslot %s: %w", m.key, err)
			}
			name, n := strconv.FormatUint(uint64(uint32(atoi(m.key))), 10), 0
			for _, d := range root.get("digests").obj {
				if arrayHas(d.val.get("keyslots"), name) {
					n++
				}
			}
			if n != 1 {
				return invalid("keyslot %s is named by %d digests, not 1", m.key, n)
			}
		case "reencrypt":
			if err := checkReencryptKeyslot(m.val); err != nil {
				return fmt.Errorf("keyslot %s: %w", m.key, err)
			}
			reencrypt++
		}
	}
	candidate := false
	for _, r := range mandatoryRequirements(root) {
		candidate = candidate || reencryptCandidate(r)
	}
	switch {
	case onlineReencrypt(root) && reencrypt == 0:
		return invalid("an online re-encryption without its keyslot")
	case reencrypt > 0 && !candidate:
		return invalid("a reencrypt keyslot without the requirement naming it")
	case reencrypt > 1:
		return invalid("%d reencrypt keyslots", reencrypt)
	}
	return nil
}

func checkLUKS2Keyslot(ks *jval) error {
	kdf, af, area := contains(ks, "kdf", jObject), contains(ks, "af", jObject), contains(ks, "area", jObject)
	if kdf == nil || af == nil || area == nil {
		return invalid("no kdf, af or area object")
	}
	typ := containsString(kdf, "type")
	if typ == nil {
		return invalid("kdf without a type")
	}
	switch typ.s {
	case "pbkdf2":
		if len(kdf.obj) != 4 || containsString(kdf, "hash") == nil || contains(kdf, "iterations", jInt) == nil ||
			containsString(kdf, "salt") == nil {
			return invalid("pbkdf2 takes exactly type, salt, hash and iterations")
		}
	case "argon2i", "argon2id":
		if len(kdf.obj) != 5 || contains(kdf, "time", jInt) == nil || contains(kdf, "memory", jInt) == nil ||
			contains(kdf, "cpus", jInt) == nil || containsString(kdf, "salt") == nil {
			return invalid("%s takes exactly type, salt, time, memory and cpus", typ.s)
		}
	}
	if containsString(af, "type").str() != "luks1" || containsString(af, "hash") == nil || contains(af, "stripes", jInt) == nil {
		return invalid("af: want type luks1 with a hash and stripes")
	}
	if containsString(area, "type").str() != "raw" || containsString(area, "encryption") == nil ||
		contains(area, "key_size", jInt) == nil || containsString(area, "offset") == nil || containsString(area, "size") == nil {
		return invalid("area: want type raw with encryption, key_size, offset and size")
	}
	return nil
}

func checkReencryptKeyslot(ks *jval) error {
	area := ks.get("area")
	typ := area.get("type")
	if typ == nil {
		return invalid("an area without a type")
	}
	keySize := contains(ks, "key_size", jInt)
	mode, dir := containsString(ks, "mode"), containsString(ks, "direction")
	if keySize == nil || mode == nil || dir == nil {
		return invalid("reencrypt keyslot lacks its key_size, mode or direction")
	}
	if !isUint32(keySize) || keySize.i != 1 {
		return invalid("reencrypt keyslot: key_size %s, want 1", keySize.raw)
	}
	if !slices.Contains([]string{"reencrypt", "encrypt", "decrypt"}, mode.s) || (dir.s != "forward" && dir.s != "backward") {
		return invalid("reencrypt keyslot: mode %q, direction %q", mode.s, dir.s)
	}
	switch t := typ.str(); t {
	case "checksum", "datashift-checksum":
		sector := contains(area, "sector_size", jInt)
		if containsString(area, "hash") == nil || sector == nil || !isUint32(sector) ||
			sector.i < 512 || sector.i&(sector.i-1) != 0 {
			return invalid("reencrypt keyslot: a %s area needs a hash and a power-of-two sector_size of 512 or more", t)
		}
	case "datashift", "datashift-journal":
		shift := containsString(area, "shift_size")
		if shift == nil {
			return invalid("reencrypt keyslot: a %s area needs shift_size", t)
		}
		if n := getUint64(shift); n == 0 || n%512 != 0 {
			return invalid("reencrypt keyslot: shift_size %q", shift.s)
		}
	}
	return nil
}

// repairKeyslots drops the KDF parameters a luks2 keyslot's KDF type does
// not take (left by a type change), as cryptsetup does before its second
// validation. It reports whether it changed anything.
func repairKeyslots(root *jval) bool {
	keyslots := root.get("keyslots")
	if !keyslots.is(jObject) {
		return false
	}
	changed := false
	for _, m := range keyslots.obj {
		if !m.val.is(jObject) || m.val.get("type").str() != "luks2" {
			continue
		}
		kdf := m.val.get("kdf")
		if !kdf.is(jObject) {
			continue
		}
		var keep []string
		switch kdf.get("type").str() {
		case "pbkdf2":
			keep = []string{"type", "salt", "hash", "iterations"}
		case "argon2i", "argon2id":
			keep = []string{"type", "salt", "time", "memory", "cpus"}
		default:
			continue
		}
		n := len(kdf.obj)
		kdf.obj = slices.DeleteFunc(kdf.obj, func(m jmember) bool { return !slices.Contains(keep, m.key) })
		changed = changed || len(kdf.obj) != n
	}
	return changed
}
