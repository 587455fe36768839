package initsys

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"byzantium/overlays"
	"byzantium/runtime/changes"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"

	"golang.org/x/sys/unix"
)

// dmName is the device-mapper name of an unlocked save.dat.
const dmName = "byz-changes"

// errSkipped is the user's explicit choice to boot without persistence.
var errSkipped = errors.New("the passphrase prompt was skipped: booting without persistence, as asked")

// upperStore mounts what will hold the overlay's upper and work folders
// at rw: the persistence store changes= (or the media's save.dat) names,
// or a tmpfs. A store that fails is never formatted or repaired: the boot
// goes on with a tmpfs and a warning on the console and in byzd's status.
func (s *stacker) upperStore(rw string, media *Media) (overlays.Persistence, error) {
	p, err := s.persistentStore(rw, media)
	if err == nil {
		return p, nil
	}
	warn := err.Error()
	if errors.Is(err, errSkipped) {
		warn = errSkipped.Error()
	}
	for _, l := range []string{
		"WARNING: persistence is OFF: " + warn,
		"WARNING: changes made now are lost at shutdown; the store was left untouched for repair",
	} {
		s.logf("%s", l)
	}
	if err := s.mountTmpfs(rw); err != nil {
		return overlays.Persistence{}, err
	}
	return overlays.Persistence{Mode: overlays.ModeRAM, Store: p.Store, Encrypted: p.Encrypted, Warning: warn}, nil
}

// persistentStore mounts the persistence store at rw. With nothing asked
// and nothing found it mounts a tmpfs (mode "ram", no warning).
func (s *stacker) persistentStore(rw string, media *Media) (overlays.Persistence, error) {
	ch := s.cmd.Changes
	if _, fresh := s.cmd.Byz["fresh"]; fresh {
		s.logf("persistence: byz.fresh: changes are kept in RAM only")
		return overlays.Persistence{Mode: overlays.ModeFresh}, s.mountTmpfs(rw)
	}
	if ch == "" {
		if media == nil || media.FSType == "iso9660" {
			return overlays.Persistence{Mode: overlays.ModeRAM}, s.mountTmpfs(rw)
		}
		if _, err := os.Stat(filepath.Join(media.Dir, overlays.DefaultSaveDat)); err != nil {
			return overlays.Persistence{Mode: overlays.ModeRAM}, s.mountTmpfs(rw)
		}
		return s.saveDat(rw, media, overlays.DefaultSaveDat)
	}
	if rest, ok := strings.CutPrefix(ch, "EXIT:"); ok {
		return s.changesAtExit(rw, media, rest)
	}
	return s.mountChanges(rw, media, ch)
}

// mountChanges mounts the store ch names (a device, a save.dat or a
// folder of the media) at dir.
func (s *stacker) mountChanges(dir string, media *Media, ch string) (overlays.Persistence, error) {
	switch {
	case strings.HasPrefix(ch, "/dev/"), strings.HasPrefix(ch, "LABEL="), strings.HasPrefix(ch, "UUID="):
		return s.changesDevice(dir, ch)
	case media == nil:
		return overlays.Persistence{Mode: overlays.ModeRAM, Store: ch}, fmt.Errorf("changes=%s: no boot media to hold it", ch)
	case !filepath.IsLocal(strings.TrimPrefix(ch, "/")):
		// ".." would leave the media, and "/" is the media's root.
		return overlays.Persistence{Mode: overlays.ModeRAM, Store: ch}, fmt.Errorf("changes=%s: name a folder or a .dat file inside the boot media (e.g. changes=/byzantium/changes)", ch)
	case strings.HasSuffix(ch, ".dat"):
		return s.saveDat(dir, media, strings.TrimPrefix(ch, "/"))
	default:
		return s.changesDir(dir, media, strings.TrimPrefix(ch, "/"))
	}
}

// changesAtExit is changes=EXIT:STORE: the store is mounted at
// overlays.StoreDir and its saved changes copied into a tmpfs upper
// layer, which byzd (at shutdown, or when asked) copies back. If the changes cannot all be
// loaded, the store is unmounted and not used: saving a partial copy
// would delete the rest.
func (s *stacker) changesAtExit(rw string, media *Media, ch string) (overlays.Persistence, error) {
	if ch == "" || strings.HasPrefix(ch, "EXIT:") {
		return overlays.Persistence{Mode: overlays.ModeRAM, Store: "EXIT:" + ch}, fmt.Errorf("changes=EXIT:%s: name a store after EXIT: (a save.dat, a partition or a folder)", ch)
	}
	store := filepath.Join(s.root, overlays.StoreDir)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return overlays.Persistence{Mode: overlays.ModeRAM, Store: ch}, fmt.Errorf("changes=EXIT:%s: %w", ch, err)
	}
	p, err := s.mountChanges(store, media, ch)
	if err != nil {
		return p, err
	}
	p.Backing, p.Mode = p.Mode, overlays.ModeExit
	tmpfsUp := false
	giveUp := func(err error) (overlays.Persistence, error) {
		if tmpfsUp {
			if uerr := s.unmount(rw, unix.MNT_DETACH); uerr != nil {
				s.logf("warning: %v", uerr)
			}
		}
		if uerr := s.unmount(store, 0); uerr != nil {
			s.logf("warning: unmounting the store: %v", uerr)
		}
		if p.Encrypted {
			luks2.Close(dmName)
		}
		return p, fmt.Errorf("changes=EXIT:%s: %w", ch, err)
	}
	if err := s.mountTmpfs(rw); err != nil {
		return giveUp(err)
	}
	tmpfsUp = true
	st, interrupted, err := changes.Load(store, filepath.Join(rw, "upper"))
	if err != nil {
		return giveUp(fmt.Errorf("loading the saved changes into RAM: %w (boot with a larger ramsize=?)", err))
	}
	if interrupted {
		s.logf("WARNING: the last save to %s did not finish: some files may be older than others", ch)
	}
	s.logf("persistence: changes are kept in RAM and saved to %s at shutdown (%d entries, %d bytes loaded)", ch, st.Entries, st.Bytes)
	return p, nil
}

func (s *stacker) mountTmpfs(rw string) error {
	data := "mode=0755"
	if s.cmd.RAMSize != "" {
		data += ",size=" + s.cmd.RAMSize
	}
	if err := s.mount("tmpfs", rw, "tmpfs", 0, data); err != nil {
		return &FatalError{Err: fmt.Errorf("the upper layer: mount -t tmpfs -o %s %s: %w", data, rw, err), Hint: "check ramsize= (e.g. ramsize=60% or ramsize=2G)"}
	}
	return nil
}

// saveDat mounts the save.dat at rel on the media: the media is made
// writable, the file attached to a loop device, unlocked if it is LUKS2,
// and its ext4 mounted.
func (s *stacker) saveDat(rw string, media *Media, rel string) (overlays.Persistence, error) {
	p := overlays.Persistence{Mode: overlays.ModeSaveDat, Store: rel}
	file := filepath.Join(media.Dir, rel)
	if _, err := os.Stat(file); err != nil {
		return p, fmt.Errorf("save.dat %s: %w", rel, err)
	}
	if media.FSType == "iso9660" {
		return p, fmt.Errorf("save.dat %s: the media is a CD image, which cannot be written", rel)
	}
	// The media was mounted read-only to be searched.
	if err := s.mount(media.Dev, media.Dir, "", unix.MS_REMOUNT, ""); err != nil {
		return p, fmt.Errorf("save.dat %s: making %s writable: %w (is the stick write-protected?)", rel, media.Dev, err)
	}
	_, dev, err := attachLoopMode(s.root, file, true)
	if err != nil {
		return p, fmt.Errorf("save.dat %s: %w", rel, err)
	}
	f, err := os.Open(dev)
	if err != nil {
		return p, fmt.Errorf("save.dat %s: %w", rel, err)
	}
	h, lerr := luks2.Read(f)
	if lerr == nil {
		p.Encrypted = true
		// A volume that cannot be mapped (unmet requirements, say) is
		// refused before a passphrase is asked for.
		if err := h.CheckActivate(); err != nil {
			f.Close()
			return p, fmt.Errorf("save.dat %s: %w", rel, err)
		}
		mapped, err := s.unlock(f, dev, h, rel)
		f.Close()
		if err != nil {
			return p, err
		}
		dev = mapped
	} else {
		info, ok := sniff(f)
		f.Close()
		if !ok || info.Type != "ext4" {
			return p, fmt.Errorf("save.dat %s holds neither ext4 nor LUKS2 (%v)", rel, lerr)
		}
	}
	if err := s.mountStore(dev, rw); err != nil {
		if p.Encrypted {
			luks2.Close(dmName)
		}
		return p, fmt.Errorf("save.dat %s: %w", rel, err)
	}
	s.logf("persistence: save.dat %s%s", rel, map[bool]string{true: " (encrypted)"}[p.Encrypted])
	return p, nil
}

// changesDevice mounts a whole ext4 partition named by /dev/…, LABEL= or
// UUID=.
func (s *stacker) changesDevice(rw, ch string) (overlays.Persistence, error) {
	p := overlays.Persistence{Mode: overlays.ModeDevice, Store: ch}
	dev := ""
	for _, name := range blockCandidates(s.root) {
		path := filepath.Join(s.root, "dev", name)
		if ch == "/dev/"+name {
			dev = path
			break
		}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		info, ok := sniff(f)
		f.Close()
		if !ok {
			continue
		}
		if l, isLabel := strings.CutPrefix(ch, "LABEL="); isLabel && strings.EqualFold(info.Label, l) ||
			strings.HasPrefix(ch, "UUID=") && strings.EqualFold(info.UUID, strings.TrimPrefix(ch, "UUID=")) {
			dev = path
			break
		}
	}
	if dev == "" {
		return p, fmt.Errorf("changes=%s: no such device", ch)
	}
	f, err := os.Open(dev)
	if err != nil {
		return p, fmt.Errorf("changes=%s: %w", ch, err)
	}
	info, ok := sniff(f)
	f.Close()
	if !ok || info.Type != "ext4" {
		return p, fmt.Errorf("changes=%s: %s holds no ext4 file system (persistence needs one; it is never formatted for you)", ch, dev)
	}
	if err := s.mountStore(dev, rw); err != nil {
		return p, fmt.Errorf("changes=%s: %w", ch, err)
	}
	s.logf("persistence: %s", ch)
	return p, nil
}

// changesDir keeps the changes in a folder of the media, which must be a
// POSIX file system (not FAT, not a CD).
func (s *stacker) changesDir(rw string, media *Media, rel string) (overlays.Persistence, error) {
	p := overlays.Persistence{Mode: overlays.ModeDir, Store: rel}
	if media.FSType == "iso9660" {
		return p, fmt.Errorf("changes=/%s: the media is a CD image (iso9660), which cannot be written; keep the changes on a partition (changes=/dev/… or LABEL=…) or boot from a USB stick", rel)
	}
	if media.FSType != "ext4" {
		return p, fmt.Errorf("changes=/%s: the media is %s, which cannot hold owners and modes; use a save.dat (changes=/%s/save.dat)", rel, media.FSType, rel)
	}
	if err := s.mount(media.Dev, media.Dir, "", unix.MS_REMOUNT, ""); err != nil {
		return p, fmt.Errorf("changes=/%s: making %s writable: %w", rel, media.Dev, err)
	}
	dir := filepath.Join(media.Dir, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return p, fmt.Errorf("changes=/%s: %w", rel, err)
	}
	if err := s.mount(dir, rw, "", unix.MS_BIND, ""); err != nil {
		return p, fmt.Errorf("changes=/%s: %w", rel, err)
	}
	s.logf("persistence: folder /%s on %s", rel, media.Dev)
	return p, nil
}

// mountStore mounts an ext4 store read-write at rw. The kernel replays
// its journal after a crash; a store it refuses is left alone.
func (s *stacker) mountStore(dev, rw string) error {
	if err := s.mount(dev, rw, "ext4", unix.MS_NOATIME, ""); err != nil {
		return fmt.Errorf("mount -t ext4 %s: %w (run e2fsck on it from another machine)", dev, err)
	}
	// A save.dat grown since the last boot (byz persist resize): the
	// file system grows online to fill it. Best effort: the store works
	// at its old size.
	if before, after, err := savedat.GrowFS(rw); err != nil {
		s.logf("warning: growing the store's file system: %v", err)
	} else if after > before {
		s.logf("persistence: grew the store's file system from %d MiB to %d MiB", before>>20, after>>20)
	}
	// e2fsck puts what it salvages in lost+found; go-diskfs's mkfs (and
	// so a save.dat from byz persist create) makes none.
	if err := os.Mkdir(filepath.Join(rw, "lost+found"), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		s.logf("warning: %v", err)
	}
	return nil
}

// unlock asks for the passphrase on every active console (the screen's
// keyboard and the serial port both answer; the first line typed wins)
// until it opens the volume, or the user chooses to boot without
// persistence, and maps the volume through dm-crypt. The passphrase is
// never echoed nor logged, and it and the key are wiped once used.
func (s *stacker) unlock(r io.ReaderAt, dev string, h *luks2.Header, rel string) (string, error) {
	p, err := openPrompt(s.root)
	if err != nil {
		return "", fmt.Errorf("save.dat %s is encrypted, and there is no console to ask for its passphrase: %w", rel, err)
	}
	defer p.close()
	s.logf("%s is encrypted: asking for its passphrase on the console", rel)
	for attempt := 1; ; attempt++ {
		pass, err := p.ask(fmt.Sprintf("byz-init: %s is encrypted. Passphrase (an empty line to boot without persistence): ", rel), false)
		if err != nil {
			return "", fmt.Errorf("save.dat %s: reading the passphrase: %w", rel, err)
		}
		if len(pass) == 0 {
			ans, err := p.ask("byz-init: boot WITHOUT persistence (changes are lost at shutdown)? Type yes to confirm: ", true)
			if err != nil {
				return "", fmt.Errorf("save.dat %s: %w", rel, err)
			}
			if string(ans) == "yes" {
				return "", errSkipped
			}
			continue
		}
		key, _, err := luks2.Unlock(r, h, pass)
		clear(pass)
		if errors.Is(err, luks2.ErrWrongPassphrase) {
			s.logf("wrong passphrase for %s (attempt %d); try again", rel, attempt)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("save.dat %s: %w", rel, err)
		}
		mapped, err := luks2.Open(dev, h, key, dmName)
		clear(key)
		if err != nil {
			return "", fmt.Errorf("save.dat %s: %w", rel, err)
		}
		s.logf("unlocked %s", rel)
		return mapped, nil
	}
}

// prompt reads lines from every active console at once.
type prompt struct {
	ttys  []*os.File
	saved map[*os.File]*unix.Termios
	lines chan []byte
}

// openPrompt opens the active consoles (/sys/class/tty/console/active;
// /dev/console when that is unreadable) and starts a reader on each.
func openPrompt(root string) (*prompt, error) {
	names := []string{"console"}
	if b, err := os.ReadFile(filepath.Join(root, "sys/class/tty/console/active")); err == nil && len(strings.Fields(string(b))) > 0 {
		names = strings.Fields(string(b))
	}
	p := &prompt{saved: map[*os.File]*unix.Termios{}, lines: make(chan []byte, 4)}
	var firstErr error
	for _, n := range names {
		f, err := os.OpenFile(filepath.Join(root, "dev", n), os.O_RDWR, 0)
		if err != nil {
			firstErr = err
			continue
		}
		if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			p.saved[f] = t
		}
		p.ttys = append(p.ttys, f)
		go func() {
			in := bufio.NewReader(f)
			for {
				line, err := in.ReadBytes('\n')
				if err != nil {
					clear(line)
					return
				}
				p.lines <- line
			}
		}()
	}
	if len(p.ttys) == 0 {
		return nil, firstErr
	}
	return p, nil
}

// ask prints the question on every console and returns the first line
// typed on any, without its newline; echo is off unless echo is set.
func (p *prompt) ask(question string, echo bool) ([]byte, error) {
	for f, t := range p.saved {
		q := *t
		q.Lflag |= unix.ICANON
		if echo {
			q.Lflag |= unix.ECHO
		} else {
			q.Lflag &^= unix.ECHO
		}
		unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &q)
	}
	for _, f := range p.ttys {
		fmt.Fprint(f, question)
	}
	line, ok := <-p.lines
	for _, f := range p.ttys {
		fmt.Fprintln(f)
	}
	if !ok {
		return nil, io.EOF
	}
	out := bytes.Clone(bytes.TrimRight(line, "\r\n"))
	clear(line)
	return out, nil
}

// close restores the consoles and stops the readers.
func (p *prompt) close() {
	for f, t := range p.saved {
		unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
	}
	for _, f := range p.ttys {
		f.Close()
	}
}

// writePersistence leaves p for byzd.
func writePersistence(root string, p overlays.Persistence) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	path := filepath.Join(root, overlays.PersistenceJSON)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
