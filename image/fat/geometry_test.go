package fat

import (
	"fmt"
	"testing"
)

// TestGeometry checks the invariants of a FAT32 layout over the sizes the
// USB image can have, including both sides of Microsoft's table steps.
func TestGeometry(t *testing.T) {
	for _, tc := range []struct {
		size int64
		spc  uint32
	}{
		{34 << 20, 1}, {64 << 20, 1}, {100 << 20, 1}, {256 << 20, 1}, {260 << 20, 1}, {260<<20 + 512, 8},
		{1 << 30, 8}, {4 << 30, 8}, {8 << 30, 8}, {8<<30 + 512, 16}, {16 << 30, 16}, {16<<30 + 512, 32},
		{32 << 30, 32}, {32<<30 + 512, 64}, {64 << 30, 64}, {2<<40 - 512, 64},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			g, err := newGeometry(tc.size)
			if err != nil {
				t.Fatal(err)
			}
			if g.secPerCluster != tc.spc {
				t.Errorf("%d sectors per cluster, want %d", g.secPerCluster, tc.spc)
			}
			if g.clusters < minClusters || g.clusters > maxClusters {
				t.Errorf("%d clusters, outside FAT32's %d–%d", g.clusters, minClusters, maxClusters)
			}
			if need := (uint64(g.clusters) + 2) * 4; need > uint64(g.fatSectors)*sectorSize {
				t.Errorf("FAT of %d sectors cannot hold %d clusters", g.fatSectors, g.clusters)
			}
			// fatgen103's formula overestimates the FAT on purpose (the
			// spare entries stay 0), but by well under 1%.
			if slack := uint64(g.fatSectors)*sectorSize/4 - uint64(g.clusters) - 2; slack > uint64(g.clusters)/100+128 {
				t.Errorf("FAT has room for %d more clusters than exist", slack)
			}
			end := uint64(g.dataStart()/sectorSize) + uint64(g.clusters)*uint64(g.secPerCluster)
			if end > uint64(g.totalSectors) || uint64(g.totalSectors)-end >= uint64(g.secPerCluster) {
				t.Errorf("data ends at sector %d of %d: clusters miscounted", end, g.totalSectors)
			}
			if g.dataStart()%g.clusterSize() != 0 {
				t.Errorf("data region at byte %d is not cluster aligned", g.dataStart())
			}
		})
	}
}
