package builder

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"byzantium/builder/cache"
	"byzantium/builder/spec"
	"byzantium/builder/tmpdir"
	"byzantium/internal/bytesize"
	"byzantium/modules/entry"
)

// run is what one build makes outside the cache's artifacts, and must take
// away again: its work folder (in the cache), its staging folder (in the
// output folder), and the output folder itself when the build made it.
// Outputs are written into the staging folder and moved into place
// together at the end (commit), so a build that fails or is stopped leaves
// the outputs of the build before it as they were, and no half-written
// file; and it removes only what it made.
type run struct {
	out         string
	work, stage *tmpdir.Dir
	unlockCache func()
	// madeOut lists the folders of the output path this run created,
	// deepest first, for a failed run to remove again if still empty.
	madeOut []string

	mu        sync.Mutex // orders commit and stop
	stopped   atomic.Bool
	committed bool
	// sections counts the steps under way that create folders (unpacking
	// the kernel, extracting the dir output): stop waits for them, so
	// that none makes a folder again once it is removed.
	sections sync.WaitGroup
}

// errStopped is what the build's steps see once it is stopped.
var errStopped = errors.New("build stopped")

// start makes the run's folders: the output folder (and the folders above
// it) if missing, the work folder in the cache after sweeping those that
// killed builds left there, and the staging folder in the output folder
// after sweeping the same.
func start(c *cache.Cache, out, workParent string, logf func(string, ...any)) (r *run, err error) {
	r = &run{out: out}
	defer func() {
		if err != nil {
			r.close(true)
		}
	}()
	for p := filepath.Clean(out); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || filepath.Dir(p) == p {
			break
		}
		r.madeOut = append(r.madeOut, p)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return r, err
	}
	if r.unlockCache, err = c.Use(); err != nil {
		return r, err
	}
	report := func(found []tmpdir.Stale) {
		for _, s := range found {
			logf("removed %s, left by a build that was killed: %s", bytesize.Format(s.Size), s.Path)
		}
	}
	if workParent == "" {
		w, swept, err := c.NewWorkDir()
		report(swept)
		if err != nil {
			return r, err
		}
		r.work = w
	} else if r.work, err = tmpdir.New(workParent, ".work-"); err != nil {
		return r, err
	}
	swept, err := tmpdir.Sweep(out, spec.StagePrefix, false)
	report(swept)
	if err != nil {
		return r, err
	}
	if r.stage, err = tmpdir.New(out, spec.StagePrefix); err != nil {
		return r, err
	}
	return r, nil
}

// section runs f, a step that creates folders in the run's folders, unless
// the run is stopped; stop waits for it to return.
func (r *run) section(f func() error) error {
	r.mu.Lock()
	if r.stopped.Load() {
		r.mu.Unlock()
		return errStopped
	}
	r.sections.Add(1)
	r.mu.Unlock()
	defer r.sections.Done()
	return f()
}

// reader makes an entry stream fail once the run is stopped, at its next
// entry or block of body: the steps reading it then end within one
// read.
func (r *run) reader(er entry.Reader) entry.Reader {
	return &stoppable{Reader: er, stopped: &r.stopped}
}

type stoppable struct {
	entry.Reader
	stopped *atomic.Bool
}

func (s *stoppable) Next() (*entry.Header, error) {
	if s.stopped.Load() {
		return nil, errStopped
	}
	return s.Reader.Next()
}

func (s *stoppable) Read(p []byte) (int, error) {
	if s.stopped.Load() {
		return 0, errStopped
	}
	return s.Reader.Read(p)
}

// commit runs moves (renames into the output folder) unless the run is
// stopped; a stop that comes meanwhile waits for it.
func (r *run) commit(moves func() error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped.Load() {
		return errStopped
	}
	r.committed = true
	return moves()
}

// stop ends the run from outside its goroutine: no commit starts after it,
// the steps that create folders end, and then everything the run made is
// removed. It reports whether the outputs were committed before it.
func (r *run) stop() (committed bool) {
	r.mu.Lock()
	r.stopped.Store(true)
	committed = r.committed
	r.mu.Unlock()
	r.sections.Wait()
	return committed
}

// close removes the run's folders and, when the run failed, the output
// folders it made if they are still empty.
func (r *run) close(failed bool) error {
	var errs []error
	if r.stage != nil {
		errs = append(errs, r.stage.Remove())
	}
	if r.work != nil {
		errs = append(errs, r.work.Remove())
	}
	if r.unlockCache != nil {
		r.unlockCache()
		r.unlockCache = nil
	}
	if failed {
		for _, p := range r.madeOut {
			if os.Remove(p) != nil {
				break // not empty: it holds something else now
			}
		}
	}
	return errors.Join(errs...)
}

// mkdir makes a folder in one of the run's folders: with Mkdir, which
// fails once the run's folder is removed, where MkdirAll would make it
// again.
func mkdir(p string) error {
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}
