package main

import (
	"bufio"
	"bytes"
	"byzantium/runtime/nodeapi"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newConsoleCmd() *cobra.Command {
	var socket, shell string
	cmd := &cobra.Command{
		Use:   "console",
		Short: "The serial console's login: the node's admin password opens a root shell",
		Long: `byz console is what a node runs on its first serial port when its spec says
console: {shell: login}, as the default image does (byz build writes it into
/etc/inittab). It asks for the node's admin password, the one the panel asks
for, checks it through byzd's root-only socket with the panel's rate limit
(after 3 failures each attempt waits longer), and then becomes a root login
shell; when that shell ends, init starts byz console again. A node without
an admin password yet opens no shell: set one on the panel's setup page.

Serial ports are often reachable over IPMI or serial-over-LAN: see
docs/security.md for what the console setting protects and what it does not.`,
		Example: `  ttyS0::respawn:/usr/bin/byz console     # the line byz build writes into /etc/inittab
  byz console --shell /bin/bash`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if socket == "" {
				socket = nodeapi.DefaultSocket
			}
			node, _ := os.Hostname()
			l := &consoleLogin{in: bufio.NewReader(os.Stdin), out: os.Stdout, node: node, socket: socket,
				check: socketCheck(socket), sleep: time.Sleep, echo: terminalEcho(int(os.Stdin.Fd()))}
			if err := l.run(c.Context()); err != nil {
				time.Sleep(time.Second) // init starts us again: not in a tight loop
				return err
			}
			// The shell replaces byz console; init starts it again when
			// the shell exits.
			argv0 := "-" + filepath.Base(shell) // a login shell
			return fmt.Errorf("starting %s: %w", shell, syscall.Exec(shell, []string{argv0}, os.Environ()))
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "byzd's socket (default "+nodeapi.DefaultSocket+")")
	cmd.Flags().StringVar(&shell, "shell", "/bin/sh", "the shell to start once the password is right")
	return cmd
}

// consoleVerdict is byzd's answer to a console password.
type consoleVerdict struct {
	status int // 0: byzd did not answer
	answer nodeapi.ConsoleLoginAnswer
}

// consoleLogin asks for the admin password until byzd says it is right.
type consoleLogin struct {
	in     *bufio.Reader
	out    io.Writer
	node   string
	socket string // for messages
	check  func(ctx context.Context, password []byte) (consoleVerdict, error)
	sleep  func(time.Duration)
	echo   func(on bool) error // nil: not a terminal
}

// run returns nil once a password was right, or an error when the
// terminal's input ends.
func (l *consoleLogin) run(ctx context.Context) error {
	for {
		fmt.Fprintf(l.out, "\nbyz console: %s: type the node's admin password (the panel's) for a root shell\nPassword: ", l.node)
		pass, err := l.readPassword()
		fmt.Fprintln(l.out)
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		v, err := l.check(ctx, pass)
		clear(pass)
		switch {
		case err != nil:
			fmt.Fprintf(l.out, "byz console: byzd does not answer on %s (%v): the console checks the password through it; wait for byzd and try again\n", l.socket, err)
			l.sleep(5 * time.Second)
		case v.status == http.StatusOK:
			fmt.Fprintln(l.out, "byz console: password accepted: a root shell (exit it to lock the console again)")
			return nil
		case v.status == http.StatusTooManyRequests:
			fmt.Fprintf(l.out, "byz console: %s\n", v.answer.Error)
			l.sleep(time.Duration(max(v.answer.RetryAfterSeconds, 1)) * time.Second)
		case v.status == http.StatusConflict:
			fmt.Fprintf(l.out, "byz console: %s\n", v.answer.Error)
			l.sleep(10 * time.Second)
		default:
			msg := v.answer.Error
			if msg == "" {
				msg = http.StatusText(v.status)
			}
			fmt.Fprintf(l.out, "byz console: %s\n", msg)
			l.sleep(time.Second)
		}
	}
}

// readPassword reads a line with the terminal's echo off.
func (l *consoleLogin) readPassword() ([]byte, error) {
	if l.echo != nil {
		if err := l.echo(false); err == nil {
			defer l.echo(true)
		}
	}
	line, err := l.in.ReadBytes('\n')
	if err != nil && (err != io.EOF || len(line) == 0) {
		clear(line)
		return nil, err
	}
	p := bytes.Clone(bytes.TrimRight(line, "\r\n"))
	clear(line)
	return p, nil
}

// terminalEcho turns the echo of the terminal on fd on and off; nil when
// fd is not a terminal.
func terminalEcho(fd int) func(on bool) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil
	}
	orig := *t
	return func(on bool) error {
		q := orig
		if !on {
			q.Lflag &^= unix.ECHO
		}
		return unix.IoctlSetTermios(fd, unix.TCSETS, &q)
	}
}

// socketCheck asks byzd, over its socket, whether a password is the
// admin's.
func socketCheck(socket string) func(ctx context.Context, password []byte) (consoleVerdict, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "unix", socket)
		}}}
	return func(ctx context.Context, password []byte) (consoleVerdict, error) {
		body, err := json.Marshal(nodeapi.ConsoleLoginRequest{Password: string(password)})
		if err != nil {
			return consoleVerdict{}, err
		}
		defer clear(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://byzd"+nodeapi.ConsoleLoginPath, bytes.NewReader(body))
		if err != nil {
			return consoleVerdict{}, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return consoleVerdict{}, err
		}
		defer resp.Body.Close()
		v := consoleVerdict{status: resp.StatusCode}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&v.answer); err != nil && !errors.Is(err, io.EOF) {
			return consoleVerdict{}, fmt.Errorf("byzd's answer (%s): %w", resp.Status, err)
		}
		return v, nil
	}
}
