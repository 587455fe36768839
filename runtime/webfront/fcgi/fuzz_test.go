package fcgi_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"byzantium/runtime/webfront/fcgi"
	"byzantium/runtime/webfront/fcgi/fcgitest"
)

// FuzzResponse feeds arbitrary bytes to the client as an application's
// answer: it must end (no hang, no panic) and, when it accepts the
// headers, give a status a server can send.
func FuzzResponse(f *testing.F) {
	var good bytes.Buffer
	w := &fcgitest.Writer{W: &good}
	w.Stdout("Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n<p>gone</p>")
	w.Stderr("PHP Notice: x\n")
	w.End(0)
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:20])
	f.Add([]byte{1, 6, 0, 1, 0, 4, 4, 0, 'X', ':', '\n', '\n', 0, 0, 0, 0, 1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, answer []byte) {
		cli, srv := net.Pipe()
		go io.Copy(io.Discard, srv)
		go func() { srv.Write(answer); srv.Close() }()
		cli.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := fcgi.Do(context.Background(), cli, &fcgi.Request{})
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 599 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		io.Copy(io.Discard, resp.Body)
	})
}
