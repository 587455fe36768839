package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"byzantium/builder/spec"
	"byzantium/internal/bytesize"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat/mkfs"
)

// What byz persist and byz clone share for encrypted save.dats: reading
// passphrases (from a file, or on the terminal with retries and a
// strength hint), the KDF cost flags, progress lines, and what Ctrl-C
// does while a save.dat is made.

// passphraseTries is how many times a passphrase is asked for on the
// terminal before giving up.
const passphraseTries = 3

// weakPassphrase is the length under which a passphrase gets a warning:
// anyone holding the stick can try short ones offline, fast.
const weakPassphrase = 8

// weakHint is the warning for a short passphrase, or "".
func weakHint(p []byte) string {
	if n := utf8.RuneCount(p); n < weakPassphrase {
		return fmt.Sprintf("that passphrase is only %d characters: anyone who holds the stick can guess it quickly. "+
			"A phrase of several words is both stronger and easier to remember.", n)
	}
	return ""
}

// passphrase reads a new passphrase from file's first line, or asks for
// it twice on the terminal with echo off: a mismatch or an empty line is
// asked again, up to three times; a short one is warned about and must
// be confirmed (or replaced, with an empty confirmation).
func passphrase(file string) ([]byte, error) {
	if file != "" {
		p, err := readPassphraseFile(file)
		if err != nil {
			return nil, err
		}
		if hint := weakHint(p); hint != "" {
			fmt.Fprintf(os.Stderr, "byz: warning: %s (from %s)\n", hint, file)
		}
		return p, nil
	}
	t, err := openTerminal("--passphrase-file")
	if err != nil {
		return nil, err
	}
	defer t.close()
	for try := 1; try <= passphraseTries; try++ {
		p, err := t.ask("Passphrase for the save.dat: ")
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			fmt.Fprintln(os.Stderr, "byz: an empty passphrase protects nothing; type one")
			continue
		}
		prompt := "The same again: "
		hint := weakHint(p)
		if hint != "" {
			fmt.Fprintf(os.Stderr, "byz: warning: %s\n", hint)
			prompt = "Type it again to use it anyway, or press Enter to choose another: "
		}
		again, err := t.ask(prompt)
		if err != nil {
			clear(p)
			return nil, err
		}
		same := bytes.Equal(p, again)
		clear(again)
		if same {
			return p, nil
		}
		clear(p)
		if hint == "" || len(again) != 0 {
			fmt.Fprintln(os.Stderr, "byz: the two passphrases differ; again, please")
		}
	}
	return nil, fmt.Errorf("passphrase: no passphrase after %d tries", passphraseTries)
}

// readPassphraseFile is the first line of file.
func readPassphraseFile(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	p := bytes.Clone(bytes.TrimRight(line, "\r"))
	clear(b)
	if len(p) == 0 {
		return nil, fmt.Errorf("passphrase: %s starts with an empty line", file)
	}
	return p, nil
}

// terminal asks for lines on the terminal (standard input) with echo
// off. Ctrl-C while it waits puts the echo back before byz ends.
type terminal struct {
	fd    int
	saved *unix.Termios
	in    *bufio.Reader
	sig   chan os.Signal
	done  chan struct{}
	wg    sync.WaitGroup
	watch *interrupts // the command's handler, when it has one
}

func openTerminal(flag string) (*terminal, error) {
	fd := int(os.Stdin.Fd())
	saved, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("passphrase: standard input is not a terminal: use %s", flag)
	}
	quiet := *saved
	quiet.Lflag &^= unix.ECHO
	t := &terminal{fd: fd, saved: saved, in: bufio.NewReader(os.Stdin), sig: make(chan os.Signal, 1), done: make(chan struct{})}
	restore := func() { unix.IoctlSetTermios(fd, unix.TCSETS, saved) }
	if w := activeWatch.Load(); w != nil {
		// The command handles signals; it puts the echo back first.
		t.watch = w
		w.mu.Lock()
		w.restore = restore
		w.mu.Unlock()
	} else {
		t.start(restore)
	}
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		t.close()
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	return t, nil
}

// start handles signals while the terminal is open.
func (t *terminal) start(restore func()) {
	signal.Notify(t.sig, os.Interrupt, syscall.SIGTERM)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		select {
		case s := <-t.sig:
			restore()
			fmt.Fprintf(os.Stderr, "\nbyz: interrupted (%v): nothing was changed\n", s)
			os.Exit(1)
		case <-t.done:
		}
	}()
}

// ask prints prompt on standard error and reads a line.
func (t *terminal) ask(prompt string) ([]byte, error) {
	fmt.Fprint(os.Stderr, prompt)
	line, err := t.in.ReadBytes('\n')
	fmt.Fprintln(os.Stderr)
	if err != nil {
		clear(line)
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	p := bytes.Clone(bytes.TrimRight(line, "\r\n"))
	clear(line)
	return p, nil
}

func (t *terminal) close() {
	if t.watch != nil {
		t.watch.mu.Lock()
		t.watch.restore = nil
		t.watch.mu.Unlock()
	} else {
		signal.Stop(t.sig)
		close(t.done)
		t.wg.Wait()
	}
	unix.IoctlSetTermios(t.fd, unix.TCSETS, t.saved)
}

// kdfCosts turns --kdf-memory and --kdf-time into argon2id costs. The
// costs are checked by luks2.KDFParams.Check, the one check of KDF costs
// every command makes (byz persist create and byz clone here; byzd's API
// through savedat), before anything is asked or written. capBytes, when
// positive, lowers the memory to it (a node's half of its RAM).
func kdfCosts(memory string, passes int, capBytes int64) (luks2.KDFParams, error) {
	mem, err := spec.ParseSize(memory)
	if err != nil {
		return luks2.KDFParams{}, usageError{fmt.Errorf("--kdf-memory: %w", err)}
	}
	if capBytes > 0 {
		mem = min(mem, capBytes&^(1<<10-1))
	}
	if mem%(1<<10) != 0 {
		return luks2.KDFParams{}, usageError{fmt.Errorf("--kdf-memory %s: argon2 memory is counted in KiB: give it with K, M or G (256M, 1G)", memory)}
	}
	p := luks2.KDFParams{Type: "argon2id", Time: passes, Memory: int(mem >> 10), Threads: 4}
	if err := p.Check(); err != nil {
		return luks2.KDFParams{}, usageError{fmt.Errorf("--kdf-memory %s --kdf-time %d: %w", memory, passes, err)}
	}
	return p, nil
}

// phase says what Ctrl-C (or SIGTERM) does at this point of a command
// that writes.
type phase int

const (
	// phaseQuit: nothing of this run is on disk (or only unlinked scratch
	// files): byz ends at once.
	phaseQuit phase = iota
	// phaseCancel: a partial output exists; the work is told to stop and
	// removes it.
	phaseCancel
	// phaseFinish: the output is being written in place and stopping
	// half-way would leave it half-written: the write is finished.
	phaseFinish
)

// interrupts handles SIGINT and SIGTERM for a command that writes. The
// phase is changed under the same lock the handler holds until it has
// acted, so no output can appear between the handler's look at the phase
// and byz's end.
type interrupts struct {
	mu       sync.Mutex
	phase    phase
	restore  func() // a terminal's echo, while a prompt waits
	cancel   func()
	got      os.Signal
	sig      chan os.Signal
	done     chan struct{}
	finished chan struct{}
	w        io.Writer
}

// watchInterrupts starts handling signals; cancel is called in
// phaseCancel. stop ends the handling.
func watchInterrupts(w io.Writer, cancel func()) *interrupts {
	in := &interrupts{cancel: cancel, sig: make(chan os.Signal, 1), done: make(chan struct{}), finished: make(chan struct{}), w: w}
	signal.Notify(in.sig, os.Interrupt, syscall.SIGTERM)
	activeWatch.Store(in)
	go func() {
		defer close(in.finished)
		select {
		case s := <-in.sig:
			in.mu.Lock()
			defer in.mu.Unlock()
			in.got = s
			if in.restore != nil {
				in.restore()
			}
			switch in.phase {
			case phaseQuit:
				fmt.Fprintf(w, "\nbyz: interrupted (%v): nothing was written\n", s)
				os.Exit(1)
			case phaseCancel:
				fmt.Fprintf(w, "\nbyz: interrupted (%v): stopping and removing what was written\n", s)
				in.cancel()
			case phaseFinish:
				fmt.Fprintf(w, "\nbyz: interrupted (%v): finishing the write already under way, so nothing is left half-written\n", s)
			}
		case <-in.done:
		}
	}()
	return in
}

func (in *interrupts) set(p phase) {
	in.mu.Lock()
	in.phase = p
	in.mu.Unlock()
}

// signal is the signal received, or nil.
func (in *interrupts) signal() os.Signal {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.got
}

func (in *interrupts) stop() {
	activeWatch.CompareAndSwap(in, nil)
	signal.Stop(in.sig)
	close(in.done)
	<-in.finished
}

// saveDatProgress prints the steps of making a save.dat on w, and while
// it is written, a progress line (redrawn on a terminal, once elsewhere).
// onWrite is called as the writing starts.
func saveDatProgress(w *os.File, onWrite func()) func(mkfs.Event) {
	tty := isTerminal(w)
	last, lastAt := -1, time.Time{}
	return func(e mkfs.Event) {
		if e.Step != "writing" {
			fmt.Fprintf(w, "byz: %s...\n", e.Step)
			return
		}
		if e.Done == 0 {
			if onWrite != nil {
				onWrite()
			}
			if !tty {
				fmt.Fprintf(w, "byz: writing the save.dat (%s)...\n", bytesize.Format(e.Total))
			}
		}
		if !tty || e.Total == 0 {
			return
		}
		pct := int(e.Done * 100 / e.Total)
		if pct != last && (time.Since(lastAt) > 100*time.Millisecond || e.Done == e.Total) {
			fmt.Fprintf(w, "\r\033[Kbyz: writing the save.dat: %3d%% (%s of %s)", pct, bytesize.Format(e.Done), bytesize.Format(e.Total))
			last, lastAt = pct, time.Now()
		}
		if e.Done == e.Total {
			fmt.Fprintln(w)
		}
	}
}

// activeWatch is the command's signal handler, if it has one: a terminal
// prompt leaves signals to it.
var activeWatch atomic.Pointer[interrupts]

// errInterrupted ends a command stopped by a signal.
var errInterrupted = errors.New("interrupted")
