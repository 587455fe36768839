package luks2

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// formattedVolume is a volume Format made with cheap pbkdf2 costs, with
// passphrase "mesh at dawn".
func formattedVolume(t *testing.T) (*volume, *Header) {
	t.Helper()
	v := &volume{b: make([]byte, DataOffset+1<<20)}
	h, key, err := Format(v, FormatOptions{Passphrase: []byte("mesh at dawn"), KDF: testKDFs["pbkdf2"]})
	if err != nil {
		t.Fatal(err)
	}
	clear(key)
	return v, h
}

// craft rewrites both header copies of v with h's metadata changed by
// edit, with no check at all: what an attacker can put on a stick.
func craft(t *testing.T, v *volume, h *Header, edit func(root *jval)) {
	t.Helper()
	root := h.tree.clone()
	edit(root)
	js := root.compact()
	for i, magic := range [][]byte{magicPrimary, magicSecondary} {
		b, err := h.encode(magic, int64(i)*h.HdrSize, js)
		if err != nil {
			t.Fatal(err)
		}
		copy(v.b[int64(i)*h.HdrSize:], b)
	}
}

func setInt(obj *jval, key string, n int64) { obj.set(key, jint(n)) }

// TestHostileKDF: a header whose key derivation would run for hours, ask
// for more memory than the machine has, or panic the argon2 library
// (kdf.time 2^32, which truncated to 0 passes) is refused before any key
// is derived: the count of derivations stays the same. cryptsetup reads
// every one of these headers (they are valid LUKS2); only their costs are
// out of bounds.
func TestHostileKDF(t *testing.T) {
	argon := func(tm, mem, cpus int64) func(*jval) {
		return func(root *jval) {
			kdf := root.get("keyslots").get("0").get("kdf")
			kdf.obj = []jmember{{"type", jstring("argon2id")}, {"salt", kdf.get("salt")}}
			setInt(kdf, "time", tm)
			setInt(kdf, "memory", mem)
			setInt(kdf, "cpus", cpus)
		}
	}
	// three keyslots, each within the bounds for one, more than one
	// Unlock may try together.
	threeAtTheBound := func(root *jval) {
		argon(MaxArgon2Work/(1<<20), 1<<20, 4)(root)
		ks := root.get("keyslots")
		for i := 1; i <= 2; i++ {
			c := ks.get("0").clone()
			c.get("area").set("offset", jstring(strconv.Itoa(keyslotsStart+i*keyslotAreaSize(64))))
			ks.set(strconv.Itoa(i), c)
			d := root.get("digests").get("0").get("keyslots")
			d.arr = append(d.arr, jstring(strconv.Itoa(i)))
		}
	}
	for _, c := range []struct {
		name string
		edit func(*jval)
	}{
		{"argon2 time 2^32", argon(1<<32, 1024, 1)},
		{"argon2 time 2^31 over 32 KiB", argon(1<<31, 32, 1)},
		{"argon2 1 pass over 100 GiB", argon(1, 100<<20, 4)},
		{"argon2 over 2^40 KiB", argon(1, 1<<40, 4)},
		{"argon2 1000 lanes", argon(1, 1<<20, 1000)},
		{"pbkdf2 2^31-1 iterations", func(root *jval) {
			setInt(root.get("keyslots").get("0").get("kdf"), "iterations", math.MaxInt32)
		}},
		{"pbkdf2 2^40 iterations", func(root *jval) {
			setInt(root.get("keyslots").get("0").get("kdf"), "iterations", 1<<40)
		}},
		{"digest 2^31 iterations", func(root *jval) { setInt(root.get("digests").get("0"), "iterations", 1<<31) }},
		{"three keyslots at the bound", threeAtTheBound},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, h := formattedVolume(t)
			craft(t, v, h, c.edit)
			h2, err := Read(v)
			if err != nil {
				t.Fatalf("Read refuses the header (cryptsetup reads it): %v", err)
			}
			before := kdfRuns.Load()
			start := time.Now()
			_, _, err = Unlock(v, h2, []byte("mesh at dawn"))
			took := time.Since(start)
			if !errors.Is(err, ErrKDFCost) {
				t.Errorf("Unlock = %v, want ErrKDFCost", err)
			}
			if n := kdfRuns.Load() - before; n != 0 {
				t.Errorf("%d key derivations ran", n)
			}
			t.Logf("refused in %v: %v", took, err)
		})
	}
	// The counter counts: a header within bounds derives its key (one
	// keyslot KDF, one digest check).
	v, h := formattedVolume(t)
	before := kdfRuns.Load()
	if _, _, err := Unlock(v, h, []byte("mesh at dawn")); err != nil {
		t.Fatal(err)
	}
	if n := kdfRuns.Load() - before; n != 2 {
		t.Errorf("%d key derivations for one keyslot and its digest, want 2", n)
	}
}

// TestLimitsMemory: argon2's memory is held to three quarters of the RAM.
func TestLimitsMemory(t *testing.T) {
	l := DefaultLimits()
	if ram := physicalRAMKiB(); ram > 0 && l.MemoryKiB > ram/4*3 || l.MemoryKiB > MaxArgon2Memory || l.MemoryKiB <= 0 {
		t.Errorf("MemoryKiB %d with %d KiB of RAM", l.MemoryKiB, physicalRAMKiB())
	}
	l.MemoryKiB = 64 << 10
	k := KDF{Type: "argon2id", Salt: make([]byte, 32), Time: 1, Memory: 128 << 10, CPUs: 1}
	if _, _, err := l.cost(k, 64); !errors.Is(err, ErrKDFCost) {
		t.Errorf("128 MiB with a 64 MiB limit: %v", err)
	}
	k.Memory = 64 << 10
	if _, _, err := l.cost(k, 64); err != nil {
		t.Errorf("64 MiB with a 64 MiB limit: %v", err)
	}
}

// TestHostileAreas: keyslot areas that overflow or overlap never make a
// write land on another keyslot. Read refuses such headers; a Header
// with them made some other way is refused by AddKey and RemoveKey
// before anything is written. (An area size of 2^64-1 used to overflow
// the free-area search, so AddKey wrote over keyslot 0; an overlapping
// area made a passphrase change wipe the keyslot it overlapped.)
func TestHostileAreas(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*jval)
	}{
		{"area size 2^64-1", func(root *jval) {
			root.get("keyslots").get("0").get("area").set("size", jstring("18446744073709551615"))
		}},
		{"area overlapping keyslot 0", func(root *jval) {
			ks := root.get("keyslots")
			c := ks.get("0").clone()
			c.get("area").set("offset", jstring(strconv.Itoa(keyslotsStart+4096)))
			ks.set("1", c)
			d := root.get("digests").get("0").get("keyslots")
			d.arr = append(d.arr, jstring("1"))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, h := formattedVolume(t)
			key, _, err := Unlock(v, h, []byte("mesh at dawn"))
			if err != nil {
				t.Fatal(err)
			}
			craft(t, v, h, c.edit)
			if _, err := Read(v); !errors.Is(err, ErrInvalidMetadata) {
				t.Errorf("Read = %v, want ErrInvalidMetadata", err)
			}
			// The same metadata in a Header that did not come from Read.
			bad := *h
			bad.tree = h.tree.clone()
			c.edit(bad.tree)
			bad.Metadata = decodeMetadata(bad.tree)
			orig := bytes.Clone(v.b)
			v.writes = 0
			if _, err := AddKey(v, &bad, key, []byte("new"), testKDFs["pbkdf2"], nil); err == nil {
				t.Error("AddKey succeeded")
			}
			if _, ok := bad.Metadata.Keyslots["1"]; ok {
				if err := RemoveKey(v, &bad, "1"); err == nil {
					t.Error("RemoveKey of the overlapping keyslot succeeded")
				}
			}
			if v.writes != 0 || !bytes.Equal(v.b, orig) {
				t.Errorf("%d writes", v.writes)
			}
			if _, err := bad.freeArea(uint64(keyslotAreaSize(64))); err == nil && c.name == "area size 2^64-1" {
				t.Error("freeArea found room past an area that fills the address space")
			}
		})
	}
}

// TestFreeArea: the search finds the gaps between areas, 4 KiB aligned,
// and nothing past the keyslots area.
func TestFreeArea(t *testing.T) {
	_, h := formattedVolume(t)
	size := uint64(keyslotAreaSize(64))
	off, err := h.freeArea(size)
	if err != nil || off != keyslotsStart+int64(size) {
		t.Errorf("freeArea after keyslot 0 = %d, %v; want %d", off, err, keyslotsStart+size)
	}
	if _, err := h.freeArea(keyslotsSize); err == nil {
		t.Error("freeArea found room for the whole keyslots area beside keyslot 0")
	}
	if _, err := h.freeArea(math.MaxUint64); err == nil {
		t.Error("freeArea found 2^64-1 bytes")
	}
}

// TestHostileJSON: a JSON area made to make the checks slow (pairwise
// comparisons over thousands of values) is bounded: more than
// maxJSONValues values are refused while parsing, and the worst shape
// within the bound is checked quickly (the time is logged, not asserted).
func TestHostileJSON(t *testing.T) {
	area := func(keyslots, refs int) []byte {
		var b bytes.Buffer
		b.WriteString(`{"keyslots":{`)
		for i := 0; i < keyslots; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"%d":{}`, i)
		}
		b.WriteString(`},"tokens":{},"segments":{"0":{"type":"x","offset":"0","size":"dynamic"}},"digests":{"0":{"type":"pbkdf2","segments":[],"keyslots":[`)
		for i := 0; i < refs; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"%d"`, keyslots-1-i%keyslots)
		}
		b.WriteString(`]}},"config":{"json_size":"4190208","keyslots_size":"0"}}`)
		out := make([]byte, maxHeaderSize-binHeaderSize)
		copy(out, b.Bytes())
		return out
	}
	for _, c := range []struct {
		keyslots, refs int
		tooMany        bool
	}{
		{2000, 2000, false},
		{100000, 100000, true},
	} {
		a := area(c.keyslots, c.refs)
		start := time.Now()
		_, err := checkArea(a)
		took := time.Since(start)
		if !errors.Is(err, ErrInvalidMetadata) || c.tooMany != strings.Contains(err.Error(), "values") {
			t.Errorf("%d keyslots, %d references: %v", c.keyslots, c.refs, err)
		}
		t.Logf("%d keyslots, %d references: refused in %v: %v", c.keyslots, c.refs, took, err)
	}
}
