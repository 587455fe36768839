package savedat

import (
	"runtime"
	"testing"
)

func TestIoctlNumber(t *testing.T) {
	// _IOW('f', 16, __u64) in the generic encoding (x86, arm, riscv …).
	switch runtime.GOARCH {
	case "amd64", "386", "arm64", "arm", "riscv64", "loong64", "s390x":
		if ext4IocResizeFS != 0x40086610 {
			t.Errorf("EXT4_IOC_RESIZE_FS = %#x, want 0x40086610", ext4IocResizeFS)
		}
	}
}

// TestTarget: where GrowFS grows a file system of 16384 4 KiB blocks in
// 32768-block groups with 512-block inode tables (what Create makes at
// 64 MiB) on devices of various sizes.
func TestTarget(t *testing.T) {
	sb := superblock{blocks: 16384, blocksPerGroup: 32768, blockSize: 4096, itbPerGroup: 512}
	for _, tt := range []struct {
		dev  int64
		want uint64
	}{
		{32 << 20, 16384},             // a device smaller than the file system
		{64 << 20, 16384},             // nothing to add
		{64<<20 + 4095, 16384},        // not a whole block more
		{100 << 20, 25600},            // within the last group
		{1 << 30, 262144},             // to a group boundary
		{1<<30 + 1<<20, 262144},       // a new group too small for its inode table
		{1<<30 + 3<<20, 262144 + 768}, // one just large enough
		{1000 << 20, 256000},          // a partial last group
	} {
		if got := sb.target(tt.dev); got != tt.want {
			t.Errorf("target(%d) = %d, want %d", tt.dev, got, tt.want)
		}
	}
}
