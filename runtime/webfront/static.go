package webfront

import (
	"errors"
	"net/http"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// serveStatic serves file (a path under the app's Root, checked by
// appPath and resolve) from the app's filesystem, when its extension is
// one the route serves. The file is opened with openat2's
// RESOLVE_IN_ROOT, so that every symlink on the way resolves as the app
// sees it, inside FSRoot, however absolute or however many ".." it
// holds: Debian's dokuwiki links lib/tpl to /var/lib/dokuwiki/lib/tpl,
// a folder the app writes, and byzd (root) must not follow a link the
// app planted there to /etc/shadow. Only regular files anyone may read
// are served: a file the app keeps to itself stays its own.
func (p *fcgiApp) serveStatic(w http.ResponseWriter, r *http.Request, file string) {
	a := p.a
	if p.b.FSRoot == "" || !p.static[strings.ToLower(path.Ext(file))] {
		a.writePage(w, r, pageNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		a.writePage(w, r, pageMethod)
		return
	}
	f, err := openInRoot(p.b.FSRoot, path.Join(p.b.Root, file))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
			a.f.logf("webfront: %s: static %s: %v", a.name, file, err)
		}
		a.writePage(w, r, pageNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o004 == 0 {
		a.writePage(w, r, pageNotFound)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, file, fi.ModTime(), f)
}

// openInRoot opens name (absolute, within root) for reading with root
// as "/" for every step of the lookup. O_NONBLOCK keeps a FIFO from
// blocking the open; serveStatic refuses anything but a regular file.
func openInRoot(root, name string) (*os.File, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
