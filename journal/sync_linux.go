//go:build linux

package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

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
