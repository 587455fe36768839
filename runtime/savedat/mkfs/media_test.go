package mkfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"byzantium/ci/testenv"
	"byzantium/runtime/savedat"
)

// TestCreateOnMedia: on read-only media of 100 MiB, a save.dat too large
// is refused with savedat.ErrNoSpace, one that fits is made and the media
// is read-only again, and a second one is refused with ErrMediaRefused;
// the refusals say why in a person's words.
func TestCreateOnMedia(t *testing.T) {
	testenv.RequireRoot(t)
	media := t.TempDir()
	if err := unix.Mount("tmpfs", media, "tmpfs", unix.MS_RDONLY, "size=100m"); err != nil {
		testenv.Unavailable(t, "mounting a tmpfs: "+err.Error())
	}
	defer unix.Unmount(media, unix.MNT_DETACH)
	const rel = "byzantium/changes/save.dat"
	err := CreateOnMedia(media, rel, Options{Size: 1 << 30})
	if !errors.Is(err, savedat.ErrNoSpace) || errors.Is(err, ErrMediaRefused) || !strings.HasPrefix(err.Error(), "the media has 100 MiB free") {
		t.Errorf("1 GiB on 100 MiB: %v, want ErrNoSpace", err)
	}
	if err := CreateOnMedia(media, rel, Options{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(media, rel)); err != nil || fi.Size() != 64<<20 {
		t.Errorf("the save.dat: %v", err)
	}
	var sfs unix.Statfs_t
	if unix.Statfs(media, &sfs); sfs.Flags&unix.ST_RDONLY == 0 {
		t.Error("the media was left writable")
	}
	err = CreateOnMedia(media, rel, Options{Size: 32 << 20})
	if !errors.Is(err, ErrMediaRefused) || !strings.HasPrefix(err.Error(), rel+" exists on the media") {
		t.Errorf("a second save.dat: %v, want ErrMediaRefused", err)
	}
}
