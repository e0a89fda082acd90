//go:build linux

package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

// iovMax is IOV_MAX on Linux: pwritev(2) takes at most this many
// buffers (EINVAL beyond).
const iovMax = 1024

// WritevAt writes bufs at off with pwritev(2), one call per IOV_MAX
// buffers: a group of appends is at most 256 records of two buffers
// each, but an Import group can be 1,024 records. A short write ends it
// (the caller compares the count).
func (f osFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	total := 0
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), iovMax)]
		n, err := unix.Pwritev(int(f.Fd()), chunk, off)
		total += max(n, 0)
		if err != nil {
			return total, &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
		}
		want := 0
		for _, b := range chunk {
			want += len(b)
		}
		if n < want {
			return total, nil
		}
		off += int64(n)
		bufs = bufs[len(chunk):]
	}
	return total, nil
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
