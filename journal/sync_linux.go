//go:build linux

package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

// WritevAt writes bufs at off with one pwritev(2) (at most IOV_MAX,
// 1,024, of them: a group is at most 256 records of two each).
func (f osFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	n, err := unix.Pwritev(int(f.Fd()), bufs, off)
	if err != nil {
		err = &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
	}
	return n, err
}

// datasync makes f's written bytes durable: fdatasync, which also writes
// the file size when it grew, and skips only metadata (times) that reading
// the data does not need.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
