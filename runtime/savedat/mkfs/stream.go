package mkfs

import (
	"crypto/aes"
	"errors"
	"fmt"
	"io"
	"os"

	"byzantium/runtime/luks2"
	"byzantium/runtime/savedat"

	"golang.org/x/crypto/xts"
)

// Stream is a new save.dat as a stream of exactly Size bytes, for writing
// into a file system image (a clone's FAT partition) without staging the
// whole file: the empty ext4 file system is made in a sparse scratch file
// (on tmpfs it takes only the blocks go-diskfs writes: its metadata and
// journal, some 64 MiB for 1 GiB), and an encrypted one is encrypted as it
// is read, after a LUKS2 header made the same way as Create's. Every byte
// of the save.dat comes out, zeros included, so nothing the target held
// before shows through. Close removes the scratch files.
type Stream struct {
	Size  int64
	r     io.Reader
	files []*os.File
	enc   *encrypter
}

// NewStream makes the file system for a save.dat of opts (checked as
// Create checks them, before anything is made) in scratch files in dir
// ("" for the default temporary folder; they are unlinked at once, so
// their space comes back however the process ends) and returns the
// stream of it. opts.Progress hears of the slow steps.
func NewStream(dir string, opts Options) (*Stream, error) {
	fsSize, label, err := opts.check()
	if err != nil {
		return nil, err
	}
	s := &Stream{Size: opts.Size}
	if err := s.make(dir, fsSize, label, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// make makes the scratch files and the reader of the stream.
func (s *Stream) make(dir string, fsSize int64, label string, opts Options) error {
	scratch := func() (*os.File, error) {
		f, err := os.CreateTemp(dir, "byz-savedat-*")
		if err != nil {
			return nil, fmt.Errorf("savedat: %w", err)
		}
		// Unlinked at once: the space comes back however the process ends.
		os.Remove(f.Name())
		s.files = append(s.files, f)
		return f, nil
	}
	plain, err := scratch()
	if err != nil {
		return err
	}
	if err := plain.Truncate(fsSize); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	opts.progress(Event{Step: fmt.Sprintf("making the ext4 file system (%s)", savedat.SizeString(fsSize))})
	if err := makeExt4(plain, fsSize, label); err != nil {
		return err
	}
	if opts.Fill != nil {
		if err := opts.Fill(plain); err != nil {
			return fmt.Errorf("savedat: filling the new file system: %w", err)
		}
	}
	if opts.Passphrase == nil {
		s.r = io.NewSectionReader(plain, 0, fsSize)
		return nil
	}
	hdr, err := scratch()
	if err != nil {
		return err
	}
	if err := hdr.Truncate(luks2.DataOffset); err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	kdf := opts.KDF
	if kdf.Type == "" {
		kdf = luks2.DefaultKDF
	}
	opts.progress(Event{Step: "deriving the key (" + kdf.String() + ")"})
	_, key, err := luks2.Format(hdr, luks2.FormatOptions{Passphrase: opts.Passphrase, KDF: kdf, Label: label, SectorSize: blockSize})
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	c, err := xts.NewCipher(aes.NewCipher, key)
	clear(key)
	if err != nil {
		return fmt.Errorf("savedat: %w", err)
	}
	s.enc = &encrypter{c: c, src: plain, size: fsSize}
	s.r = io.MultiReader(io.NewSectionReader(hdr, 0, luks2.DataOffset), s.enc)
	return nil
}

// Read reads the save.dat.
func (s *Stream) Read(p []byte) (int, error) { return s.r.Read(p) }

// Close removes the scratch files.
func (s *Stream) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	s.files = nil
	return errors.Join(errs...)
}

// encrypter reads the plain file system and encrypts it, a 4 KiB LUKS2
// sector at a time, with the sector numbers Create's loop uses.
type encrypter struct {
	c     *xts.Cipher
	src   io.ReaderAt
	size  int64
	off   int64
	chunk []byte // 1 MiB, reused
	buf   []byte // encrypted bytes of chunk not yet handed out
}

func (e *encrypter) Read(p []byte) (int, error) {
	if len(e.buf) == 0 {
		if e.off >= e.size {
			return 0, io.EOF
		}
		if e.chunk == nil {
			e.chunk = make([]byte, 1<<20)
		}
		n := min(int64(len(e.chunk)), e.size-e.off)
		chunk := e.chunk[:n]
		if _, err := e.src.ReadAt(chunk, e.off); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("savedat: %w", err)
		}
		for i := int64(0); i < n; i += blockSize {
			e.c.Encrypt(chunk[i:i+blockSize], chunk[i:i+blockSize], uint64(e.off+i)/blockSize)
		}
		e.off += n
		e.buf = chunk
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	return n, nil
}
