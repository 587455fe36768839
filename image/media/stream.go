package media

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"byzantium/modules/entry"
)

// ErrChanged reports a host file whose content changed between Plan and
// the stream: the manifest would lie about it.
var ErrChanged = errors.New("media: input changed after it was hashed")

// stream is the entry.Reader of a Tree. Host files are opened on the first
// Read of their body and closed at the next Next, so at most one is open.
type stream struct {
	nodes []*node
	i     int
	cur   *node
	body  io.Reader
	file  io.Closer
	h     hash.Hash
	left  int64
	err   error // sticky
}

func (s *stream) Next() (*entry.Header, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.closeFile()
	if s.i >= len(s.nodes) {
		return nil, io.EOF
	}
	s.cur = s.nodes[s.i]
	s.i++
	s.body, s.h, s.left = nil, sha256.New(), s.cur.hdr.Size
	h := s.cur.hdr // a copy: the caller may keep or change it
	return &h, nil
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.cur == nil || s.cur.hdr.Type != entry.TypeRegular || s.left == 0 {
		return 0, io.EOF
	}
	if s.body == nil {
		switch {
		case s.cur.src == "":
			s.body = bytes.NewReader(s.cur.data)
		case s.cur.fsys != nil:
			f, err := s.cur.fsys.Open(s.cur.src)
			if err != nil {
				s.err = fmt.Errorf("media: %s: %w", s.cur.hdr.Path, err)
				return 0, s.err
			}
			s.file, s.body = f, f
		default:
			f, err := os.Open(s.cur.src)
			if err != nil {
				s.err = fmt.Errorf("media: %s: %w", s.cur.hdr.Path, err)
				return 0, s.err
			}
			s.file, s.body = f, f
		}
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.body.Read(p)
	s.h.Write(p[:n])
	s.left -= int64(n)
	switch {
	case s.left == 0:
		// Checked at the last byte, not at EOF: readers bounded by the
		// header's size (entry.Copy) never ask for EOF.
		if sum := hex.EncodeToString(s.h.Sum(nil)); sum != s.cur.sum {
			s.err = fmt.Errorf("%w: %s (%s): sha256 %s, planned %s", ErrChanged, s.cur.hdr.Path, s.cur.src, sum, s.cur.sum)
			return n, s.err
		}
		return n, nil
	case err == io.EOF:
		s.err = fmt.Errorf("%w: %s (%s) is %d bytes short: %w", ErrChanged, s.cur.hdr.Path, s.cur.src, s.left, io.ErrUnexpectedEOF)
		return n, s.err
	case err != nil:
		s.err = fmt.Errorf("media: %s: reading %s: %w", s.cur.hdr.Path, s.cur.src, err)
		return n, s.err
	}
	return n, nil
}

func (s *stream) closeFile() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
}
