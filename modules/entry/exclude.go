package entry

import (
	"path"
	"strings"
)

// Exclude returns a Reader without the entries of r whose path matches
// one of patterns (path.Match syntax against the whole path, which has no
// leading slash: "etc/ssh/ssh_host_*"), nor anything under a matching
// directory, nor hardlinks to an excluded file: a second name must not
// carry out what the first one kept in. A malformed pattern matches
// nothing but its literal self. Bodies of excluded entries are never
// read.
func Exclude(r Reader, patterns []string) Reader {
	return &exclude{r: r, patterns: patterns, gone: map[string]bool{}}
}

type exclude struct {
	r        Reader
	patterns []string
	dirs     []string        // excluded directories, "dir/" for prefix tests
	gone     map[string]bool // excluded paths, for hardlinks
}

// Excluded reports whether p matches one of patterns.
func Excluded(p string, patterns []string) bool {
	for _, pat := range patterns {
		if ok, err := path.Match(pat, p); ok || err != nil && pat == p {
			return true
		}
	}
	return false
}

func (x *exclude) Next() (*Header, error) {
	for {
		h, err := x.r.Next()
		if err != nil {
			return h, err
		}
		drop := Excluded(h.Path, x.patterns) || h.Type == TypeHardlink && x.gone[h.Linkname]
		for _, d := range x.dirs {
			if strings.HasPrefix(h.Path, d) {
				drop = true
				break
			}
		}
		if !drop {
			return h, nil
		}
		x.gone[h.Path] = true
		if h.Type == TypeDir {
			x.dirs = append(x.dirs, h.Path+"/")
		}
	}
}

func (x *exclude) Read(p []byte) (int, error) { return x.r.Read(p) }
