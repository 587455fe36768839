package fcgi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"byzantium/runtime/webfront/fcgi"
	"byzantium/runtime/webfront/fcgi/fcgitest"
)

func dial(t *testing.T, s *fcgitest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", s.Path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var params = []fcgi.Param{{"REQUEST_METHOD", "POST"}, {"SCRIPT_FILENAME", "/srv/app/index.php"},
	{"HTTP_X_LONG", strings.Repeat("v", 300)}}

// TestRoundTrip: parameters (one longer than 127 bytes, which takes a
// four-byte length) and a body arrive whole; the answer's Status,
// headers, body split over padded records and stderr interleaved with
// stdout come back apart.
func TestRoundTrip(t *testing.T) {
	var got *fcgitest.Request
	var gotBody []byte
	s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Stdin)
		w.Stdout("Status: 201 Created\r\nContent-Type: text/plain\r\nX-Multi: a\r\nX-Multi: b\r\n\r\nhel")
		w.Stderr("PHP Warning: something\n")
		w.Stdout("lo")
		w.Record(6, 1, []byte(" world"), 200) // large padding is legal
		w.End(0)
	})
	var stderr bytes.Buffer
	resp, err := fcgi.Do(context.Background(), dial(t, s), &fcgi.Request{Params: params,
		Body: strings.NewReader("a=1&b=2"), Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "text/plain" ||
		len(resp.Header.Values("X-Multi")) != 2 || resp.Header.Get("Status") != "" {
		t.Errorf("status %d, header %v", resp.StatusCode, resp.Header)
	}
	if string(body) != "hello world" {
		t.Errorf("body %q", body)
	}
	if stderr.String() != "PHP Warning: something\n" {
		t.Errorf("stderr %q", stderr.String())
	}
	for _, p := range params {
		if got.Params[p.Name] != p.Value {
			t.Errorf("param %s = %q", p.Name, got.Params[p.Name])
		}
	}
	if string(gotBody) != "a=1&b=2" {
		t.Errorf("stdin %q", gotBody)
	}
}

// TestStreaming: 4 MiB go to an application that echoes each piece as
// it arrives, far more than the socket buffers hold: Do must read the
// answer while it still sends the body, or both sides would block.
func TestStreaming(t *testing.T) {
	s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) {
		w.Stdout("Content-Type: application/octet-stream\n\n")
		buf := make([]byte, 16<<10)
		for {
			n, err := r.Stdin.Read(buf)
			if n > 0 {
				w.Stdout(string(buf[:n]))
			}
			if err != nil {
				break
			}
		}
		w.End(0)
	})
	const size = 4 << 20
	src := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(time.Minute))
	resp, err := fcgi.Do(context.Background(), c, &fcgi.Request{Body: bytes.NewReader(src)})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
}

// TestBadAnswers: every way an application can break the protocol or
// the CGI format before its headers are done gives a sentinel error.
func TestBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(w *fcgitest.Writer)
		want   error
	}{
		{"closed at once", func(w *fcgitest.Writer) {}, fcgi.ErrTruncated},
		{"closed inside headers", func(w *fcgitest.Writer) { w.Stdout("Content-Type: text/ht") }, fcgi.ErrTruncated},
		{"closed inside a record", func(w *fcgitest.Writer) { w.W.Write([]byte{1, 6, 0, 1, 0, 100, 0, 0, 'a'}) }, fcgi.ErrTruncated},
		{"closed inside a record header", func(w *fcgitest.Writer) { w.W.Write([]byte{1, 6, 0}) }, fcgi.ErrTruncated},
		{"version 2", func(w *fcgitest.Writer) { w.W.Write([]byte{2, 6, 0, 1, 0, 0, 0, 0}) }, fcgi.ErrMalformed},
		{"another request id", func(w *fcgitest.Writer) { w.Record(6, 7, []byte("Status: 200\r\n\r\n"), 0) }, fcgi.ErrMalformed},
		{"management record", func(w *fcgitest.Writer) { w.Record(10, 0, nil, 0) }, fcgi.ErrMalformed},
		{"unknown record type", func(w *fcgitest.Writer) { w.Record(99, 1, nil, 0) }, fcgi.ErrMalformed},
		{"stdin from the app", func(w *fcgitest.Writer) { w.Record(5, 1, []byte("x"), 0) }, fcgi.ErrMalformed},
		{"ended inside headers", func(w *fcgitest.Writer) { w.Stdout("Content-Type: text/html\r\n"); w.End(0) }, fcgi.ErrMalformed},
		{"ended without output", func(w *fcgitest.Writer) { w.End(0) }, fcgi.ErrMalformed},
		{"no headers at all", func(w *fcgitest.Writer) { w.Stdout("\r\n<html>"); w.End(0) }, fcgi.ErrMalformed},
		{"header line without colon", func(w *fcgitest.Writer) { w.Stdout("Content-Type text/html\r\n\r\n"); w.End(0) }, fcgi.ErrMalformed},
		{"bad header name", func(w *fcgitest.Writer) { w.Stdout("Bad Name: x\r\n\r\n"); w.End(0) }, fcgi.ErrMalformed},
		{"status not a number", func(w *fcgitest.Writer) { w.Stdout("Status: abc\r\n\r\n"); w.End(0) }, fcgi.ErrMalformed},
		{"status 999", func(w *fcgitest.Writer) { w.Stdout("Status: 999 Odd\r\n\r\n"); w.End(0) }, fcgi.ErrMalformed},
		{"status 101", func(w *fcgitest.Writer) { w.Stdout("Status: 101 Switching\r\n\r\n"); w.End(0) }, fcgi.ErrMalformed},
		{"status 2000", func(w *fcgitest.Writer) { w.Stdout("Status: 2000\r\n\r\n"); w.End(0) }, fcgi.ErrMalformed},
		{"headers too large", func(w *fcgitest.Writer) {
			for i := 0; i < 2000; i++ {
				if w.Stdout("X-Filler: "+strings.Repeat("f", 60)+"\r\n") != nil {
					return
				}
			}
			w.Stdout("\r\n")
			w.End(0)
		}, fcgi.ErrMalformed},
		{"one endless header line", func(w *fcgitest.Writer) {
			w.Stdout("X-Filler: ")
			for i := 0; i < 200; i++ {
				if w.Stdout(strings.Repeat("f", 1000)) != nil {
					return
				}
			}
		}, fcgi.ErrMalformed},
		{"end record of 3 bytes", func(w *fcgitest.Writer) { w.Stdout("Status: 200\r\n"); w.Record(3, 1, []byte{0, 0, 0}, 0) }, fcgi.ErrMalformed},
		{"overloaded", func(w *fcgitest.Writer) { w.End(2) }, fcgi.ErrOverloaded},
		{"cannot multiplex", func(w *fcgitest.Writer) { w.End(1) }, fcgi.ErrRefused},
		{"unknown role", func(w *fcgitest.Writer) { w.End(3) }, fcgi.ErrRefused},
		{"protocol status 9", func(w *fcgitest.Writer) { w.Stdout("X: y\r\n"); w.End(9) }, fcgi.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) { tc.answer(w) })
			c := dial(t, s)
			c.SetDeadline(time.Now().Add(30 * time.Second))
			resp, err := fcgi.Do(context.Background(), c, &fcgi.Request{Params: params})
			if err == nil {
				resp.Body.Close()
				t.Fatalf("accepted: %d %v", resp.StatusCode, resp.Header)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestBadBodies: an answer whose headers are fine but whose body then
// breaks returns its headers, and the body's Read fails with the
// sentinel instead of a clean io.EOF.
func TestBadBodies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(w *fcgitest.Writer)
		want   error
	}{
		{"closed", func(w *fcgitest.Writer) {}, fcgi.ErrTruncated},
		{"garbage record", func(w *fcgitest.Writer) { w.W.Write([]byte("GET / HTTP/1.1\r\n\r\n")) }, fcgi.ErrMalformed},
		{"overloaded after output", func(w *fcgitest.Writer) { w.End(2) }, fcgi.ErrOverloaded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) {
				w.Stdout("Content-Type: text/plain\r\n\r\npart of the body")
				tc.answer(w)
			})
			resp, err := fcgi.Do(context.Background(), dial(t, s), &fcgi.Request{})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if string(b) != "part of the body" || !errors.Is(err, tc.want) {
				t.Errorf("read %q, %v; want the partial body and %v", b, err, tc.want)
			}
		})
	}
}

// TestStatusDefaults: without Status, a Location means 302 and
// anything else 200; LF-only line ends are accepted (PHP's CGI SAPI
// writes CRLF, other applications may not).
func TestStatusDefaults(t *testing.T) {
	for answer, want := range map[string]int{
		"Location: /wiki/start\n\n":             302,
		"Content-Type: text/html\n\nok":         200,
		"Status: 404 Not Found\r\nX: y\r\n\r\n": 404,
		"Status: 304\r\n\r\n":                   304,
	} {
		s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) { w.Stdout(answer); w.End(0) })
		resp, err := fcgi.Do(context.Background(), dial(t, s), &fcgi.Request{})
		if err != nil {
			t.Fatalf("%q: %v", answer, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%q: status %d, want %d", answer, resp.StatusCode, want)
		}
	}
}

// TestParamTooLarge: a pair that cannot fit one record is refused before
// anything is sent.
func TestParamTooLarge(t *testing.T) {
	s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) { w.Stdout("X: y\n\n"); w.End(0) })
	_, err := fcgi.Do(context.Background(), dial(t, s), &fcgi.Request{Params: []fcgi.Param{{"HTTP_X", strings.Repeat("x", 70000)}}})
	if !errors.Is(err, fcgi.ErrParamTooLarge) {
		t.Fatalf("error %v", err)
	}
	// Many small pairs past one record's size are split between records.
	var many []fcgi.Param
	for i := 0; i < 400; i++ {
		many = append(many, fcgi.Param{Name: "HTTP_X_" + strings.Repeat("N", i%50) + string(rune('A'+i%26)), Value: strings.Repeat("v", 250)})
	}
	resp, err := fcgi.Do(context.Background(), dial(t, s), &fcgi.Request{Params: many})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// TestBodyError: a failing request body (a client over the size limit,
// or stalled past its deadline) ends the request and comes back as a
// BodyError wrapping the reader's own error, not as a broken app.
func TestBodyError(t *testing.T) {
	s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) {
		io.Copy(io.Discard, r.Stdin)
		w.Stdout("X: y\n\n")
		w.End(0)
	})
	_, err := fcgi.Do(context.Background(), dial(t, s), &fcgi.Request{Body: failingReader{os.ErrDeadlineExceeded}})
	var be *fcgi.BodyError
	if !errors.As(err, &be) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("error %v, want a BodyError wrapping the deadline", err)
	}
}

// TestHangingApp: an application that never answers is cut off by the
// context, and by a deadline on the connection.
func TestHangingApp(t *testing.T) {
	release := make(chan struct{})
	s := fcgitest.New(t, func(w *fcgitest.Writer, r *fcgitest.Request) { <-release })
	defer close(release)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := fcgi.Do(ctx, dial(t, s), &fcgi.Request{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	c := dial(t, s)
	c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = fcgi.Do(context.Background(), c, &fcgi.Request{})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
}
