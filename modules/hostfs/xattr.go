package hostfs

import (
	"bytes"
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// skipXattr reports whether an xattr is left out of streams (see the
// package comment): system.* holds ACLs in the kernel's own encoding.
func skipXattr(name string) bool { return strings.HasPrefix(name, "system.") }

// readXattrs returns the xattrs of p itself (not a symlink's target), or nil
// when it has none or the filesystem has no xattrs at all.
func readXattrs(p string) (map[string][]byte, error) {
	var names []byte
	for {
		size, err := unix.Llistxattr(p, nil)
		if errors.Is(err, unix.ENOTSUP) || (err == nil && size == 0) {
			return nil, nil
		}
		if err != nil {
			return nil, pathErr(p, "llistxattr", err)
		}
		names = make([]byte, size)
		n, err := unix.Llistxattr(p, names)
		if errors.Is(err, unix.ERANGE) {
			continue // the list grew between the two calls
		}
		if err != nil {
			return nil, pathErr(p, "llistxattr", err)
		}
		names = names[:n]
		break
	}
	var m map[string][]byte
	for _, name := range bytes.Split(bytes.TrimRight(names, "\x00"), []byte{0}) {
		if len(name) == 0 || skipXattr(string(name)) {
			continue
		}
		v, err := getXattr(p, string(name))
		if errors.Is(err, unix.ENODATA) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, pathErr(p, "lgetxattr "+string(name), err)
		}
		if m == nil {
			m = map[string][]byte{}
		}
		m[string(name)] = v
	}
	return m, nil
}

func getXattr(p, name string) ([]byte, error) {
	for {
		size, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, v)
		if errors.Is(err, unix.ERANGE) {
			continue // the value grew between the two calls
		}
		if err != nil {
			return nil, err
		}
		return v[:n], nil
	}
}
