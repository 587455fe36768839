package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"byzantium/image/fat"
	"byzantium/image/gpt"
)

// openMediaDisk opens, read-only and without mounting, the FAT32 file
// system holding byzantium/ in a USB image or on a stick: in a GPT
// partition, or (a stick formatted without a partition table) the whole
// disk. modules.ResolveStack reads the modules from it.
func openMediaDisk(p string) (fs.FS, string, io.Closer, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, "", nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, "", nil, err
	}
	media := func(off int64) *fat.FS {
		fsys, err := fat.OpenFS(f, off)
		if err != nil {
			return nil
		}
		if fi, err := fs.Stat(fsys, "byzantium"); err != nil || !fi.IsDir() {
			return nil
		}
		return fsys
	}
	if t, err := gpt.Read(f, size); err == nil {
		for i, part := range t.Partitions {
			if fsys := media(part.Offset()); fsys != nil {
				return fsys, fmt.Sprintf("%s (partition %d)", p, i+1), f, nil
			}
		}
	} else if fsys := media(0); fsys != nil {
		return fsys, p, f, nil
	}
	f.Close()
	return nil, "", nil, errors.New("no FAT32 file system with a byzantium/ folder in it (in a GPT partition or on the whole disk)")
}
