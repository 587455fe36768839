// Package fcgitest is a scriptable FastCGI application server for tests:
// it reads a request the way php-fpm does and answers with whatever raw
// bytes a test writes, well-formed or not.
package fcgitest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Request is what the server read of one request.
type Request struct {
	Params map[string]string
	// Stdin streams the request body as it arrives; it ends at the empty
	// FCGI_STDIN record.
	Stdin io.Reader
}

// Handler answers one request by writing to w, the raw connection:
// Stdout, Stderr and End write well-formed records, and a test writes
// anything else directly. Returning closes the connection.
type Handler func(w *Writer, r *Request)

// Server listens on a unix socket in a temporary folder.
type Server struct {
	Path string
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	n    int
}

// New starts a server calling h for each connection; it stops when the
// test ends.
func New(t testing.TB, h Handler) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcgitest-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Path: filepath.Join(dir, "app.sock")}
	s.ln, err = net.Listen("unix", s.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.ln.Close()
		s.wg.Wait()
		os.RemoveAll(dir)
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.n++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(c, h)
			}()
		}
	}()
	return s
}

// Requests is how many connections the server accepted.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func serve(c net.Conn, h Handler) {
	br := bufio.NewReader(c)
	params := map[string]string{}
	var pbuf []byte
	for {
		typ, content, err := readRecord(br)
		if err != nil {
			return
		}
		if typ == 1 { // begin
			continue
		}
		if typ != 4 {
			return
		}
		if len(content) == 0 {
			break
		}
		pbuf = append(pbuf, content...)
	}
	if err := parseParams(pbuf, params); err != nil {
		return
	}
	pr, pw := io.Pipe()
	go func() {
		for {
			typ, content, err := readRecord(br)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if typ != 5 {
				pw.CloseWithError(fmt.Errorf("record type %d in stdin", typ))
				return
			}
			if len(content) == 0 {
				pw.Close()
				return
			}
			if _, err := pw.Write(content); err != nil {
				return
			}
		}
	}()
	h(&Writer{W: c}, &Request{Params: params, Stdin: pr})
	pr.Close()
}

func readRecord(r *bufio.Reader) (uint8, []byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0] != 1 {
		return 0, nil, errors.New("bad version")
	}
	content := make([]byte, binary.BigEndian.Uint16(h[4:]))
	if _, err := io.ReadFull(r, content); err != nil {
		return 0, nil, err
	}
	if _, err := r.Discard(int(h[6])); err != nil {
		return 0, nil, err
	}
	return h[1], content, nil
}

func parseParams(b []byte, into map[string]string) error {
	length := func() (int, error) {
		if len(b) == 0 {
			return 0, errors.New("short")
		}
		if b[0] < 128 {
			n := int(b[0])
			b = b[1:]
			return n, nil
		}
		if len(b) < 4 {
			return 0, errors.New("short")
		}
		n := int(binary.BigEndian.Uint32(b) &^ (1 << 31))
		b = b[4:]
		return n, nil
	}
	for len(b) > 0 {
		nl, err := length()
		if err != nil {
			return err
		}
		vl, err := length()
		if err != nil {
			return err
		}
		if nl+vl > len(b) {
			return errors.New("short pair")
		}
		into[string(b[:nl])] = string(b[nl : nl+vl])
		b = b[nl+vl:]
	}
	return nil
}

// Writer writes records for request 1.
type Writer struct{ W io.Writer }

// Record writes one record of type typ with content and pad bytes of
// padding, for request id.
func (w *Writer) Record(typ uint8, id uint16, content []byte, pad uint8) error {
	h := make([]byte, 8, 8+len(content)+int(pad))
	h[0], h[1] = 1, typ
	binary.BigEndian.PutUint16(h[2:], id)
	binary.BigEndian.PutUint16(h[4:], uint16(len(content)))
	h[6] = pad
	h = append(h, content...)
	h = append(h, make([]byte, pad)...)
	_, err := w.W.Write(h)
	return err
}

// Stdout writes s as FCGI_STDOUT records of at most 65535 bytes.
func (w *Writer) Stdout(s string) error { return w.stream(6, s) }

// Stderr writes s as FCGI_STDERR records.
func (w *Writer) Stderr(s string) error { return w.stream(7, s) }

func (w *Writer) stream(typ uint8, s string) error {
	for len(s) > 0 {
		n := min(len(s), 65535)
		if err := w.Record(typ, 1, []byte(s[:n]), uint8((8-n%8)%8)); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}

// End ends stdout and the request with protocol status st (0: complete).
func (w *Writer) End(st uint8) error {
	if err := w.Record(6, 1, nil, 0); err != nil {
		return err
	}
	return w.Record(3, 1, []byte{0, 0, 0, 0, st, 0, 0, 0}, 0)
}
