package kernel

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"strings"
)

// Modinfo is what a .ko file says about itself in its .modinfo section:
// the same fields modinfo(8) prints. Debian's linux-image packages ship no
// modules.dep (depmod runs in postinst), so this is where dependencies come
// from when we build an index straight from a package.
type Modinfo struct {
	// Name is the module's name as the kernel knows it ("nls_iso8859_1").
	Name string
	// Depends lists the modules that must be loaded first.
	Depends []string
	// Aliases are the patterns (device ids, "fs-iso9660") that name it.
	Aliases []string
	// SoftPre and SoftPost are its soft dependencies (MODULE_SOFTDEP):
	// modules or aliases ("crypto-crc32c") modprobe loads before and
	// after it. They name what the module asks the kernel for at run
	// time, which no symbol dependency records: ext4 mounts nothing
	// without a crc32c provider.
	SoftPre, SoftPost []string
	// Vermagic is the kernel release and build flags it was built for.
	Vermagic string
}

// ReadModinfo parses the .modinfo section of a kernel module ELF object.
// Compressed modules (.ko.xz, .ko.zst) must be decompressed first.
func ReadModinfo(r io.ReaderAt) (*Modinfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("reading ELF: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section: not a kernel module")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	mi := &Modinfo{}
	for _, field := range bytes.Split(data, []byte{0}) {
		key, value, ok := strings.Cut(string(field), "=")
		if !ok {
			continue
		}
		switch key {
		case "name":
			mi.Name = CanonicalName(value)
		case "depends":
			for _, d := range strings.Split(value, ",") {
				if d != "" {
					mi.Depends = append(mi.Depends, CanonicalName(d))
				}
			}
		case "alias":
			mi.Aliases = append(mi.Aliases, value)
		case "vermagic":
			mi.Vermagic = value
		case "softdep":
			pre, post := ParseSoftdep(value)
			mi.SoftPre = append(mi.SoftPre, pre...)
			mi.SoftPost = append(mi.SoftPost, post...)
		}
	}
	return mi, nil
}

// ParseSoftdep splits a softdep value, "pre: a b post: c", into the names
// to load before and after the module, as modprobe.d(5) reads it. Names
// before any "pre:" or "post:" are ignored, as modprobe ignores them.
func ParseSoftdep(value string) (pre, post []string) {
	var cur *[]string
	for _, f := range strings.Fields(value) {
		switch f {
		case "pre:":
			cur = &pre
		case "post:":
			cur = &post
		default:
			if cur != nil {
				*cur = append(*cur, f)
			}
		}
	}
	return pre, post
}

// CanonicalName turns a module name or file name into the form the kernel
// uses: modprobe treats '-' and '_' alike, the kernel keeps '_'. A path and
// a .ko suffix (compressed or not) are dropped: "kernel/fs/nls/nls_iso8859-1.ko"
// and "nls_iso8859-1" both give "nls_iso8859_1".
func CanonicalName(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if t, ok := strings.CutSuffix(s, ext); ok {
			s = t
			break
		}
	}
	return strings.ReplaceAll(s, "-", "_")
}
