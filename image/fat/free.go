package fat

// FreeBytes is the space of the volume's free clusters, in bytes: what a
// caller checks a file against before AddFile, to say it in sizes.
func (v *Volume) FreeBytes() int64 { return int64(v.free()) * v.clusterSize() }
