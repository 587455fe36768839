package fat

// FreeBytes is the space of the volume's free clusters, in bytes: what a
// caller checks a file against before AddFile, to say it in sizes.
func (v *Volume) FreeBytes() int64 { return int64(v.free()) * v.clusterSize() }

// FileRoom is the largest file a new folder of the volume holds: the free
// clusters less one for the folder itself. byz clone's "room for a
// save.dat" counts the same way, so a size it names is one that
// byz persist create --image accepts.
func (v *Volume) FileRoom() int64 { return max(v.FreeBytes()-v.clusterSize(), 0) }
