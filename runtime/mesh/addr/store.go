package addr

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FileName is the identity's file in its state folder.
const FileName = "identity.json"

// maxFile bounds what Load reads: the file is under 200 bytes.
const maxFile = 4096

type fileJSON struct {
	Secret  string    `json:"secret"` // 64 hex digits
	Roll    uint32    `json:"roll"`
	Claimed time.Time `json:"claimed"`
}

// New makes a fresh identity claimed at now, from rnd (crypto/rand's
// Reader when nil).
func New(rnd io.Reader, now time.Time) (Identity, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var id Identity
	if _, err := io.ReadFull(rnd, id.Secret[:]); err != nil {
		return Identity{}, fmt.Errorf("addr: reading random bytes: %w", err)
	}
	id.Claimed = now.UTC().Truncate(time.Second)
	return id, nil
}

// Load reads the identity in dir, or makes and saves a fresh one when
// there is none or the file is corrupt (logged through logf, which may be
// nil). made says whether a new identity was made.
func Load(dir string, now time.Time, logf func(string, ...any)) (id Identity, made bool, err error) {
	p := filepath.Join(dir, FileName)
	id, err = read(p)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		if logf != nil {
			logf("mesh identity %s unreadable (%v): making a new one", p, err)
		}
	}
	id, err = New(nil, now)
	if err != nil {
		return Identity{}, false, err
	}
	if err := Save(dir, id); err != nil {
		return Identity{}, false, err
	}
	return id, true, nil
}

func read(p string) (Identity, error) {
	f, err := os.Open(p)
	if err != nil {
		return Identity{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return Identity{}, fmt.Errorf("addr: reading %s: %w", p, err)
	}
	if len(b) > maxFile {
		return Identity{}, fmt.Errorf("addr: %s is over %d bytes", p, maxFile)
	}
	var j fileJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Identity{}, fmt.Errorf("addr: %s: %w", p, err)
	}
	sec, err := hex.DecodeString(j.Secret)
	if err != nil || len(sec) != 32 {
		return Identity{}, fmt.Errorf("addr: %s: secret is not 64 hex digits", p)
	}
	if j.Claimed.IsZero() || j.Claimed.Unix() < 0 || j.Claimed.Unix() > 0xFFFFFFFF {
		return Identity{}, fmt.Errorf("addr: %s: claim time %v out of range", p, j.Claimed)
	}
	var id Identity
	copy(id.Secret[:], sec)
	id.Roll = j.Roll
	id.Claimed = j.Claimed.UTC()
	return id, nil
}

// Save writes the identity to dir (made 0700 if missing) through a
// temporary file renamed into place, mode 0600: the secret is the node's.
func Save(dir string, id Identity) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	b, err := json.MarshalIndent(fileJSON{
		Secret:  hex.EncodeToString(id.Secret[:]),
		Roll:    id.Roll,
		Claimed: id.Claimed.UTC(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	b = append(b, '\n')
	f, err := os.CreateTemp(dir, ".identity-*.json")
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("addr: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("addr: writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("addr: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, FileName)); err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	return nil
}
