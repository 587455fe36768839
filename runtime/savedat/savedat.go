// Package savedat keeps save.dat files working: an ext4 file system in a
// file, which byz-init loop-mounts as the overlay's upper layer so a node
// keeps its changes on any stick, FAT included. An encrypted save.dat is
// a LUKS2 volume (runtime/luks2) whose data is that ext4 file system.
//
// This package checks, grows and sizes them, which byz-init needs at every
// boot; making one (an ext4 writer and more) is savedat/mkfs, so byz-init
// does not carry it.
package savedat

import "errors"

// ErrBadOption reports options or sizes that cannot make or grow a
// save.dat.
var ErrBadOption = errors.New("savedat: bad option")

// MinSize is the smallest save.dat mkfs makes (an encrypted one also
// needs luks2.DataOffset for its header).
const MinSize = 32 << 20
