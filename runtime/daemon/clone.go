package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"byzantium/image/clone/cloneapi"
	"byzantium/runtime/luks2"
)

// Cloning is done by the byz command (/usr/bin/byz clone), which links
// the image writers byzd must not: byzd runs it as a child, one clone at
// a time, hands it the request as JSON on its standard input (the new
// passphrase with it, never on a command line), and follows its JSON
// progress lines (cloneapi.Event) for the API and the panel. byz lowers its own I/O
// priority, so the node's services keep the disk.

// CloneRequest is the body of POST /api/v1/clone.
type CloneRequest struct {
	// Target is the block device to write, "/dev/sdb".
	Target string `json:"target"`
	// SaveSizeBytes, when set, makes a fresh save.dat of that size.
	SaveSizeBytes int64 `json:"save_size_bytes,omitempty"`
	// Passphrase, when set with a save.dat, encrypts it (LUKS2); never
	// the node's own.
	Passphrase string `json:"passphrase,omitempty"`
	// KDFMemoryKiB and KDFTime set the new keyslot's argon2id cost (0:
	// the default, its memory capped at half this node's RAM).
	KDFMemoryKiB int `json:"kdf_memory_kib,omitempty"`
	KDFTime      int `json:"kdf_time,omitempty"`
	// WithState carries the node's changes as a module, without its
	// identity and secrets unless WithSecrets.
	WithState   bool `json:"with_state,omitempty"`
	WithSecrets bool `json:"with_secrets,omitempty"`
	// Modules chooses the optional modules to copy (nil: all).
	Modules []string `json:"modules,omitempty"`
	// Force clones onto a disk that does not say it is removable.
	Force bool `json:"force,omitempty"`
}

// CloneJob is the state of the last clone: GET /api/v1/clone.
type CloneJob struct {
	State    string     `json:"state"` // "idle", "running", "done", "failed"
	Target   string     `json:"target,omitempty"`
	Phase    string     `json:"phase,omitempty"`
	File     string     `json:"file,omitempty"`
	Bytes    int64      `json:"bytes"`
	Total    int64      `json:"total"`
	Rate     float64    `json:"rate"`  // bytes per second
	ETA      float64    `json:"eta_s"` // seconds
	Error    string     `json:"error,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
}

// Cloner runs clones.
type Cloner struct {
	// Byz is the byz binary; "" means /usr/bin/byz.
	Byz string
	Log *slog.Logger

	mu     sync.Mutex
	job    CloneJob
	cancel context.CancelFunc
}

var devicePattern = regexp.MustCompile(`^/dev/[a-z0-9]+$`)

// Start starts a clone, refusing a second one while the first runs. The
// checks of the target (boot device, mounted, size, removable) are byz
// clone's: it refuses before writing anything, and the job fails with
// its message.
func (c *Cloner) Start(req CloneRequest) (CloneJob, error) {
	if !devicePattern.MatchString(req.Target) {
		return CloneJob{}, &httpError{http.StatusBadRequest, fmt.Errorf("target %q: name a whole disk, like /dev/sdb (GET /api/v1/disks lists them)", req.Target)}
	}
	if req.Passphrase != "" && req.SaveSizeBytes == 0 {
		return CloneJob{}, &httpError{http.StatusBadRequest, errors.New("a passphrase encrypts the clone's new save.dat: give save_size_bytes too")}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.job.State == "running" {
		return c.job, &httpError{http.StatusConflict, fmt.Errorf("a clone to %s is running: wait for it, or cancel it", c.job.Target)}
	}
	byz := c.Byz
	if byz == "" {
		byz = "/usr/bin/byz"
	}
	// The whole request, passphrase included, goes to byz on its standard
	// input as JSON: nothing of it is on the command line.
	// A save.dat is made in whole MiB.
	creq := cloneapi.Request{Target: req.Target, SaveSize: max(req.SaveSizeBytes, 0) >> 20 << 20, WithState: req.WithState,
		WithSecrets: req.WithSecrets, Modules: req.Modules, Force: req.Force}
	if req.Passphrase != "" {
		creq.Encrypt, creq.Passphrase = true, req.Passphrase
		creq.KDFMemoryKiB, creq.KDFTime = luks2.LocalKDFMemory(req.KDFMemoryKiB), max(req.KDFTime, 0)
	}
	body, err := json.Marshal(creq)
	if err != nil {
		return CloneJob{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, byz, "clone", "--request", "-", "--yes", "--progress=json")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return CloneJob{}, err
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 8 << 10}
	if err := cmd.Start(); err != nil {
		cancel()
		return CloneJob{}, fmt.Errorf("starting %s: %w", byz, err)
	}
	now := time.Now().UTC()
	c.job = CloneJob{State: "running", Target: req.Target, Phase: "starting", Started: &now}
	c.cancel = cancel
	c.Log.Info("clone started", "target", req.Target, "save_size", req.SaveSizeBytes, "encrypted", req.Passphrase != "", "with_state", req.WithState)
	go c.follow(cmd, out, &stderr, cancel)
	return c.job, nil
}

// follow reads byz's progress lines until it exits.
func (c *Cloner) follow(cmd *exec.Cmd, out interface{ Read([]byte) (int, error) }, stderr *strings.Builder, cancel context.CancelFunc) {
	defer cancel()
	sc := bufio.NewScanner(out)
	lastErr := ""
	for sc.Scan() {
		var p cloneapi.Event
		if json.Unmarshal(sc.Bytes(), &p) != nil {
			continue
		}
		c.mu.Lock()
		if p.Phase != "" {
			c.job.Phase = p.Phase
		}
		c.job.File, c.job.Bytes, c.job.Total, c.job.Rate, c.job.ETA = p.File, p.Bytes, p.Total, p.Rate, p.ETA
		c.mu.Unlock()
		if p.Error != "" {
			lastErr = p.Error
		}
	}
	err := cmd.Wait()
	now := time.Now().UTC()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.job.Finished = &now
	if err == nil {
		c.job.State, c.job.Phase = "done", "done"
		c.Log.Info("clone finished", "target", c.job.Target, "bytes", c.job.Bytes, "took", now.Sub(*c.job.Started).Round(time.Second))
		return
	}
	c.job.State = "failed"
	switch {
	case lastErr != "":
		c.job.Error = lastErr
	case strings.TrimSpace(stderr.String()) != "":
		c.job.Error = lastLine(stderr.String())
	default:
		c.job.Error = err.Error()
	}
	c.Log.Warn("clone failed", "target", c.job.Target, "err", c.job.Error)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Job returns the current or last clone's state.
func (c *Cloner) Job() CloneJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.job.State == "" {
		return CloneJob{State: "idle"}
	}
	return c.job
}

// Cancel stops a running clone; byz leaves the target without a partition
// table, so it never looks bootable.
func (c *Cloner) Cancel() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.job.State != "running" || c.cancel == nil {
		return &httpError{http.StatusConflict, errors.New("no clone is running")}
	}
	c.cancel()
	return nil
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w interface{ WriteString(string) (int, error) }
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.WriteString(string(p[:k]))
		l.n -= k
	}
	return len(p), nil
}

// Disk is one whole disk the node sees, for choosing a clone target.
type Disk struct {
	Name      string `json:"name"` // "sdb"
	Path      string `json:"path"` // "/dev/sdb"
	SizeBytes int64  `json:"size_bytes"`
	Model     string `json:"model,omitempty"`
	Serial    string `json:"serial,omitempty"`
	Removable bool   `json:"removable"`
	// USB reports a disk on a USB bus (sticks often say they are not
	// removable).
	USB bool `json:"usb"`
}

func (w *Web) apiDisks(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, listDisks(w.Root))
}

func (w *Web) apiCloneStart(rw http.ResponseWriter, r *http.Request) {
	var req CloneRequest
	if !decode(rw, r, &req) {
		return
	}
	job, err := w.Cloner.Start(req)
	req.Passphrase = ""
	if err != nil {
		writeError(rw, err)
		return
	}
	writeJSON(rw, http.StatusAccepted, job)
}

func (w *Web) apiCloneJob(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, w.Cloner.Job())
}

func (w *Web) apiCloneCancel(rw http.ResponseWriter, _ *http.Request) {
	if err := w.Cloner.Cancel(); err != nil {
		writeError(rw, err)
		return
	}
	writeJSON(rw, http.StatusAccepted, w.Cloner.Job())
}

// clonePage shows the disks, the form, and the running clone's progress
// (the page refreshes itself while a clone runs: no script needed).
func (w *Web) clonePage(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "clone.title")
	job := w.Cloner.Job()
	p.Data = cloneData{Job: job, Disks: listDisks(w.Root)}
	if job.State == "running" {
		rw.Header().Set("Refresh", "2")
	}
	w.render(rw, http.StatusOK, "clone", p)
}

type cloneData struct {
	Job   CloneJob
	Disks []Disk
	// Confirm is the disk to confirm, and Nonce names the request kept
	// on the server (the page carries nothing else of it).
	Confirm *Disk
	Nonce   string
}

// clonePost confirms, then starts: the first POST checks the form, keeps
// the request on the server and shows the disk's model, serial and size
// with a one-time nonce; the second (confirm=yes) names the nonce and
// starts that request.
func (w *Web) clonePost(rw http.ResponseWriter, r *http.Request) {
	p := w.page(r, "clone.title")
	data := cloneData{Job: w.Cloner.Job(), Disks: listDisks(w.Root)}
	refuse := func(status int, msg string) {
		p.Error = msg
		p.Data = data
		w.render(rw, status, "clone", p)
	}
	findDisk := func(path string) *Disk {
		for i := range data.Disks {
			if data.Disks[i].Path == path {
				return &data.Disks[i]
			}
		}
		return nil
	}
	session := whoOf(r).sessionID()
	if r.PostFormValue("confirm") == "yes" {
		pc, ok := w.clones.take(r.PostFormValue("nonce"), session)
		if !ok {
			refuse(http.StatusBadRequest, p.T("clone.expired"))
			return
		}
		// The disk shown must still be the one there.
		if d := findDisk(pc.req.Target); d == nil || *d != pc.disk {
			refuse(http.StatusConflict, p.T("clone.nodisk"))
			return
		}
		if _, err := w.Cloner.Start(pc.req); err != nil {
			refuse(statusOf(err), err.Error())
			return
		}
		done(rw, r, "/clone", "clone.started")
		return
	}
	mb, _ := strconv.ParseInt(r.PostFormValue("save_mb"), 10, 64)
	req := CloneRequest{Target: r.PostFormValue("target"), SaveSizeBytes: mb << 20, WithState: r.PostFormValue("with_state") == "on",
		Force: r.PostFormValue("force") == "on"}
	if mb < 0 || mb > 1<<30 {
		refuse(http.StatusBadRequest, p.T("clone.save.hint"))
		return
	}
	if pass := r.PostFormValue("passphrase"); pass != "" {
		if pass != r.PostFormValue("confirm_passphrase") {
			refuse(http.StatusBadRequest, p.T("setup.mismatch"))
			return
		}
		req.Passphrase = pass
	}
	disk := findDisk(req.Target)
	if disk == nil {
		refuse(http.StatusBadRequest, p.T("clone.nodisk"))
		return
	}
	data.Confirm, data.Nonce = disk, w.clones.put(req, *disk, session)
	p.Data = data
	w.render(rw, http.StatusOK, "clone", p)
}

func (w *Web) cloneCancel(rw http.ResponseWriter, r *http.Request) {
	if err := w.Cloner.Cancel(); err != nil {
		w.fail(rw, r, statusOf(err), err)
		return
	}
	done(rw, r, "/clone", "clone.cancelled")
}
