package luks2

import "golang.org/x/sys/unix"

// physicalRAMKiB is this machine's RAM (0 when unknown).
func physicalRAMKiB() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit) >> 10
}
