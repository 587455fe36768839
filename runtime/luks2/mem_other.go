//go:build !linux

package luks2

// physicalRAMKiB is unknown here: only the absolute bounds apply.
func physicalRAMKiB() int64 { return 0 }
