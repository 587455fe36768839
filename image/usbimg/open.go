package usbimg

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"byzantium/image/fat"
	"byzantium/image/gpt"
)

// ErrNoMedia reports a disk that holds no FAT32 file system with a
// byzantium/ folder: not Byzantium media (or an ISO, whose file system is
// ISO 9660).
var ErrNoMedia = errors.New("usbimg: no media tree on the disk")

// Media is the FAT32 file system that holds a media tree on a disk.
type Media struct {
	FS *fat.FS
	// Offset is where the file system starts on the disk.
	Offset int64
	// Partition is its GPT partition number, from 1; 0 for a file system
	// on the whole disk (a stick formatted without a partition table).
	Partition int
}

// Find finds the media tree on a disk of size bytes that r reads: the
// first GPT partition holding a FAT32 file system with a byzantium/
// folder, or, on a disk without a GPT, such a file system on the whole
// disk. It reads, never writes.
func Find(r io.ReaderAt, size int64) (*Media, error) {
	media := func(off int64) *fat.FS {
		fsys, err := fat.OpenFS(r, off)
		if err != nil {
			return nil
		}
		if fi, err := fs.Stat(fsys, "byzantium"); err != nil || !fi.IsDir() {
			return nil
		}
		return fsys
	}
	if t, err := gpt.Read(r, size); err == nil {
		for i, p := range t.Partitions {
			if fsys := media(p.Offset()); fsys != nil {
				return &Media{FS: fsys, Offset: p.Offset(), Partition: i + 1}, nil
			}
		}
		return nil, fmt.Errorf("%w: a GPT disk without a FAT32 partition holding a byzantium/ folder", ErrNoMedia)
	}
	if fsys := media(0); fsys != nil {
		return &Media{FS: fsys}, nil
	}
	return nil, fmt.Errorf("%w: neither a GPT disk nor a FAT32 file system with a byzantium/ folder in it", ErrNoMedia)
}

// Image is a disk, an image file or a block device, open with its media
// tree found.
type Image struct {
	*os.File
	// Size is the disk's length in bytes.
	Size int64
	Media
}

// Open opens the disk at path with flag (os.O_RDONLY to read the media,
// os.O_RDWR to add files to it) and finds its media tree (Find). The
// size is taken by seeking, which works for block devices too, whose
// Stat size is 0. Errors are the os package's (which name path) or
// ErrNoMedia ones (which leave naming it to the caller).
func Open(path string, flag int) (*Image, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	m, err := Find(f, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Image{File: f, Size: size, Media: *m}, nil
}
