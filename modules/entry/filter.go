package entry

import (
	"encoding/binary"
	"hash"
	"sync/atomic"
	"time"
)

// ClampModTime returns a Reader whose entries have no modification time
// later than t, the reproducible-builds rule for SOURCE_DATE_EPOCH: files
// made during the build get the epoch, older files keep their own time.
// Headers are copied, never changed in place.
func ClampModTime(r Reader, t time.Time) Reader {
	return &clamp{Reader: r, t: t}
}

type clamp struct {
	Reader
	t time.Time
}

func (c *clamp) Next() (*Header, error) {
	h, err := c.Reader.Next()
	if err != nil || !h.ModTime.After(c.t) {
		return h, err
	}
	cp := *h
	cp.ModTime = c.t
	return &cp, nil
}

// Counter counts what flows through a Reader; its fields may be read from
// another goroutine (a progress display) while the stream runs.
type Counter struct {
	Entries atomic.Int64
	Bytes   atomic.Int64
}

// Count returns a Reader that adds every entry and body byte of r to c.
func Count(r Reader, c *Counter) Reader { return &counting{r: r, c: c} }

type counting struct {
	r Reader
	c *Counter
}

func (n *counting) Next() (*Header, error) {
	h, err := n.r.Next()
	if err == nil {
		n.c.Entries.Add(1)
	}
	return h, err
}

func (n *counting) Read(p []byte) (int, error) {
	m, err := n.r.Read(p)
	n.c.Bytes.Add(int64(m))
	return m, err
}

// Hash returns a Reader that feeds a canonical encoding of every header and
// body of r into h: the digest of a directory source, which has no bytes of
// its own to hash. Two streams with the same entries in the same order give
// the same digest wherever they were read.
func Hash(r Reader, h hash.Hash) Reader { return &hashing{r: r, h: h} }

type hashing struct {
	r Reader
	h hash.Hash
}

func (s *hashing) Next() (*Header, error) {
	hd, err := s.r.Next()
	if err != nil {
		return hd, err
	}
	var b []byte
	str := func(v string) {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	str(hd.Path)
	b = append(b, byte(hd.Type))
	for _, v := range []uint64{uint64(hd.Mode), uint64(hd.UID), uint64(hd.GID), uint64(hd.ModTime.Unix()),
		uint64(hd.Size), uint64(hd.Devmajor), uint64(hd.Devminor), uint64(len(hd.Xattrs))} {
		b = binary.AppendUvarint(b, v)
	}
	str(hd.Linkname)
	for _, k := range hd.XattrNames() {
		str(k)
		str(string(hd.Xattrs[k]))
	}
	s.h.Write(b)
	return hd, nil
}

func (s *hashing) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	return n, err
}

// Prefix returns a Reader whose entries are those of r moved under dir:
// "." becomes dir itself, "a/b" becomes "dir/a/b", and hardlink targets
// move with them. Headers are copied, never changed in place.
func Prefix(r Reader, dir string) Reader { return &prefix{Reader: r, dir: Clean(dir)} }

type prefix struct {
	Reader
	dir string
}

func (p *prefix) Next() (*Header, error) {
	h, err := p.Reader.Next()
	if err != nil || p.dir == "." {
		return h, err
	}
	cp := *h
	cp.Path = p.join(h.Path)
	if h.Type == TypeHardlink {
		cp.Linkname = p.join(h.Linkname)
	}
	return &cp, nil
}

func (p *prefix) join(path string) string {
	if path == "." {
		return p.dir
	}
	return p.dir + "/" + path
}
