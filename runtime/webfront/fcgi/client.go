package fcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
)

// DefaultMaxHeaderBytes bounds a response's CGI headers when
// Request.MaxHeaderBytes is 0.
const DefaultMaxHeaderBytes = 64 << 10

// Request is one request for a FastCGI responder.
type Request struct {
	// Params are the CGI/1.1 meta-variables (REQUEST_METHOD,
	// SCRIPT_FILENAME, HTTP_*, ...), sent in this order.
	Params []Param
	// Body is sent as FCGI_STDIN, streamed as it is read; nil sends an
	// empty body. An error reading it ends the request: Do (or the
	// response body's Read) returns it wrapped, so that a caller can
	// tell a client's oversized or stalled body from a broken app.
	Body io.Reader
	// Stderr receives what the application writes to FCGI_STDERR (PHP's
	// warnings and error_log lines); nil discards it. The caller bounds
	// it: the application decides how much it writes.
	Stderr io.Writer
	// MaxHeaderBytes bounds the response's CGI headers; 0 means
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

// Response is the CGI response: its status, its headers (without
// Status) and its body, streamed from the connection.
type Response struct {
	StatusCode int
	Header     http.Header
	// Body is the rest of the application's output. A read returns
	// io.EOF once the application ended the request cleanly, and
	// ErrTruncated, ErrMalformed or ErrOverloaded (wrapped) if it did
	// not: a caller that already sent the headers must then abort its
	// own answer rather than end it as if it were whole. Close closes
	// the connection; it must be called.
	Body io.ReadCloser
}

// BodyError wraps an error reading Request.Body.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "fcgi: reading the request body: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

// Do sends req over conn, which it owns from then on (it is closed by
// the response body's Close, or before Do returns an error), and reads
// the response's headers. The request body is sent while the answer is
// read, so an application that answers early is not held up. ctx
// cancels the whole exchange, the response body included; deadlines on
// conn bound each part.
func Do(ctx context.Context, conn net.Conn, req *Request) (*Response, error) {
	head, err := paramsRecords(req.Params)
	if err != nil {
		conn.Close()
		return nil, err
	}
	head = append(beginRequest(), head...)
	c := &call{conn: conn, done: make(chan struct{})}
	c.stop = context.AfterFunc(ctx, func() { conn.Close() })
	go c.send(head, req.Body)

	max := req.MaxHeaderBytes
	if max <= 0 {
		max = DefaultMaxHeaderBytes
	}
	// Small buffers: reads of a body larger than them go straight to
	// the connection once they are empty.
	s := &stream{br: bufio.NewReader(conn), stderr: req.Stderr}
	// The header reader's read-ahead counts against the limit too, so
	// the limit is raised by one buffer's worth.
	const bufSize = 4 << 10
	lim := &headLimit{r: s, n: int64(max) + bufSize}
	hr := bufio.NewReaderSize(lim, bufSize)
	status, hdr, err := readHead(hr, max)
	if err != nil {
		if s.err != nil && s.err != io.EOF {
			// The stream broke first; the header parser saw the pieces.
			err = s.err
		}
		c.close()
		if c.bodyErr != nil {
			return nil, &BodyError{Err: c.bodyErr}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fcgi: %w", ctx.Err())
		}
		return nil, err
	}
	lim.off = true
	return &Response{StatusCode: status, Header: hdr, Body: &body{r: hr, c: c}}, nil
}

// call is one request's connection and the goroutine sending to it.
type call struct {
	conn    net.Conn
	stop    func() bool
	done    chan struct{} // closed when send returns
	bodyErr error         // set by send before done is closed
	once    sync.Once
}

// send writes the request's records and then its body as FCGI_STDIN.
// A body read error closes the connection, which ends the reading side
// too; a write error does not: the application may have answered and
// closed early, and the reader will see what it sent.
func (c *call) send(head []byte, body io.Reader) {
	defer close(c.done)
	if _, err := c.conn.Write(head); err != nil {
		return
	}
	if body != nil {
		buf := make([]byte, headerLen+maxContent+8)
		chunk := buf[headerLen : headerLen+32<<10]
		for {
			n, rerr := body.Read(chunk)
			if n > 0 {
				rec := appendRecord(buf[:0], typeStdin, chunk[:n])
				if _, err := c.conn.Write(rec); err != nil {
					return
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				c.bodyErr = rerr
				c.conn.Close()
				return
			}
		}
	}
	c.conn.Write(appendRecord(nil, typeStdin, nil))
}

// close closes the connection and waits for send, which may still be
// reading the caller's body: the caller must not return while another
// goroutine reads its request (the body's own deadline bounds the wait).
func (c *call) close() {
	c.once.Do(func() {
		c.stop()
		c.conn.Close()
	})
	<-c.done
}

// body is the response body: the header reader's rest, then the stream.
type body struct {
	r *bufio.Reader
	c *call
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		select {
		case <-b.c.done:
			if b.c.bodyErr != nil {
				err = &BodyError{Err: b.c.bodyErr}
			}
		default:
		}
	}
	return n, err
}

func (b *body) Close() error {
	b.c.close()
	return nil
}

// headLimit fails reads past n bytes until it is turned off (once the
// headers are read).
type headLimit struct {
	r   io.Reader
	n   int64
	off bool
}

var errHeadersTooLarge = fmt.Errorf("%w: the response headers are too large", ErrMalformed)

func (l *headLimit) Read(p []byte) (int, error) {
	if l.off {
		return l.r.Read(p)
	}
	if l.n <= 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// readHead reads the CGI response headers (RFC 3875 section 6.3) and
// works out the status: a Status header, else 302 with a Location,
// else 200.
func readHead(r *bufio.Reader, max int) (int, http.Header, error) {
	tp := textproto.NewReader(r)
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		switch {
		case errors.Is(err, ErrMalformed), errors.Is(err, ErrTruncated), errors.Is(err, ErrOverloaded),
			errors.Is(err, ErrRefused), errors.Is(err, net.ErrClosed):
			return 0, nil, err
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return 0, nil, fmt.Errorf("%w: the answer ended inside its headers", ErrMalformed)
		}
		var pe textproto.ProtocolError
		if errors.As(err, &pe) {
			return 0, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return 0, nil, err
	}
	h := http.Header(mh)
	if len(h) == 0 {
		return 0, nil, fmt.Errorf("%w: the answer has no headers", ErrMalformed)
	}
	for k, vs := range h {
		if !validName(k) {
			return 0, nil, fmt.Errorf("%w: bad header name %q", ErrMalformed, k)
		}
		for _, v := range vs {
			if !validValue(v) {
				return 0, nil, fmt.Errorf("%w: bad value for header %s", ErrMalformed, k)
			}
		}
	}
	status := http.StatusOK
	if v := h.Get("Status"); v != "" {
		code, _, _ := strings.Cut(strings.TrimSpace(v), " ")
		n, err := strconv.Atoi(code)
		if err != nil || len(code) != 3 || n < 200 || n > 599 {
			return 0, nil, fmt.Errorf("%w: bad Status %q", ErrMalformed, v)
		}
		status = n
		h.Del("Status")
	} else if h.Get("Location") != "" {
		status = http.StatusFound
	}
	return status, h, nil
}

// validName reports an RFC 9110 token: textproto accepts names that are
// not (with spaces, for one), which no client should be sent.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validValue refuses control characters but tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// stream reads the application's records and yields FCGI_STDOUT's
// content; FCGI_STDERR goes to stderr; FCGI_END_REQUEST ends it.
type stream struct {
	br        *bufio.Reader
	stderr    io.Writer
	remaining int // of the current stdout record's content
	padding   int // after it
	err       error
}

func (s *stream) Read(p []byte) (int, error) {
	for s.remaining == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.err = s.next()
	}
	if len(p) > s.remaining {
		p = p[:s.remaining]
	}
	n, err := s.br.Read(p)
	s.remaining -= n
	if err != nil {
		s.err = streamErr(err)
		if n == 0 {
			return 0, s.err
		}
	}
	return n, nil
}

// next reads records up to the next stdout content (nil) or the end of
// the request (io.EOF or an error).
func (s *stream) next() error {
	if s.padding > 0 {
		if _, err := s.br.Discard(s.padding); err != nil {
			return streamErr(err)
		}
		s.padding = 0
	}
	var hb [headerLen]byte
	if err := readFull(s.br, hb[:]); err != nil {
		return err
	}
	h := parseHeader(hb[:])
	if h.version != version1 {
		return fmt.Errorf("%w: record version %d", ErrMalformed, h.version)
	}
	if h.id != requestID {
		return fmt.Errorf("%w: record for request %d, not %d", ErrMalformed, h.id, requestID)
	}
	cl, pl := int(h.contentLength), int(h.paddingLength)
	switch h.typ {
	case typeStdout:
		s.remaining, s.padding = cl, pl
		return nil
	case typeStderr:
		w := s.stderr
		if w == nil {
			w = io.Discard
		}
		if _, err := io.CopyN(w, s.br, int64(cl)); err != nil {
			return streamErr(err)
		}
		s.padding = pl
		return nil
	case typeEndRequest:
		if cl != 8 {
			return fmt.Errorf("%w: an end-of-request record of %d bytes", ErrMalformed, cl)
		}
		var b [8]byte
		if err := readFull(s.br, b[:]); err != nil {
			return err
		}
		switch b[4] {
		case statusRequestComplete:
			return io.EOF
		case statusOverloaded:
			return ErrOverloaded
		case statusCantMpxConn, statusUnknownRole:
			return fmt.Errorf("%w (protocol status %d)", ErrRefused, b[4])
		default:
			return fmt.Errorf("%w: protocol status %d", ErrMalformed, b[4])
		}
	default:
		return fmt.Errorf("%w: unexpected record type %d", ErrMalformed, h.typ)
	}
}
