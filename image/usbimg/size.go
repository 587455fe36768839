package usbimg

import (
	"fmt"

	"byzantium/image/fat"
	"byzantium/modules/entry"
)

// minImage is the smallest image Plan accepts: 34 MiB of FAT32 (its
// floor of 65,525 clusters at the smallest cluster size, rounded up to
// whole MiB) between the first MiB and the backup GPT.
const minImage = 36 << 20

// MinSize is the smallest image, a whole number of MiB and at least
// floor bytes, whose FAT partition holds the entries hs and keeps room
// bytes free after them, as Write checks it (Options.Room). fat.Need is
// an upper bound the FAT writer never exceeds, so an image of this size
// never runs out of room. Larger volumes take larger clusters, so the
// need is not monotonic in the size: the search goes upwards from the
// files' own size. Media too large for FAT32's 2 TiB are an ErrNoRoom
// error.
func MinSize(hs []entry.Header, room, floor int64) (int64, error) {
	const mib = 1 << 20
	var files int64
	for _, h := range hs {
		files += h.Size
	}
	size := max(minImage, floor, (files+room+2*mib+mib-1)/mib*mib)
	size = (size + mib - 1) / mib * mib
	for {
		l, err := Plan(Options{Size: size, Seed: []byte("size")})
		if err != nil {
			return 0, err
		}
		sp, err := fat.Need(l.FAT.Size(), hs)
		if err == nil && sp.Fits() && sp.Have-sp.Need >= room {
			return size, nil
		}
		if l.Unpartitioned > 0 {
			// The FAT partition is as large as FAT32 allows; a larger
			// disk leaves the rest unpartitioned.
			return 0, fmt.Errorf("%w: %d bytes of files and %d of room do not fit a FAT32 partition of at most %d bytes", ErrNoRoom, files, room, MaxFATSize)
		}
		size += mib
	}
}
