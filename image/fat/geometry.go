package fat

import "fmt"

// FAT32 constants.
const (
	sectorSize = 512
	// minClusters is the smallest count of clusters a FAT32 volume may
	// have: with fewer, every driver (and fsck.fat) takes it for FAT16.
	minClusters = 65525
	// maxClusters is the largest count the 28-bit entries allow.
	maxClusters = 0x0FFFFFF5
	numFATs     = 2
	// baseReserved is the reserved area mkfs.fat and Windows use; we grow
	// it to align the data region (see newGeometry).
	baseReserved = 32
	fsInfoSector = 1
	backupBoot   = 6
	rootCluster  = 2
	dirEntrySize = 32
)

// geometry is the layout of a FAT32 volume.
type geometry struct {
	totalSectors  uint32
	secPerCluster uint32
	reserved      uint32 // sectors before the first FAT
	fatSectors    uint32 // sectors per FAT
	clusters      uint32 // count of data clusters (numbered 2 … clusters+1)
}

func (g geometry) clusterSize() int64 { return int64(g.secPerCluster) * sectorSize }

// dataStart is the byte offset of cluster 2 in the volume.
func (g geometry) dataStart() int64 {
	return int64(g.reserved+numFATs*g.fatSectors) * sectorSize
}

// clusterOffset is the byte offset of cluster c in the volume.
func (g geometry) clusterOffset(c uint32) int64 {
	return g.dataStart() + int64(c-2)*g.clusterSize()
}

// tableSecPerCluster is Microsoft's FAT32 cluster size table (fatgen103,
// DskTableFAT32) in sectors, by volume size in sectors.
func tableSecPerCluster(sectors uint32) uint32 {
	switch {
	case sectors <= 532480: // 260 MiB
		return 1
	case sectors <= 16777216: // 8 GiB
		return 8
	case sectors <= 33554432: // 16 GiB
		return 16
	case sectors <= 67108864: // 32 GiB
		return 32
	default:
		return 64
	}
}

// newGeometry lays out a FAT32 volume of size bytes. It starts from
// Microsoft's cluster size and halves it while the volume would have too
// few clusters to be FAT32 (the table assumes larger volumes at its
// boundaries), then sizes the FAT with fatgen103's formula and grows the
// reserved area so the data region starts on a cluster boundary, which
// keeps clusters on flash pages when the partition itself is aligned.
func newGeometry(size int64) (geometry, error) {
	if size/sectorSize > 0xFFFFFFFF {
		return geometry{}, fmt.Errorf("%w: %d bytes is more than FAT32's 2 TiB of 512-byte sectors", ErrBadSize, size)
	}
	total := uint32(size / sectorSize)
	spc := tableSecPerCluster(total)
	for {
		g := layout(total, spc)
		if g.clusters >= minClusters && g.clusters <= maxClusters {
			return g, nil
		}
		if g.clusters > maxClusters || spc == 1 {
			return geometry{}, fmt.Errorf("%w: %d bytes make %d clusters of %d bytes; FAT32 needs %d to %d",
				ErrBadSize, size, g.clusters, spc*sectorSize, minClusters, maxClusters)
		}
		spc /= 2
	}
}

// layout computes the FAT size and reserved area for a cluster size.
func layout(total, spc uint32) geometry {
	g := geometry{totalSectors: total, secPerCluster: spc, reserved: baseReserved}
	for range 4 { // converges in one or two rounds; the FAT only shrinks
		g.fatSectors = fatSectors(total, g.reserved, spc)
		pad := (spc - (g.reserved+numFATs*g.fatSectors)%spc) % spc
		if pad == 0 {
			break
		}
		g.reserved += pad
	}
	g.fatSectors = fatSectors(total, g.reserved, spc)
	meta := g.reserved + numFATs*g.fatSectors
	if meta >= total {
		return g
	}
	g.clusters = (total - meta) / spc
	// fatgen103's estimate is never too small, but check: entries 0 and 1
	// plus one per cluster must fit.
	if uint64(g.clusters+2)*4 > uint64(g.fatSectors)*sectorSize {
		g.clusters = g.fatSectors*sectorSize/4 - 2
	}
	return g
}

// fatSectors is fatgen103's FAT size formula for FAT32.
func fatSectors(total, reserved, spc uint32) uint32 {
	if total <= reserved {
		return 0
	}
	t1 := uint64(total - reserved)
	t2 := (256*uint64(spc) + numFATs) / 2
	return uint32((t1 + t2 - 1) / t2)
}
