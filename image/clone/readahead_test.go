package clone

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"byzantium/modules/entry"
)

// TestReadahead: the stream comes through whole and in order, bodies
// larger than the buffers included; a body left unread is skipped; a
// read past a body gives io.EOF and the next header still comes; an
// error of the source arrives where it happened.
func TestReadahead(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), (chunks*chunkSize+12345)/16)
	s := &entry.Slice{
		Headers: []*entry.Header{
			{Path: "d", Type: entry.TypeDir},
			{Path: "d/big", Type: entry.TypeRegular, Size: int64(len(big))},
			{Path: "d/skipped", Type: entry.TypeRegular, Size: 3},
			{Path: "d/small", Type: entry.TypeRegular, Size: 5},
			{Path: "d/empty", Type: entry.TypeRegular},
		},
		Bodies: map[string][]byte{"d/big": big, "d/skipped": []byte("xyz"), "d/small": []byte("hello")},
	}
	ra := newReadahead(s)
	defer ra.Close()
	next := func(want string) {
		t.Helper()
		h, err := ra.Next()
		if err != nil || h.Path != want {
			t.Fatalf("Next = %v, %v; want %s", h, err, want)
		}
	}
	next("d")
	next("d/big")
	got, err := io.ReadAll(io.LimitReader(ra, int64(len(big))))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big: %d bytes, %v", len(got), err)
	}
	next("d/skipped")
	next("d/small")
	got, err = io.ReadAll(ra) // reads to io.EOF, past the body
	if err != nil || string(got) != "hello" {
		t.Fatalf("small: %q, %v", got, err)
	}
	next("d/empty")
	if _, err := ra.Next(); err != io.EOF {
		t.Fatalf("after the last entry: %v", err)
	}

	bad := errors.New("source broke")
	ra2 := newReadahead(&failing{Slice: entry.Slice{Headers: []*entry.Header{{Path: "f", Type: entry.TypeRegular, Size: 10}},
		Bodies: map[string][]byte{"f": []byte("0123456789")}}, err: bad})
	defer ra2.Close()
	if _, err := ra2.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(io.LimitReader(ra2, 10)); !errors.Is(err, bad) {
		t.Errorf("reading a failing body: %v", err)
	}
	if _, err := ra2.Next(); !errors.Is(err, bad) {
		t.Errorf("Next after the failure: %v", err)
	}
}

// failing fails every body read after the first 4 bytes.
type failing struct {
	entry.Slice
	err error
	n   int
}

func (f *failing) Read(p []byte) (int, error) {
	if f.n >= 4 {
		return 0, f.err
	}
	n, err := f.Slice.Read(p[:min(len(p), 4-f.n)])
	f.n += n
	return n, err
}

// TestReadaheadClose: closing while the producer waits for room ends it.
func TestReadaheadClose(t *testing.T) {
	big := make([]byte, (chunks+3)*chunkSize)
	ra := newReadahead(&entry.Slice{Headers: []*entry.Header{{Path: "f", Type: entry.TypeRegular, Size: int64(len(big))}},
		Bodies: map[string][]byte{"f": big}})
	if _, err := ra.Next(); err != nil {
		t.Fatal(err)
	}
	ra.Close() // returns only once the goroutine is gone
}
