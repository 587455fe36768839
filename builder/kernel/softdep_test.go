package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"byzantium/modules/entry"
)

func TestParseSoftdep(t *testing.T) {
	for _, tc := range []struct {
		in        string
		pre, post []string
	}{
		{"pre: crypto-crc32c", []string{"crypto-crc32c"}, nil},
		{"pre: a b post: c", []string{"a", "b"}, []string{"c"}},
		{"post: c pre: a", []string{"a"}, []string{"c"}},
		{"stray pre:  a\tb ", []string{"a", "b"}, nil},
		{"", nil, nil},
	} {
		pre, post := ParseSoftdep(tc.in)
		if !reflect.DeepEqual(pre, tc.pre) || !reflect.DeepEqual(post, tc.post) {
			t.Errorf("ParseSoftdep(%q) = %q, %q; want %q, %q", tc.in, pre, post, tc.pre, tc.post)
		}
	}
}

// softIndex is shaped like the generic kernel where ext4 lost its crc32c:
// ext4 and jbd2 name a crypto alias as a softdep, two modules provide it,
// xts wants ecb before it, and the cloud kernel's built-in crc32c shows
// up as a built-in alias.
func softIndex() *Index {
	ix := NewIndex()
	for _, m := range []*Module{
		{Name: "ext4", Path: "fs/ext4.ko", Depends: []string{"jbd2", "crc16"}, SoftPre: []string{"crypto-crc32c"}},
		{Name: "jbd2", Path: "fs/jbd2.ko", SoftPre: []string{"crypto-crc32c"}},
		{Name: "crc16", Path: "lib/crc16.ko"},
		{Name: "crc32c_generic", Path: "crypto/crc32c_generic.ko"},
		{Name: "crc32c_intel", Path: "arch/crc32c-intel.ko"},
		{Name: "xts", Path: "crypto/xts.ko", SoftPre: []string{"ecb"}},
		{Name: "ecb", Path: "crypto/ecb.ko"},
		{Name: "aesni_intel", Path: "arch/aesni-intel.ko", Depends: []string{"crypto_simd"}},
		{Name: "crypto_simd", Path: "crypto/crypto_simd.ko"},
		{Name: "hid_x", Path: "hid/hid-x.ko", SoftPost: []string{"hid_y"}, SoftPre: []string{"no-such-thing"}},
		{Name: "hid_y", Path: "hid/hid-y.ko"},
		// Soft cycle: each asks for the other before it.
		{Name: "sa", Path: "sa.ko", SoftPre: []string{"sb"}},
		{Name: "sb", Path: "sb.ko", SoftPre: []string{"sa"}},
	} {
		ix.Modules[m.Name] = m
	}
	ix.Aliases = []Alias{
		{"crypto-crc32c", "crc32c_intel"}, {"crypto-crc32c", "crc32c_generic"}, {"crc32c", "crc32c_generic"},
		{"crypto-xts", "xts"}, {"crypto-ecb", "ecb"}, {"crypto-aes", "aesni_intel"},
		{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "crc32c_intel"},
	}
	ix.BuiltinAliases = []Alias{{"crypto-aes", "aes_generic"}, {"crypto-sha256", "sha256_generic"}}
	ix.Builtin["aes_generic"], ix.Builtin["sha256_generic"] = true, true
	ix.sortAliases()
	return ix
}

func TestClosureSoftdeps(t *testing.T) {
	ix := softIndex()
	for _, tc := range []struct {
		want    []string
		order   []string
		missing string
	}{
		// The crc32c providers, both, before jbd2 and ext4.
		{want: []string{"ext4"}, order: []string{"crc32c_generic", "crc32c_intel", "crc16", "jbd2", "ext4"}},
		{want: []string{"crypto-xts", "crypto-aes"}, order: []string{"ecb", "xts", "crypto_simd", "aesni_intel"}},
		// Met by a built-in alias alone: no file, no error.
		{want: []string{"crypto-sha256"}, order: nil},
		{want: []string{"crypto_crc32c"}, order: []string{"crc32c_generic", "crc32c_intel"}},
		// A post-softdep comes after; a softdep that resolves to nothing
		// is reported with who asked for it.
		{want: []string{"hid_x"}, order: []string{"hid_x", "hid_y"}, missing: "no_such_thing (softdep of hid_x)"},
		// A soft cycle is cut, not an error.
		{want: []string{"sa"}, order: []string{"sb", "sa"}},
	} {
		got, err := ix.Closure(tc.want...)
		if !reflect.DeepEqual(names(got), tc.order) {
			t.Errorf("Closure(%v) = %v, want %v", tc.want, names(got), tc.order)
		}
		switch {
		case tc.missing == "" && err != nil:
			t.Errorf("Closure(%v): %v", tc.want, err)
		case tc.missing != "" && (!errors.Is(err, ErrMissingModules) || !strings.Contains(err.Error(), tc.missing)):
			t.Errorf("Closure(%v) error = %v, want ErrMissingModules naming %q", tc.want, err, tc.missing)
		}
	}
}

func TestLookup(t *testing.T) {
	ix := softIndex()
	for _, tc := range []struct {
		name    string
		mods    []string
		builtin bool
	}{
		{"ext4", []string{"ext4"}, false},
		{"crypto-crc32c", []string{"crc32c_generic", "crc32c_intel"}, false},
		{"crypto-aes", []string{"aesni_intel"}, true},
		{"aes_generic", nil, true},
		{"cpu:type:x86,ven0000fam0006mod003A:feature:,0094,", []string{"crc32c_intel"}, false},
		{"crypto-nothing", nil, false},
	} {
		mods, builtin := ix.Lookup(tc.name)
		if !reflect.DeepEqual(names(mods), tc.mods) || builtin != tc.builtin {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tc.name, names(mods), builtin, tc.mods, tc.builtin)
		}
	}
}

func TestNormalizeAlias(t *testing.T) {
	for in, want := range map[string]string{
		"crypto-crc32c":       "crypto_crc32c",
		"acpi*:PNP0[A-F]:*":   "acpi*:PNP0[A-F]:*",
		"a-b[x-z]c-d":         "a_b[x-z]c_d",
		"no_dash_at_all":      "no_dash_at_all",
		"crypto-xts(aes)-all": "crypto_xts(aes)_all",
	} {
		if got := normalizeAlias(in); got != want {
			t.Errorf("normalizeAlias(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExtractSoftdeps reads softdeps from .modinfo and built-in aliases
// from modules.builtin.modinfo, writes modules.softdep, and reads it all
// back with LoadIndex to the same load order.
func TestExtractSoftdeps(t *testing.T) {
	const v = "6.1.0-test"
	files := map[string][]byte{
		"lib/modules/" + v + "/kernel/fs/ext4.ko":               fakeKO("name=ext4", "depends=jbd2", "softdep=pre: crypto-crc32c"),
		"lib/modules/" + v + "/kernel/fs/jbd2.ko":               fakeKO("name=jbd2", "depends=", "softdep=pre: crypto-crc32c"),
		"lib/modules/" + v + "/kernel/crypto/crc32c_generic.ko": fakeKO("name=crc32c_generic", "alias=crypto-crc32c", "alias=crc32c"),
		"lib/modules/" + v + "/kernel/crypto/xts.ko":            fakeKO("name=xts", "alias=crypto-xts", "softdep=pre: ecb", "softdep=post: late"),
		"lib/modules/" + v + "/kernel/crypto/ecb.ko":            fakeKO("name=ecb", "alias=crypto-ecb"),
		"lib/modules/" + v + "/kernel/late.ko":                  fakeKO("name=late"),
		"lib/modules/" + v + "/modules.builtin":                 []byte("kernel/crypto/aes_generic.ko\n"),
		"lib/modules/" + v + "/modules.builtin.modinfo":         []byte("aes_generic.alias=crypto-aes\x00aes_generic.license=GPL\x00sha256_generic.alias=crypto-sha256\x00"),
		"lib/modules/" + v + "/modules.softdep":                 []byte("softdep ignored pre: from-the-package\n"),
	}
	s := &entry.Slice{Bodies: files}
	for _, p := range sortedKeys(files) {
		s.Headers = append(s.Headers, &entry.Header{Path: p, Type: entry.TypeRegular, Mode: 0o644, Size: int64(len(files[p]))})
	}
	dir := filepath.Join(t.TempDir(), "modules")
	k, err := Extract(s, ExtractOptions{ModulesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"crc32c_generic", "jbd2", "ext4", "ecb", "xts", "late"}
	wanted := []string{"ext4", "crypto-xts", "crypto-aes", "crypto-sha256"}
	order, err := k.Modules.Closure(wanted...)
	if err != nil || !reflect.DeepEqual(names(order), want) {
		t.Fatalf("Closure from .modinfo = %v, %v; want %v", names(order), err, want)
	}
	softdep, err := os.ReadFile(filepath.Join(dir, "modules.softdep"))
	if err != nil {
		t.Fatal(err)
	}
	wantSoftdep := "softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\nsoftdep xts pre: ecb post: late\n"
	if string(softdep) != wantSoftdep {
		t.Errorf("modules.softdep:\n%s\nwant:\n%s", softdep, wantSoftdep)
	}
	ix, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if order, err = ix.Closure(wanted...); err != nil || !reflect.DeepEqual(names(order), want) {
		t.Errorf("Closure from the written files = %v, %v; want %v", names(order), err, want)
	}
	if !ix.Builtin["sha256_generic"] {
		t.Error("modules.builtin.modinfo's modules are not marked built in")
	}
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestParseSoftdepsErrors(t *testing.T) {
	ix := NewIndex()
	if err := ix.ParseSoftdeps(strings.NewReader("alias x y\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("ParseSoftdeps of an alias line = %v, want an error naming line 1", err)
	}
}

func TestCryptoRequests(t *testing.T) {
	for _, tc := range []struct {
		alg  string
		want []string
		err  bool
	}{
		{alg: "xts(aes)", want: []string{"crypto-xts", "crypto-aes"}},
		{alg: "essiv(cbc(aes),sha256)", want: []string{"crypto-essiv", "crypto-cbc", "crypto-aes", "crypto-sha256"}},
		{alg: "crc32c", want: []string{"crypto-crc32c"}},
		{alg: "cbc(cbc(aes))", want: []string{"crypto-cbc", "crypto-aes"}},
		{alg: "xts(aes", err: true},
		{alg: "xts(aes))", err: true},
		{alg: "(aes)", err: true},
		{alg: "", err: true},
		{alg: "xts(aes,)", err: true},
	} {
		got, err := CryptoRequests(tc.alg)
		if tc.err != (err != nil) || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("CryptoRequests(%q) = %q, %v; want %q, error %v", tc.alg, got, err, tc.want, tc.err)
		}
	}
}

func TestDMCryptAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		spec, want string
		err        bool
	}{
		{spec: "aes-xts-plain64", want: "xts(aes)"},
		{spec: "aes-cbc-essiv:sha256", want: "essiv(cbc(aes),sha256)"},
		{spec: "serpent-xts-plain64", want: "xts(serpent)"},
		{spec: "aes", want: "cbc(aes)"},
		{spec: "aes-plain", want: "cbc(aes)"},
		{spec: "capi:xts(aes)-plain64", want: "xts(aes)"},
		{spec: "capi:cbc(aes)", want: "cbc(aes)"},
		{spec: "capi:", err: true},
		{spec: "", err: true},
		{spec: "xts(aes)-plain64", err: true},
	} {
		got, err := DMCryptAlgorithm(tc.spec)
		if tc.err != (err != nil) || got != tc.want {
			t.Errorf("DMCryptAlgorithm(%q) = %q, %v; want %q, error %v", tc.spec, got, err, tc.want, tc.err)
		}
	}
}
