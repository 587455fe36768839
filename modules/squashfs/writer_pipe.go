package squashfs

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// The data pipeline. The goroutine calling Write fills block buffers and
// hands each to two queues: work, drained by the compression workers in any
// order, and order, drained by one sink goroutine in submission order. The
// sink waits for each job's compression to finish and writes the result, so
// the output is the same whatever the number of workers. A fixed set of
// jobs, each owning its buffers, circulates through free: it bounds the
// memory in flight and makes block buffers reusable without allocation.

// Job kinds.
const (
	jobData   = iota + 1 // a full data block of a file
	jobFrag              // a fragment block
	jobRewind            // drop the blocks of a duplicate file just written
)

type wjob struct {
	kind  uint8
	in    []byte // uncompressed block (cap = block size)
	out   []byte // compressed block
	data  *wdata // jobData, jobRewind
	first bool   // first block of its file: the sink records the start
	// Set by the worker.
	sparse bool // all zero: not stored
	raw    bool // compression did not shrink it: store in
	err    error
	done   chan struct{}
}

type writePipe struct {
	bs    int
	out   *writeOut
	free  chan *wjob
	work  chan *wjob
	order chan *wjob
	wg    sync.WaitGroup
	sunk  chan struct{}
	// comps are the workers' compressors; once the pipe is finished the
	// metadata tables borrow the first rather than build another (a best
	// zstd encoder holds some 34 MB of match tables).
	comps []writeCompressor

	frags int // fragment blocks submitted so far (producer side)

	// Owned by the sink until sunk is closed.
	fragTable []byte // 16 bytes per fragment block: start, size, unused

	mu   sync.Mutex
	fail error
}

func newWritePipe(codec *writeCodec, workers, bs int, out *writeOut) (*writePipe, error) {
	// Two jobs are held by the producer (the block and the fragment being
	// filled); the rest keep every worker busy with one queued behind it
	// and give the sink slack while it writes.
	n := 2*workers + 4
	p := &writePipe{
		bs:    bs,
		out:   out,
		free:  make(chan *wjob, n),
		work:  make(chan *wjob, n),
		order: make(chan *wjob, n),
		sunk:  make(chan struct{}),
	}
	for range n {
		p.free <- &wjob{done: make(chan struct{}, 1)}
	}
	p.comps = make([]writeCompressor, workers)
	for i := range p.comps {
		c, err := codec.newCompressor()
		if err != nil {
			return nil, err
		}
		p.comps[i] = c
	}
	for _, c := range p.comps {
		p.wg.Add(1)
		go p.worker(c)
	}
	go p.sink()
	return p, nil
}

func (p *writePipe) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fail
}

func (p *writePipe) setErr(err error) {
	p.mu.Lock()
	if p.fail == nil {
		p.fail = err
	}
	p.mu.Unlock()
}

// take returns a free job with an empty input buffer, waiting while all are
// in flight.
func (p *writePipe) take() (*wjob, error) {
	if err := p.err(); err != nil {
		return nil, err
	}
	j := <-p.free
	if cap(j.in) < p.bs {
		j.in = make([]byte, 0, p.bs)
	}
	j.in = j.in[:0]
	return j, nil
}

func (p *writePipe) submitData(j *wjob, d *wdata, first bool) error {
	j.kind, j.data, j.first = jobData, d, first
	p.order <- j
	p.work <- j
	return p.err()
}

func (p *writePipe) submitFrag(j *wjob) error {
	j.kind = jobFrag
	p.frags++
	p.order <- j
	p.work <- j
	return p.err()
}

func (p *writePipe) submitRewind(d *wdata) error {
	j, err := p.take()
	if err != nil {
		return err
	}
	j.kind, j.data = jobRewind, d
	p.order <- j
	return nil
}

func (p *writePipe) worker(c writeCompressor) {
	defer p.wg.Done()
	for j := range p.work {
		if j.kind == jobData && writeIsZero(j.in) {
			j.sparse = true
		} else {
			j.out, j.err = c.compress(j.out[:0], j.in)
			j.raw = len(j.out) >= len(j.in)
		}
		j.done <- struct{}{}
	}
}

func (p *writePipe) sink() {
	defer close(p.sunk)
	for j := range p.order {
		if j.kind != jobRewind {
			<-j.done
		}
		if j.err != nil {
			p.setErr(j.err)
		}
		switch j.kind {
		case jobData:
			d := j.data
			if j.first {
				d.start = uint64(p.out.pos())
			}
			switch {
			case j.sparse:
				d.blocks = append(d.blocks, 0)
				d.sparse += uint64(p.bs)
			case j.raw:
				d.blocks = append(d.blocks, uint32(len(j.in))|dataUncompressed)
				p.out.write(j.in)
			default:
				d.blocks = append(d.blocks, uint32(len(j.out)))
				p.out.write(j.out)
			}
		case jobFrag:
			size := uint32(len(j.out))
			b := j.out
			if j.raw {
				size, b = uint32(len(j.in))|dataUncompressed, j.in
			}
			p.fragTable = le64(p.fragTable, uint64(p.out.pos()))
			p.fragTable = le32(p.fragTable, size)
			p.fragTable = le32(p.fragTable, 0)
			p.out.write(b)
		case jobRewind:
			p.out.rewind(int64(j.data.start))
		}
		if p.out.err != nil {
			p.setErr(p.out.err)
		}
		j.kind, j.data, j.first, j.sparse, j.raw, j.err = 0, nil, false, false, false, nil
		p.free <- j
	}
}

// finish waits for every submitted block to be written.
func (p *writePipe) finish() error {
	close(p.order)
	close(p.work)
	p.wg.Wait()
	<-p.sunk
	if err := p.err(); err != nil {
		return err
	}
	return nil
}

// abort stops the goroutines after an error.
func (p *writePipe) abort() { _ = p.finish() }

// writeZeros is compared against to find sparse blocks; reading it maps
// only the kernel's zero page.
var writeZeros [64 << 10]byte

func writeIsZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(writeZeros))
		if !bytes.Equal(b[:n], writeZeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// writeOut buffers the image on its way to the WriteSeeker and remembers
// positions relative to the image start. Its error is sticky.
type writeOut struct {
	w      io.WriteSeeker
	base   int64  // offset of the image in w
	buf    []byte // pending bytes, which belong at bufAt
	bufAt  int64
	maxEnd int64 // furthest offset handed to w
	err    error
}

const writeOutBuf = 1 << 20

func newWriteOut(w io.WriteSeeker) (*writeOut, error) {
	base, err := w.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("squashfs: seek output: %w", err)
	}
	return &writeOut{w: w, base: base, buf: make([]byte, 0, writeOutBuf)}, nil
}

func (o *writeOut) pos() int64 { return o.bufAt + int64(len(o.buf)) }

func (o *writeOut) write(p []byte) {
	if o.err != nil {
		return
	}
	if len(o.buf)+len(p) > cap(o.buf) {
		o.flush()
		if len(p) >= cap(o.buf) {
			o.direct(p)
			return
		}
	}
	o.buf = append(o.buf, p...)
}

func (o *writeOut) direct(p []byte) {
	if o.err != nil {
		return
	}
	if _, err := o.w.Write(p); err != nil {
		o.err = fmt.Errorf("squashfs: write image: %w", err)
		return
	}
	o.bufAt += int64(len(p))
	o.maxEnd = max(o.maxEnd, o.bufAt)
}

func (o *writeOut) flush() {
	b := o.buf
	o.buf = o.buf[:0]
	o.direct(b)
}

// rewind moves the write position back to off, discarding what follows. It
// is cheap while off is still in the buffer.
func (o *writeOut) rewind(off int64) {
	if o.err != nil {
		return
	}
	if off >= o.bufAt {
		o.buf = o.buf[:off-o.bufAt]
		return
	}
	o.flush()
	o.seek(off)
}

func (o *writeOut) seek(off int64) {
	if o.err != nil {
		return
	}
	if _, err := o.w.Seek(o.base+off, io.SeekStart); err != nil {
		o.err = fmt.Errorf("squashfs: seek image: %w", err)
		return
	}
	o.bufAt = off
}

// writeAt writes p at off (which must be before the buffer) and returns to
// the end.
func (o *writeOut) writeAt(p []byte, off int64) {
	end := o.pos()
	o.flush()
	o.seek(off)
	o.direct(p)
	o.seek(end)
}

// finish pads the image with zeros to a multiple of Padding and drops
// anything written past that by duplicate files the sink rewound over. It
// truncates when w can; otherwise it zeroes the leftovers.
func (o *writeOut) finish() error {
	end := (o.pos() + Padding - 1) / Padding * Padding
	o.write(make([]byte, end-o.pos()))
	o.flush()
	if o.err == nil && o.maxEnd > end {
		if t, ok := o.w.(interface{ Truncate(int64) error }); ok {
			if err := t.Truncate(o.base + end); err != nil {
				o.err = fmt.Errorf("squashfs: truncate image: %w", err)
			}
		} else {
			stale := (o.maxEnd + Padding - 1) / Padding * Padding
			o.write(make([]byte, stale-end))
			o.flush()
		}
	}
	return o.err
}
