package babel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
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
func (c *Client) line() (string, error) {
	b, err := c.r.ReadSlice('\n')
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

// Monitor asks for babeld's tables and every change after: fn gets each
// event, with synced true from the first "ok" on (the initial dump is
// complete). It returns when the connection fails or ctx ends.
func (c *Client) Monitor(ctx context.Context, fn func(ev Event, synced bool)) error {
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(c.conn, "monitor\n"); err != nil {
		return fmt.Errorf("babel: monitor: %w", err)
	}
	synced := false
	for {
		l, err := c.line()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		switch l {
		case "ok":
			synced = true
			fn(Event{}, true)
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
