//go:build !linux

package journal

import (
	"bytes"
	"os"
)

// WritevAt writes bufs at off, joined.
func (f osFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	return f.WriteAt(bytes.Join(bufs, nil), off)
}

// datasync makes f's written bytes durable (fsync where there is no
// fdatasync).
func datasync(f *os.File) error { return f.Sync() }
