package babel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Header is what babeld says when a client connects.
type Header struct {
	Protocol string // "BABEL 1.0"
	Version  string // "babeld-1.12.1"
	Host     string
	MyID     RouterID
}

// Client is a connection to babeld's local socket.
type Client struct {
	conn   net.Conn
	r      *bufio.Reader
	Header Header
}

// Timeout bounds each exchange with babeld (header, dump); a monitor
// waits for events without one.
const Timeout = 5 * time.Second

// maxHeaderLines bounds the informational lines before the header's ok.
const maxHeaderLines = 16

// Dial connects to babeld's socket and reads its header.
func Dial(ctx context.Context, path string) (*Client, error) {
	// A babeld that is not accepting (its few local-socket slots taken,
	// its backlog of 2 full) leaves connect hanging: bound it.
	d := net.Dialer{Timeout: Timeout}
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("babel: connecting to %s: %w", path, err)
	}
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, MaxLine+1)}
	if err := c.readHeader(); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// NewClient reads the header from an established connection (tests use
// a pipe).
func NewClient(conn net.Conn) (*Client, error) {
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, MaxLine+1)}
	if err := c.readHeader(); err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// line reads one line of at most MaxLine bytes.
func (c *Client) line() (string, error) { return readLine(c.r) }

// readLine reads one line of at most MaxLine bytes from r (a reader of
// MaxLine+1 bytes).
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: line over %d bytes", ErrSyntax, MaxLine)
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("babel: reading socket: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (c *Client) readHeader() error {
	c.conn.SetDeadline(time.Now().Add(Timeout))
	defer c.conn.SetDeadline(time.Time{})
	first, err := c.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(first, "BABEL ") {
		return fmt.Errorf("%w: not a babeld socket (first line %q)", ErrSyntax, first)
	}
	c.Header.Protocol = first
	for i := 0; ; i++ {
		if i >= maxHeaderLines {
			return fmt.Errorf("%w: header too long", ErrSyntax)
		}
		l, err := c.line()
		if err != nil {
			return err
		}
		if l == "ok" {
			return nil
		}
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "version":
			c.Header.Version = v
		case "host":
			c.Header.Host = v
		case "my-id":
			if c.Header.MyID, err = ParseRouterID(v); err != nil {
				return err
			}
		}
	}
}

// Dump asks for babeld's tables and returns them.
func (c *Client) Dump() (State, error) {
	c.conn.SetDeadline(time.Now().Add(Timeout))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.conn, "dump\n"); err != nil {
		return State{}, fmt.Errorf("babel: dump: %w", err)
	}
	var s State
	err := c.read(func(ev Event) error {
		if err := s.Apply(ev); err != nil && !errors.Is(err, ErrLimit) {
			return err
		}
		return nil
	}, true)
	return s, err
}

// How a monitor reads. babeld writes to its local clients without
// blocking, one write per line: when a client's socket buffer is full it
// waits 100 ms, tries once more, then shuts the connection down (local.c,
// write_timeout) — and it is stalled for those 100 ms, routing nothing.
// A Unix socket holds only a few hundred of babeld's one-line writes, and
// a hundred-node mesh dumps about two thousand routes: a reader that parses
// as it reads, on a loaded machine, was cut off in the middle of its
// initial dump, reconnected for a full dump again, and kept a hundred
// babelds busy writing dumps (ci/meshsim, 100 nodes). So Monitor drains
// the socket in a goroutine that does nothing but read, in large reads,
// into a bounded backlog that the parser works through.
const (
	// MaxBacklog bounds what a monitor has read and not yet handled. A
	// parser that far behind gives up (ErrBehind) and the caller
	// reconnects: its picture is stale anyway.
	MaxBacklog = 4 << 20
	// MonitorIdle is how long a monitor waits in silence before it asks
	// babeld for a sign of life (an empty line, answered "ok"); babeld
	// has Timeout more to answer.
	MonitorIdle = 30 * time.Second

	drainChunk = 64 << 10
)

// idle and pingWait are MonitorIdle and Timeout; tests shorten them.
var idle, pingWait = MonitorIdle, Timeout

// ErrBehind says a monitor's parser fell MaxBacklog bytes behind babeld.
var ErrBehind = errors.New("babel: monitor fell behind babeld")

// Monitor asks for babeld's tables and every change after: fn gets each
// event, with synced true from the first "ok" on (the initial dump is
// complete; fn gets an empty Event for it, once). It returns when the
// connection fails, babeld falls silent, the reader falls behind, or ctx
// ends.
func (c *Client) Monitor(ctx context.Context, fn func(ev Event, synced bool)) error {
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()
	c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := io.WriteString(c.conn, "monitor\n"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("babel: monitor: %w", err)
	}
	d := newDrain()
	done := make(chan struct{})
	go func() { defer close(done); c.drain(ctx, d) }()
	defer func() {
		// Unblock the drain's read and wait for it: no goroutine
		// outlives the call.
		c.conn.SetDeadline(time.Now())
		<-done
	}()
	r := bufio.NewReaderSize(d, MaxLine+1)
	synced := false
	for {
		l, err := readLine(r)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		switch l {
		case "ok":
			// The first ends the initial dump; later ones answer
			// the drain's empty lines.
			if !synced {
				synced = true
				fn(Event{}, true)
			}
			continue
		case "no", "bad":
			return fmt.Errorf("babel: monitor refused: %s", l)
		}
		ev, err := ParseLine(l)
		if err != nil {
			return err
		}
		fn(ev, synced)
	}
}

// drain is the backlog between a monitor's reader and its parser: the
// bytes read and not yet parsed, then the reader's error.
type drain struct {
	mu      sync.Mutex
	cond    sync.Cond
	pending []byte // read, waiting for the parser
	cur     []byte // the parser's share, taken whole from pending
	err     error  // the reader's, once it stopped
	done    bool
}

func newDrain() *drain {
	d := &drain{}
	d.cond.L = &d.mu
	return d
}

// put adds bytes read; false when that passes MaxBacklog.
func (d *drain) put(b []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending)+len(b) > MaxBacklog {
		return false
	}
	d.pending = append(d.pending, b...)
	d.cond.Signal()
	return true
}

func (d *drain) stop(err error) {
	d.mu.Lock()
	d.err, d.done = err, true
	d.cond.Signal()
	d.mu.Unlock()
}

// Read gives the parser the backlog's bytes in order.
func (d *drain) Read(p []byte) (int, error) {
	if len(d.cur) == 0 {
		d.mu.Lock()
		for len(d.pending) == 0 && !d.done {
			d.cond.Wait()
		}
		if len(d.pending) == 0 {
			err := d.err
			d.mu.Unlock()
			return 0, err
		}
		// Swap the buffers: the reader appends to the parser's old,
		// emptied one.
		d.cur, d.pending = d.pending, d.cur[:0]
		d.mu.Unlock()
	}
	n := copy(p, d.cur)
	d.cur = d.cur[n:]
	return n, nil
}

// drain reads the socket into d until an error, in reads as large as
// babeld has bytes for, and never waits for the parser: a full backlog
// closes the connection (babeld's next write fails at once instead of
// stalling it). A silence of MonitorIdle gets an empty line; one of
// Timeout more ends the monitor.
func (c *Client) drain(ctx context.Context, d *drain) {
	var err error
	defer func() { d.stop(err) }()
	buf := make([]byte, drainChunk)
	pinged := false
	for {
		wait := idle
		if pinged {
			wait = pingWait
		}
		c.conn.SetReadDeadline(time.Now().Add(wait))
		// Checked after the deadline is set: ctx's AfterFunc sets
		// its own after ctx ends, so a cancel is never overwritten.
		if err = ctx.Err(); err != nil {
			return
		}
		var n int
		n, err = c.r.Read(buf)
		if n > 0 {
			pinged = false
			if !d.put(buf[:n]) {
				c.conn.Close()
				err = ErrBehind
				return
			}
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || pinged || ctx.Err() != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
				err = fmt.Errorf("babel: babeld silent for %v after a ping: %w", pingWait, err)
			}
			return
		}
		c.conn.SetWriteDeadline(time.Now().Add(pingWait))
		if _, err = io.WriteString(c.conn, "\n"); err != nil {
			err = fmt.Errorf("babel: pinging babeld: %w", err)
			return
		}
		pinged = true
	}
}

// read reads events until "ok" (one reply) when untilOK.
func (c *Client) read(fn func(Event) error, untilOK bool) error {
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		switch {
		case l == "ok" && untilOK:
			return nil
		case l == "bad" || l == "no" || strings.HasPrefix(l, "no "):
			return fmt.Errorf("babel: request refused: %s", l)
		}
		ev, err := ParseLine(l)
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}
