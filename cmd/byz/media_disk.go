package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"byzantium/image/usbimg"
)

// openMediaDisk opens, read-only and without mounting, the FAT32 file
// system holding byzantium/ in a USB image or on a stick (usbimg.Open).
// modules.ResolveStack reads the modules from it.
func openMediaDisk(p string) (fs.FS, string, io.Closer, error) {
	img, err := usbimg.Open(p, os.O_RDONLY)
	if err != nil {
		return nil, "", nil, err
	}
	name := p
	if img.Partition > 0 {
		name = fmt.Sprintf("%s (partition %d)", p, img.Partition)
	}
	return img.FS, name, img.File, nil
}
