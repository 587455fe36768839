package deb

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The ar format as dpkg writes it: the global magic, then for each member a
// 60-byte header and the body, padded with '\n' to an even length.
const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
)

// arReader reads the members of an ar archive in order from a plain
// io.Reader: no seeking, no buffering beyond one header.
type arReader struct {
	r    io.Reader
	body *io.LimitedReader // the current member's unread body
	pad  bool              // one padding byte follows the current body
}

func newArReader(r io.Reader) (*arReader, error) {
	var magic [len(arMagic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != arMagic {
		return nil, fmt.Errorf("%w: no ar archive magic", ErrNotDeb)
	}
	return &arReader{r: r}, nil
}

// next skips what is left of the current member and returns the name and
// size of the next one, whose body is then read through ar.body. It returns
// io.EOF after the last member.
func (a *arReader) next() (name string, size int64, err error) {
	if a.body != nil {
		if _, err := io.Copy(io.Discard, a.body); err != nil {
			return "", 0, err
		}
		if a.body.N > 0 {
			return "", 0, io.ErrUnexpectedEOF
		}
	}
	if a.pad {
		var b [1]byte
		if _, err := io.ReadFull(a.r, b[:]); err != nil {
			return "", 0, noEOF(err)
		}
	}
	var h [arHeaderSize]byte
	if n, err := io.ReadFull(a.r, h[:]); err != nil {
		if n == 0 && err == io.EOF {
			return "", 0, io.EOF
		}
		return "", 0, noEOF(err)
	}
	if string(h[58:60]) != "`\n" {
		return "", 0, fmt.Errorf("%w: bad ar member header %q", ErrNotDeb, h[:])
	}
	// GNU ar ends names with '/'; dpkg pads them with spaces.
	name = strings.TrimSuffix(strings.TrimRight(string(h[0:16]), " "), "/")
	size, err = strconv.ParseInt(strings.TrimRight(string(h[48:58]), " "), 10, 64)
	if err != nil || size < 0 {
		return "", 0, fmt.Errorf("%w: ar member %q has a bad size %q", ErrNotDeb, name, h[48:58])
	}
	a.body = &io.LimitedReader{R: a.r, N: size}
	a.pad = size%2 == 1
	return name, size, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
