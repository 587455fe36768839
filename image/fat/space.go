package fat

import (
	"path"
	"unicode/utf16"

	"byzantium/modules/entry"
)

// Space is what a tree needs on a volume and what the volume has, in
// bytes of whole clusters.
type Space struct {
	ClusterSize int64
	Need, Have  int64
}

// Fits reports whether the tree fits.
func (s Space) Fits() bool { return s.Need <= s.Have }

// Need returns the space the regular files and directories of hs (and
// the directories their paths imply) take on a volume of size bytes as
// Writer lays it out: every file in whole clusters, every directory in
// whole clusters of 32-byte entries. Each name is counted with a long
// name, so the answer is an upper bound that Writer never exceeds.
func Need(size int64, hs []entry.Header) (Space, error) {
	g, err := newGeometry(size)
	if err != nil {
		return Space{}, err
	}
	cs := g.clusterSize()
	sp := Space{ClusterSize: cs, Have: int64(g.clusters) * cs}
	// dirs counts each directory's entries: "." and ".." (the root has
	// the label instead), and each child's short entry and long-name
	// parts.
	dirs := map[string]int64{".": 1}
	named := map[string]bool{}
	var add func(p string)
	add = func(p string) {
		if p == "." || named[p] {
			return
		}
		named[p] = true
		parent := path.Dir(p)
		if _, ok := dirs[parent]; !ok {
			dirs[parent] = 2
		}
		add(parent)
		dirs[parent] += 1 + (int64(len(utf16.Encode([]rune(path.Base(p)))))+12)/13
	}
	for _, h := range hs {
		p := entry.Clean(h.Path)
		if h.Type == entry.TypeDir {
			if _, ok := dirs[p]; !ok {
				dirs[p] = 2
			}
		} else {
			sp.Need += (h.Size + cs - 1) / cs * cs
		}
		add(p)
	}
	for _, n := range dirs {
		sp.Need += max(1, (n*dirEntrySize+cs-1)/cs) * cs
	}
	return sp, nil
}
