package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"byzantium/internal/bytesize"
	"byzantium/modules/entry"
)

// isTerminal reports whether f is a terminal: progress is drawn only there.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// startProgress redraws one status line on w every 200 ms from c until the
// returned stop function is called, which draws the last state and ends the
// line. It draws nothing when quiet is set or w is not a terminal.
func startProgress(w *os.File, quiet bool, label string, c *entry.Counter) (stop func()) {
	if quiet || !isTerminal(w) {
		return func() {}
	}
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	draw := func() {
		el := time.Since(start).Seconds()
		b := c.Bytes.Load()
		rate := 0.0
		if el > 0 {
			rate = float64(b) / el
		}
		fmt.Fprintf(w, "\r%s: %d entries, %s read, %s/s, %.1fs ", label, c.Entries.Load(), bytesize.Format(b), bytesize.Format(int64(rate)), el)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw()
			case <-done:
				draw()
				io.WriteString(w, "\n")
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// parseSize reads a size such as 131072, 128K, 128KiB or 1M.
func parseSize(s string) (int, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "IB"), "B")
	mult := 1
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: write a number of bytes, or one with K or M (128K, 1M)", s)
	}
	return n * mult, nil
}
