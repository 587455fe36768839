package entry

import (
	"fmt"
	"sort"
	"strings"
)

// Node is the part of an in-memory tree node that Tree owns. A writer
// embeds it in its own node type, parameterised by a pointer to that type,
// and keeps its format's fields beside it:
//
//	type node struct {
//		entry.Node[*node]
//		mode uint32
//	}
type Node[P any] struct {
	// Name is the last component of Path; "" for the root.
	Name string
	// Path is the clean path of the node ("." for the root), for error
	// messages and for walks that need it.
	Path string
	Type Type
	// Kids holds a directory's children by name (by folded name where the
	// tree folds names) until Sort replaces it with Sorted.
	Kids map[string]P
	// Sorted holds a directory's children in name order once Sort ran.
	Sorted []P
}

func (n *Node[P]) base() *Node[P] { return n }

// IsDir reports whether n is a directory.
func (n *Node[P]) IsDir() bool { return n.Type == TypeDir }

// NodePtr is satisfied by a pointer to a writer's node type that embeds
// Node.
type NodePtr[P any] interface {
	base() *Node[P]
}

// Tree is the directory tree a writer builds from an entry stream before it
// lays out its image: entries come in any order, directories the stream
// implies but never names are made on the way, and a later entry for a path
// replaces an earlier one, except that a directory written over a directory
// keeps its children (the caller takes the new metadata).
//
// The optional fields set the format's limits; set them before the first
// Add.
type Tree[P NodePtr[P]] struct {
	// MaxName, if not zero, is the longest name in bytes.
	MaxName int
	// CheckName, if set, refuses names the format cannot hold; path is
	// where the name would go.
	CheckName func(name, path string) error
	// Fold, if set, maps a name to the form under which the format compares
	// names; two names that fold alike but differ are refused, because the
	// format could not tell them apart.
	Fold func(name string) string
	// FixedKinds refuses to replace a directory with a non-directory or
	// the reverse.
	FixedKinds bool

	prefix string
	root   P
	newDir func() P

	// lastDir caches the parent of the previous entry: streams from a
	// directory walk name many siblings in a row.
	lastDirPath string
	lastDir     P
}

// NewTree returns a tree whose root is root (a directory, whatever its
// Type said). newDir makes the node of a directory the stream implies,
// with the format's default metadata; the tree sets its name, path, type
// and children. Errors start with prefix, the writer's name.
func NewTree[P NodePtr[P]](prefix string, root P, newDir func() P) *Tree[P] {
	r := root.base()
	r.Name, r.Path, r.Type, r.Kids = "", ".", TypeDir, map[string]P{}
	return &Tree[P]{prefix: prefix, root: root, newDir: newDir}
}

// Root returns the root directory.
func (t *Tree[P]) Root() P { return t.root }

// Add puts n at the clean path p (as Header.Validate checks it), making the
// missing parents. It returns the node now at p: n itself, or the directory
// already there (the root for "."), which keeps its children and whose
// metadata the caller updates from n. A refused entry leaves the tree as it
// was.
func (t *Tree[P]) Add(p string, n P) (P, error) {
	var none P
	if p == "." {
		return t.root, nil
	}
	dirPath, name := "", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dirPath, name = p[:i], p[i+1:]
	}
	if err := t.checkName(name, p); err != nil {
		return none, err
	}
	dir, err := t.dir(dirPath, p)
	if err != nil {
		return none, err
	}
	nb := n.base()
	key := t.key(name)
	if old, ok := dir.base().Kids[key]; ok {
		ob := old.base()
		switch {
		case ob.Name != name:
			return none, t.foldErr(ob.Path, p)
		case ob.IsDir() && nb.IsDir():
			return old, nil
		case t.FixedKinds && ob.IsDir() != nb.IsDir():
			return none, fmt.Errorf("%s: %s: cannot replace a %s with a %s: %w", t.prefix, p, noun(ob.Type), nb.Type, ErrBadHeader)
		case ob.IsDir():
			// The subtree goes, and the parent cache might point into it.
			t.lastDir, t.lastDirPath = none, ""
		}
	}
	nb.Name, nb.Path = name, p
	if nb.IsDir() {
		nb.Kids = map[string]P{}
	}
	dir.base().Kids[key] = n
	return n, nil
}

// dir returns the directory at p ("" for the root), creating the missing
// ones. Errors name full, the entry being added.
func (t *Tree[P]) dir(p, full string) (P, error) {
	var none P
	if p == "" {
		return t.root, nil
	}
	if p == t.lastDirPath {
		return t.lastDir, nil
	}
	d := t.root
	for i := 0; i < len(p); {
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p) - i
		}
		name, at := p[i:i+j], p[:i+j]
		i += j + 1
		key := t.key(name)
		k, ok := d.base().Kids[key]
		switch {
		case !ok:
			if err := t.checkName(name, at); err != nil {
				return none, err
			}
			k = t.newDir()
			kb := k.base()
			kb.Name, kb.Path, kb.Type, kb.Kids = name, at, TypeDir, map[string]P{}
			d.base().Kids[key] = k
		case k.base().Name != name:
			return none, t.foldErr(k.base().Path, at)
		case !k.base().IsDir():
			return none, fmt.Errorf("%s: %s: parent %s is a %s, not a directory: %w", t.prefix, full, at, noun(k.base().Type), ErrBadHeader)
		}
		d = k
	}
	t.lastDir, t.lastDirPath = d, p
	return d, nil
}

func (t *Tree[P]) checkName(name, p string) error {
	if t.MaxName > 0 && len(name) > t.MaxName {
		return fmt.Errorf("%s: %s: name longer than %d bytes: %w", t.prefix, p, t.MaxName, ErrUnsupported)
	}
	if t.CheckName != nil {
		return t.CheckName(name, p)
	}
	return nil
}

func (t *Tree[P]) key(name string) string {
	if t.Fold != nil {
		return t.Fold(name)
	}
	return name
}

func (t *Tree[P]) foldErr(a, b string) error {
	return fmt.Errorf("%s: %s and %s differ only by case, and %s names ignore case: %w", t.prefix, a, b, strings.ToUpper(t.prefix), ErrUnsupported)
}

// noun names a type in a sentence: "directory", "regular file", "symlink".
func noun(t Type) string {
	switch t {
	case TypeDir:
		return "directory"
	case TypeRegular:
		return "regular file"
	}
	return t.String()
}

// Lookup returns the node at the clean path p, or nil. It works before and
// after Sort; after Sort it compares names as they are, unfolded.
func (t *Tree[P]) Lookup(p string) P {
	var none P
	n := t.root
	if p == "." {
		return n
	}
	for _, name := range strings.Split(p, "/") {
		nb := n.base()
		if nb.Kids != nil {
			k, ok := nb.Kids[t.key(name)]
			if !ok {
				return none
			}
			n = k
			continue
		}
		s := nb.Sorted
		i := sort.Search(len(s), func(i int) bool { return s[i].base().Name >= name })
		if i == len(s) || s[i].base().Name != name {
			return none
		}
		n = s[i]
	}
	return n
}

// Sort puts d's children in name order in d.Sorted and returns them. The
// map is dropped: a writer sorts at Close, when no entry comes any more.
// Sorting again returns the same slice.
func (t *Tree[P]) Sort(d P) []P {
	db := d.base()
	if db.Kids == nil {
		return db.Sorted
	}
	s := make([]P, 0, len(db.Kids))
	for _, k := range db.Kids {
		s = append(s, k)
	}
	sort.Slice(s, func(i, j int) bool { return s[i].base().Name < s[j].base().Name })
	db.Kids, db.Sorted = nil, s
	return s
}
