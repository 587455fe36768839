package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"byzantium/builder/tmpdir"
)

// interrupted is the error of a command stopped by a signal; byz exits
// with 128 + the signal's number, as a shell reports a process it killed.
type interrupted struct{ sig syscall.Signal }

func (e interrupted) Error() string {
	return fmt.Sprintf("interrupted (%s): nothing was written, and what was begun is removed", unix.SignalName(e.sig))
}

// statusFor is the status byz exits with for err: 0, 1 for a failure, 2
// for a usage error, 128+N for signal N.
func statusFor(err error) int {
	var ue usageError
	var ie interrupted
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ie):
		return 128 + int(ie.sig)
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// onInterrupt returns a context cancelled, with an interrupted cause, at
// the first SIGINT or SIGTERM, for a command that then removes what it
// began before it returns. Until stop is called, the signals no longer
// kill byz: call it only around work that watches the context.
func onInterrupt(parent context.Context) (ctx context.Context, stop func()) {
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		// A signal the shell had byz ignore (a background job's
		// SIGINT) stays ignored.
		if !signal.Ignored(sig) {
			signal.Notify(ch, sig)
		}
	}
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			cancel(interrupted{s.(syscall.Signal)})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// staging is a held folder (tmpdir) beside a command's output, where the
// output is written whole before it is moved into place. A command runs
// its work in a goroutine and waits for it or for an interrupt: on an
// interrupt the folder goes at once, and the work, still running, fails
// at its next file.
type staging struct {
	dir                *tmpdir.Dir
	mu                 sync.Mutex
	stopped, committed bool
}

// newStaging makes a staging folder in parent named after the output it
// is for, after removing those that killed runs left for the same name.
func newStaging(parent, output string) (*staging, error) {
	prefix := "." + output + ".byz-"
	if _, err := tmpdir.Sweep(parent, prefix, false); err != nil {
		return nil, err
	}
	d, err := tmpdir.New(parent, prefix)
	if err != nil {
		return nil, err
	}
	return &staging{dir: d}, nil
}

// run runs work, which writes into the staging folder, and then commit,
// which moves what it wrote into place; unless ctx ends first, in which
// case the folder is removed and ctx's cause returned. The folder is
// removed in every case.
func (s *staging) run(ctx context.Context, work func() error, commit func() error) error {
	if ctx.Err() != nil {
		s.dir.Remove()
		return context.Cause(ctx)
	}
	done := make(chan error, 1)
	go func() {
		err := work()
		if err == nil {
			s.mu.Lock()
			if s.stopped {
				err = context.Cause(ctx)
			} else {
				s.committed = true
				err = commit()
			}
			s.mu.Unlock()
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		s.mu.Lock() // a commit under way ends first
		s.stopped = true
		committed := s.committed
		s.mu.Unlock()
		if committed {
			err = <-done // the output is in place: the command is over
		} else {
			err = context.Cause(ctx)
		}
	}
	if rerr := s.dir.Remove(); err == nil && rerr != nil {
		err = rerr
	}
	return err
}

// renamed is an error that speaks of the final path where the error it
// wraps names the staged one, so that nobody reads of a staging folder
// that is gone by the time they do.
type renamed struct {
	err      error
	from, to string
}

func (e renamed) Error() string { return strings.ReplaceAll(e.err.Error(), e.from, e.to) }
func (e renamed) Unwrap() error { return e.err }

func rename(err error, from, to string) error {
	if err == nil || from == to {
		return err
	}
	return renamed{err, from, to}
}
