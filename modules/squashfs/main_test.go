package squashfs

import (
	"os"
	"testing"
)

// TestMain clears SOURCE_DATE_EPOCH: mksquashfs, the oracle that makes the
// reader's test images, would otherwise stamp every time with it and the
// images would no longer match the trees they were made from.
func TestMain(m *testing.M) {
	os.Unsetenv("SOURCE_DATE_EPOCH")
	os.Exit(m.Run())
}
