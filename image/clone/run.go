package clone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"byzantium/image/clone/cloneapi"
	"byzantium/internal/bytesize"
	"byzantium/overlays"
	"byzantium/runtime/luks2"
)

// The clone workflow, whoever asks for it: byz clone's flags, or the JSON
// request byzd hands byz clone. Run checks the request, opens the source,
// plans, refuses a target the safety checks refuse, asks the UI what only
// a person can answer, and writes.

// Request is what to clone where; see cloneapi.
type Request = cloneapi.Request

// NodeTmp is where a clone on a node keeps scratch files: a tmpfs outside
// the overlay (under /tmp they would land in the changes being copied).
const NodeTmp = "/" + overlays.RunDir

// UI is what Run asks of the person (or program) behind the request.
// Every field may be nil.
type UI struct {
	// Out receives the plan of a Request.Plan (nil: discarded).
	Out io.Writer
	// Warn hears of what does not stop the clone.
	Warn func(error)
	// Confirm is asked, naming the device, before a device is written;
	// an error refuses. Nil refuses every device: a caller that has
	// confirmed already (byz clone --yes) says so with a Confirm that
	// returns nil.
	Confirm func(*Device) error
	// Passphrase gives the save.dat's new passphrase when the request
	// encrypts without one. It is asked only once something is to be
	// written.
	Passphrase func() ([]byte, error)
	// Writing is told as the write begins, with its Progress; the
	// function it returns hears the outcome.
	Writing func(*Progress) func(*Result, error)
}

// Run clones as req says. A request no clone can come of is an
// ErrBadRequest; a plan (req.Plan) prints to ui.Out and returns a nil
// Result, or the refusal a write would meet. On a device, a failed write
// says the device is left without a partition table.
func Run(ctx context.Context, req Request, ui UI) (*Result, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	src, opts, p, err := plan(req, ui)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	out := ui.Out
	if out == nil {
		out = io.Discard
	}

	sys := System{}
	// Before anything else, and whatever the options: a target that is
	// the source (or holds it, or lives under it) would destroy what is
	// being read.
	if err := sys.SameAsSource(src, req.Target); err != nil {
		return nil, err
	}
	dev, err := sys.Inspect(req.Target)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil && strings.HasPrefix(filepath.Clean(req.Target), "/dev/") {
		return nil, fmt.Errorf("clone: %s: no such device (is the stick plugged in?)", req.Target)
	}
	var size int64
	if dev != nil {
		if err := deviceTarget(p, sys, dev, req, out); err != nil || req.Plan {
			return nil, err
		}
		if ui.Confirm == nil {
			return nil, fmt.Errorf("%w: %s: nothing to confirm it on", ErrRefused, dev.Path)
		}
		if err := ui.Confirm(dev); err != nil {
			return nil, err
		}
	} else {
		if size, err = imageTarget(p, req, out); err != nil || req.Plan {
			return nil, err
		}
	}
	if req.Encrypt {
		if opts.Passphrase, err = passphrase(req, ui); err != nil {
			return nil, err
		}
		defer clear(opts.Passphrase)
		if p, err = NewPlan(src, opts); err != nil {
			return nil, err
		}
	}

	var t *Target
	if dev != nil {
		t, err = OpenDevice(dev)
	} else {
		t, err = CreateImage(req.Target, size, req.Force)
	}
	if err != nil {
		return nil, err
	}
	defer t.Close()
	prog := &Progress{}
	report := func(*Result, error) {}
	if ui.Writing != nil {
		report = ui.Writing(prog)
	}
	res, err := p.Write(ctx, t, prog)
	report(res, err)
	if err != nil {
		if dev != nil {
			return nil, fmt.Errorf("%w (%s has no partition table now: nothing will boot or mount from it)", err, dev.Path)
		}
		return nil, err
	}
	return res, nil
}

// plan opens the request's source and plans the clone. A plan for an
// encrypted save.dat has a stand-in passphrase: the real one is asked
// for only when something is to be written.
func plan(req Request, ui UI) (*Source, Options, *Plan, error) {
	onNode := req.From == ""
	opts := Options{Modules: req.Modules, SaveSize: req.SaveSize, WithSecrets: req.WithSecrets}
	if req.Encrypt {
		kdf, err := kdfOf(req, onNode)
		if err != nil {
			return nil, opts, nil, err
		}
		opts.KDF, opts.Passphrase = kdf, []byte("-")
	}
	var src *Source
	var err error
	if onNode {
		src, err = OpenNode("/")
	} else {
		src, err = OpenSource(req.From)
	}
	if err != nil {
		return nil, opts, nil, err
	}
	if onNode {
		if err := Idle(); err != nil && ui.Warn != nil {
			ui.Warn(err)
		}
		if fi, err := os.Stat(NodeTmp); err == nil && fi.IsDir() {
			opts.TempDir = NodeTmp
		}
	}
	switch {
	case req.State != "":
		opts.State = req.State
	case req.WithState:
		opts.State = "/" + overlays.UpperDir
		syscall.Sync()
	}
	p, err := NewPlan(src, opts)
	if err != nil {
		src.Close()
		return nil, opts, nil, err
	}
	return src, opts, p, nil
}

// passphrase is the save.dat's new passphrase: the request's, or the
// one the UI asks for.
func passphrase(req Request, ui UI) ([]byte, error) {
	switch {
	case req.Passphrase != "":
		return []byte(req.Passphrase), nil
	case ui.Passphrase == nil:
		return nil, cloneapi.BadRequest(errors.New("clone: --encrypt: no passphrase given and none to ask for"))
	}
	return ui.Passphrase()
}

// kdfOf is the save.dat's argon2id costs: the request's, or the
// defaults, the memory at most half this node's RAM when it clones
// itself (the node that unlocks the clone needs that much).
func kdfOf(req Request, onNode bool) (luks2.KDFParams, error) {
	k := luks2.KDFParams{Type: "argon2id", Time: req.KDFTime, Memory: req.KDFMemoryKiB, Threads: 4}
	if k.Time == 0 {
		k.Time = luks2.DefaultKDF.Time
	}
	if k.Memory == 0 {
		k.Memory = luks2.DefaultKDF.Memory
		if onNode {
			k.Memory = luks2.LocalKDFMemory(0)
		}
	}
	if err := k.Check(); err != nil {
		return luks2.KDFParams{}, cloneapi.BadRequest(fmt.Errorf("clone: --kdf-memory %dK --kdf-time %d: %w", k.Memory, k.Time, err))
	}
	return k, nil
}

// deviceTarget checks a device target, printing the plan for it when
// asked to.
func deviceTarget(p *Plan, sys System, dev *Device, req Request, out io.Writer) error {
	if req.Size != 0 {
		return cloneapi.BadRequest(errors.New("clone: --size is for image files; a device is cloned onto whole"))
	}
	checkErr := sys.Check(dev, p.MinSize(), req.Force)
	if !req.Plan {
		return checkErr
	}
	if err := p.Print(out, dev.Size); err != nil {
		return err
	}
	fmt.Fprintf(out, "target device %s\n", dev)
	if checkErr != nil {
		return checkErr
	}
	fmt.Fprintln(out, "nothing written (--plan)")
	return nil
}

// imageTarget checks an image file target and returns its size: the
// request's (rounded up to whole MiB), or without one, the source's
// size (with its room for a save.dat) or the smallest that holds the
// clone. It prints the plan for it when asked to.
func imageTarget(p *Plan, req Request, out io.Writer) (int64, error) {
	n, why := p.ImageSize(), "the source's size"
	if n == p.MinSize() {
		why = "the smallest that holds the clone"
	}
	if req.Size != 0 {
		n, why = (req.Size+1<<20-1)&^(1<<20-1), "--size"
	}
	var tooSmall error
	if sp, err := p.Space(n); err != nil || !sp.Fits() {
		tooSmall = fmt.Errorf("%w: an image of %s cannot hold the clone; it needs at least %s (leave --size out for the smallest)",
			ErrTooSmall, bytesize.Format(n), bytesize.Format(p.MinSize()))
	}
	if req.Plan {
		if err := p.Print(out, n); err != nil {
			return 0, err
		}
		fmt.Fprintf(out, "target image %s of %s (%s)\n", req.Target, bytesize.Format(n), why)
		if tooSmall != nil {
			return 0, tooSmall
		}
		fmt.Fprintln(out, "nothing written (--plan)")
		return n, nil
	}
	if _, err := os.Stat(req.Target); err == nil && !req.Force {
		return 0, fmt.Errorf("%w: %s exists: --force replaces it (once the clone is complete)", ErrRefused, req.Target)
	}
	return n, tooSmall
}
