package babel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

const testHeader = "BABEL 1.0\nversion babeld-1.12.1\nhost t\nmy-id 6a:00:00:01:de:ad:be:e1\nok\n"

// fakeBabeld serves the header on a pipe, reads the client's request and
// hands the server's end to serve.
func fakeBabeld(t *testing.T, serve func(srv net.Conn, r *bufio.Reader)) *Client {
	t.Helper()
	srv, cli := net.Pipe()
	go func() {
		defer srv.Close()
		srv.Write([]byte(testHeader))
		r := bufio.NewReader(srv)
		if l, err := r.ReadString('\n'); err != nil || l != "monitor\n" {
			return
		}
		serve(srv, r)
	}()
	c, err := NewClient(cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func routeLine(i int) string {
	return fmt.Sprintf("add route %x prefix 10.%d.%d.1/32 from 0.0.0.0/0 installed yes id 6a:00:00:03:de:ad:be:e3 metric 96 refmetric 0 via fe80::1 if m1\n", i+1, i>>8&255, i&255)
}

// TestMonitorDrainsAhead: babeld's writes never wait for the parser. The
// parser is held still while "babeld" writes a dump of 20,000 routes
// (about 3 MiB, within MaxBacklog) and "ok": every write goes through,
// then the parser gets every route and one sync.
func TestMonitorDrainsAhead(t *testing.T) {
	const routes = 20000
	wrote := make(chan error, 1)
	c := fakeBabeld(t, func(srv net.Conn, _ *bufio.Reader) {
		var b strings.Builder
		for i := 0; i < routes; i++ {
			b.WriteString(routeLine(i))
		}
		b.WriteString("ok\n")
		// Line by line, as babeld writes, each bounded like babeld's.
		for _, l := range strings.SplitAfter(b.String(), "\n") {
			srv.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := srv.Write([]byte(l)); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
		time.Sleep(time.Hour) // a live babeld: no EOF
	})
	hold := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got, syncs := 0, 0
	res := make(chan error, 1)
	go func() {
		res <- c.Monitor(ctx, func(ev Event, synced bool) {
			<-hold
			if ev.Kind == 0 {
				syncs++
				cancel()
				return
			}
			got++
		})
	}()
	if err := <-wrote; err != nil {
		t.Fatalf("babeld's write waited on a parser held still: %v", err)
	}
	close(hold)
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Monitor = %v, want context.Canceled", err)
	}
	if got != routes || syncs != 1 {
		t.Errorf("parsed %d routes and %d syncs, want %d and 1", got, syncs, routes)
	}
}

// TestMonitorBehind: a parser held still past MaxBacklog gives up with
// ErrBehind and closes the connection, so babeld's next write fails at
// once instead of stalling it.
func TestMonitorBehind(t *testing.T) {
	wrote := make(chan error, 1)
	c := fakeBabeld(t, func(srv net.Conn, _ *bufio.Reader) {
		for i := 0; ; i++ {
			srv.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := srv.Write([]byte(routeLine(i))); err != nil {
				wrote <- fmt.Errorf("after %d lines: %w", i, err)
				return
			}
		}
	})
	hold := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		res <- c.Monitor(t.Context(), func(Event, bool) { <-hold })
	}()
	err := <-wrote
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("babeld's write stalled instead of failing: %v", err)
	}
	close(hold)
	if err := <-res; !errors.Is(err, ErrBehind) {
		t.Fatalf("Monitor = %v, want ErrBehind", err)
	}
}

// TestMonitorIdle: a silent babeld gets an empty line after the idle
// time; its "ok" keeps the monitor going (and is not a second sync); a
// babeld that stays silent after the ping ends the monitor.
func TestMonitorIdle(t *testing.T) {
	defer func(i, p time.Duration) { idle, pingWait = i, p }(idle, pingWait)
	idle, pingWait = 100*time.Millisecond, 200*time.Millisecond
	pings := make(chan int, 1)
	c := fakeBabeld(t, func(srv net.Conn, r *bufio.Reader) {
		srv.Write([]byte("ok\n"))
		n := 0
		for {
			l, err := r.ReadString('\n')
			if err != nil || l != "\n" {
				return
			}
			n++
			if n == 3 { // the third goes unanswered
				pings <- n
				time.Sleep(time.Hour)
				return
			}
			srv.Write([]byte("ok\n"))
		}
	})
	syncs := 0
	start := time.Now()
	err := c.Monitor(t.Context(), func(ev Event, _ bool) {
		if ev.Kind == 0 {
			syncs++
		}
	})
	if n := <-pings; n != 3 || syncs != 1 {
		t.Errorf("%d pings, %d syncs; want 3 and 1", n, syncs)
	}
	if err == nil || !strings.Contains(err.Error(), "silent") {
		t.Errorf("Monitor = %v, want babeld silent", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a silent babeld was noticed after %v", d)
	}
}
