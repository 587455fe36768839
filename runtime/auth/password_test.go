package auth

import (
	"runtime"
	"testing"
	"time"
)

// TestHashesShareOneCollection: a stream of password checks forces at
// most one garbage collection per releaseDelay (it forced one per check).
func TestHashesShareOneCollection(t *testing.T) {
	h := HashPassword("correct horse", cheap)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := 0; i < 50; i++ {
		VerifyPassword(h, "wrong horse")
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	forced := after.NumForcedGC - before.NumForcedGC
	if limit := 1 + uint32(elapsed/releaseDelay); forced > limit {
		t.Errorf("50 checks in %s forced %d collections, want at most %d", elapsed, forced, limit)
	}
}
