package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"byzantium/runtime/auth"
	"byzantium/runtime/daemon"
	"byzantium/runtime/nodeapi"

	"golang.org/x/sys/unix"
)

// consoleNode serves a real byzd's local API (its auth store, its rate
// limit) on a unix socket and returns the socket and the store.
func consoleNode(t *testing.T) (string, *auth.Store) {
	t.Helper()
	state := t.TempDir()
	st, err := auth.Open(filepath.Join(state, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	st.SetHashParams(auth.HashParams{Time: 1, Memory: 64, Threads: 1})
	settings := daemon.OpenSettings(state, nodeapi.SettingsValues{NodeName: "mesh-1", Language: "en"}, nil)
	log := slog.New(slog.DiscardHandler)
	w := &daemon.Web{Auth: st, Log: log, Ring: daemon.NewLogRing(10), Root: t.TempDir(), Settings: settings}
	h, err := w.LocalHandler()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "byz") // a socket path has 108 bytes at most
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "byzd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock, st
}

// TestConsoleLogin types passwords at byz console's prompt, against a
// real byzd's socket: wrong ones are refused, after four in a row the next
// attempt must wait (even with the right password) as on the panel, then
// the right one is accepted; a node without a password and a byzd that does
// not answer open nothing; the end of the input ends the login.
func TestConsoleLogin(t *testing.T) {
	sock, st := consoleNode(t)
	now := time.Unix(1700000000, 0)
	st.Now = func() time.Time { return now }
	run := func(input string, sock string) (string, []time.Duration, error) {
		var out bytes.Buffer
		var slept []time.Duration
		l := &consoleLogin{in: bufio.NewReader(strings.NewReader(input)), out: &out, node: "mesh-1", socket: sock,
			check: socketCheck(sock), sleep: func(d time.Duration) { slept = append(slept, d); now = now.Add(d) }}
		err := l.run(context.Background())
		return out.String(), slept, err
	}

	out, slept, err := run("long enough pass\n", sock)
	if err == nil || !strings.Contains(out, "no admin password yet") || !slices.Equal(slept, []time.Duration{10 * time.Second}) {
		t.Errorf("before setup: err %v, slept %v, printed:\n%s", err, slept, out)
	}

	if err := st.Claim("test", st.SetupCode(), "long enough pass"); err != nil {
		t.Fatal(err)
	}
	// A second's pause after each wrong password absorbs the limiter's
	// first delay; the fourth failure in a row makes the next attempt
	// wait.
	out, slept, err = run("guess one\nguess two\nguess three\nguess four\nlong enough pass\nlong enough pass\n", sock)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if n := strings.Count(out, "byz console: wrong password\n"); n != 4 {
		t.Errorf("%d wrong passwords reported, want 4:\n%s", n, out)
	}
	if !strings.Contains(out, "byz console: too many failed attempts: wait 1 s\n") || !slices.Equal(slept, []time.Duration{
		time.Second, time.Second, time.Second, time.Second, time.Second}) {
		t.Errorf("slept %v (1 s after each failure, and the limiter's wait), printed:\n%s", slept, out)
	}
	if !strings.HasSuffix(out, "byz console: password accepted: a root shell (exit it to lock the console again)\n") {
		t.Errorf("the right password, after the wait:\n%s", out)
	}
	if n := strings.Count(out, "byz console: mesh-1: type the node's admin password (the panel's) for a root shell\nPassword: \n"); n != 6 {
		t.Errorf("%d prompts, want 6:\n%s", n, out)
	}
	if strings.Contains(out, "guess") || strings.Contains(out, "long enough") {
		t.Errorf("a password was printed:\n%s", out)
	}

	missing := filepath.Join(filepath.Dir(sock), "none.sock")
	out, slept, err = run("long enough pass\n", missing)
	if err == nil || !strings.Contains(out, "byzd does not answer on "+missing) || !slices.Equal(slept, []time.Duration{5 * time.Second}) {
		t.Errorf("no byzd: err %v, slept %v, printed:\n%s", err, slept, out)
	}
}

// TestConsoleEcho: the password is read with the terminal's echo off, and
// the echo comes back after.
func TestConsoleEcho(t *testing.T) {
	_, tty := openPTY(t)
	fd := int(tty.Fd())
	echo := terminalEcho(fd)
	if echo == nil {
		t.Fatal("a pseudo-terminal is not a terminal")
	}
	var during uint32
	l := &consoleLogin{in: bufio.NewReader(strings.NewReader("secret\n")), out: &bytes.Buffer{}, echo: func(on bool) error {
		err := echo(on)
		if tio, _ := unix.IoctlGetTermios(fd, unix.TCGETS); tio != nil && !on {
			during = tio.Lflag & unix.ECHO
		}
		return err
	}}
	if p, err := l.readPassword(); err != nil || string(p) != "secret" {
		t.Fatalf("readPassword: %q, %v", p, err)
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if during != 0 || tio.Lflag&unix.ECHO == 0 {
		t.Errorf("echo while reading: %v; after: %v", during != 0, tio.Lflag&unix.ECHO != 0)
	}
	f, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if terminalEcho(int(f.Fd())) != nil {
		t.Error("terminalEcho on a file: want nil")
	}
}
