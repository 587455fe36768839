package daemon

import "byzantium/blockdev"

// listDisks lists the whole disks under root's /sys/block for the panel
// and the API, read by the package the clone's safety checks read them
// with, so the disk confirmed is described as the clone will judge it.
// No sysfs lists none.
func listDisks(root string) []Disk {
	out := []Disk{}
	disks, _ := blockdev.Sys{Root: root}.List()
	for _, d := range disks {
		out = append(out, Disk{Name: d.Name, Path: d.Path, SizeBytes: d.Size, Model: d.Model, Serial: d.Serial,
			Removable: d.Removable, USB: d.USB})
	}
	return out
}
