package mkfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"byzantium/ci/testenv"
	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"
)

// TestBadKDF: KDF costs no keyslot may have are refused by NewStream and
// Create before anything is made. NewStream used to make the file
// system, have luks2.Format refuse the costs, and then panic closing a
// nil Stream (byz clone --encrypt --kdf-memory 0).
func TestBadKDF(t *testing.T) {
	argon := func(tm, mem int) luks2.KDFParams {
		return luks2.KDFParams{Type: "argon2id", Time: tm, Memory: mem, Threads: 4}
	}
	for name, kdf := range map[string]luks2.KDFParams{
		"memory 0":          argon(4, 0),
		"memory 1K":         argon(4, 1),
		"memory 100G":       argon(4, 100<<20),
		"time 0":            argon(0, 1<<20),
		"time 2^31":         argon(1<<31-1, 1<<20),
		"17 passes of 1G":   argon(17, 1<<20),
		"threads 0":         {Type: "argon2id", Time: 1, Memory: 1 << 20},
		"pbkdf2 10":         {Type: "pbkdf2", Iterations: 10},
		"pbkdf2 2^30":       {Type: "pbkdf2", Iterations: 1 << 30},
		"scrypt":            {Type: "scrypt"},
		"argon2i (not new)": {Type: "argon2i", Time: 4, Memory: 1 << 20, Threads: 4},
	} {
		t.Run(name, func(t *testing.T) {
			scratch, dir := t.TempDir(), t.TempDir()
			opts := Options{Size: 64 << 20, Passphrase: []byte("mesh"), KDF: kdf}
			if s, err := NewStream(scratch, opts); !errors.Is(err, savedat.ErrBadOption) || s != nil {
				t.Errorf("NewStream = %v, %v; want savedat.ErrBadOption", s, err)
			}
			if err := Create(filepath.Join(dir, "changes", "save.dat"), opts); !errors.Is(err, savedat.ErrBadOption) {
				t.Errorf("Create = %v; want savedat.ErrBadOption", err)
			}
			for _, d := range []string{scratch, dir} {
				if ents, _ := os.ReadDir(d); len(ents) != 0 {
					t.Errorf("left in %s: %v", d, ents)
				}
			}
		})
	}
}

// TestCreateStopped: a Create stopped while the key is derived or while
// the file is written leaves nothing: no temporary file, no folder it
// made, no save.dat.
func TestCreateStopped(t *testing.T) {
	for _, at := range []string{"making", "deriving", "writing"} {
		t.Run(at, func(t *testing.T) {
			media := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			steps := 0
			opts := Options{Size: 64 << 20, Passphrase: []byte("mesh"), KDF: cheapKDF, TempDir: t.TempDir(),
				Progress: func(e Event) {
					steps++
					if strings.HasPrefix(e.Step, at) && (at != "writing" || e.Done >= e.Total/2) {
						cancel()
					}
				}}
			path := filepath.Join(media, "byzantium", "changes", "save.dat")
			if err := CreateContext(ctx, path, opts); !errors.Is(err, context.Canceled) {
				t.Fatalf("CreateContext = %v, want context.Canceled", err)
			}
			if ents, _ := os.ReadDir(media); len(ents) != 0 || steps == 0 {
				t.Errorf("left %v (after %d progress events)", ents, steps)
			}
			if ents, _ := os.ReadDir(opts.TempDir); len(ents) != 0 {
				t.Errorf("scratch files left: %v", ents)
			}
		})
	}
}

// TestCreateNoSpace: on a file system with too little room, Create
// refuses before writing anything.
func TestCreateNoSpace(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=40m"); err != nil {
		testenv.Unavailable(t, "mounting a tmpfs: "+err.Error())
	}
	defer unix.Unmount(dir, 0)
	err := Create(filepath.Join(dir, "byzantium", "changes", "save.dat"), Options{Size: 64 << 20})
	if !errors.Is(err, savedat.ErrNoSpace) || !strings.Contains(err.Error(), "64 MiB save.dat") {
		t.Errorf("Create on 40 MiB = %v, want savedat.ErrNoSpace", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused Create left %v", ents)
	}
}
