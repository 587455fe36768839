package clone

import (
	"errors"
	"io"

	"byzantium/modules/entry"
)

// Read-ahead of the source stream: a few chunks of a MiB, what keeps
// reading and hashing the source going while the previous chunk is
// written, and bounds the memory a clone takes whatever the file sizes.
const (
	chunkSize = 1 << 20
	chunks    = 4
)

// readahead runs an entry stream in a goroutine of its own, up to chunks
// chunks ahead of its reader: reading and hashing the source overlaps
// with writing the target. Close stops the goroutine.
type readahead struct {
	items   chan item
	free    chan []byte
	stop    chan struct{}
	done    chan struct{}
	data    []byte        // unread part of the current chunk
	buf     []byte        // the chunk data is in, to give back
	pending *entry.Header // met by Read past a body, for Next
	err     error         // sticky
}

// item is a header, a chunk of the current file's body, or an error.
type item struct {
	hdr  *entry.Header
	data []byte
	err  error
}

func newReadahead(r entry.Reader) *readahead {
	ra := &readahead{items: make(chan item, chunks), free: make(chan []byte, chunks),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range chunks {
		ra.free <- make([]byte, chunkSize)
	}
	go ra.run(r)
	return ra
}

func (ra *readahead) send(it item) bool {
	select {
	case ra.items <- it:
		return true
	case <-ra.stop:
		return false
	}
}

func (ra *readahead) run(r entry.Reader) {
	defer close(ra.done)
	for {
		h, err := r.Next()
		if err != nil {
			ra.send(item{err: err})
			return
		}
		if !ra.send(item{hdr: h}) {
			return
		}
		if h.Type != entry.TypeRegular {
			continue
		}
		for left := h.Size; left > 0; {
			var buf []byte
			select {
			case buf = <-ra.free:
			case <-ra.stop:
				return
			}
			n, err := io.ReadFull(r, buf[:min(int64(len(buf)), left)])
			left -= int64(n)
			if n > 0 && !ra.send(item{data: buf[:n]}) {
				return
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				ra.send(item{err: err})
				return
			}
		}
	}
}

// next takes the next item, giving back the previous chunk.
func (ra *readahead) next() item {
	if ra.buf != nil {
		ra.free <- ra.buf[:cap(ra.buf)]
		ra.buf, ra.data = nil, nil
	}
	it := <-ra.items
	if it.err != nil {
		ra.err = it.err
	}
	return it
}

func (ra *readahead) Next() (*entry.Header, error) {
	if h := ra.pending; h != nil {
		ra.pending = nil
		return h, nil
	}
	for ra.err == nil {
		it := ra.next()
		switch {
		case it.err != nil:
			return nil, it.err
		case it.hdr != nil:
			return it.hdr, nil
		default: // a chunk of a body the caller did not read: skip it
			ra.buf = it.data
		}
	}
	return nil, ra.err
}

func (ra *readahead) Read(p []byte) (int, error) {
	if ra.pending != nil {
		return 0, io.EOF
	}
	if len(ra.data) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		it := ra.next()
		switch {
		case it.err != nil:
			return 0, it.err
		case it.hdr != nil: // past the body: the header waits for Next
			ra.pending = it.hdr
			return 0, io.EOF
		}
		ra.buf, ra.data = it.data, it.data
	}
	n := copy(p, ra.data)
	ra.data = ra.data[n:]
	return n, nil
}

// Close stops the goroutine and waits for it.
func (ra *readahead) Close() {
	close(ra.stop)
	<-ra.done
}
