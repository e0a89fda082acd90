//go:build linux

package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkDatasync measures what one group commit's fdatasync costs on
// this machine's file system, by how the bytes it writes were allocated:
// an append that extends the file (the segment journal before session
// 6), an overwrite of blocks written before (zeroes, as a segment
// prepared ahead), and an overwrite of blocks fallocate(2) reserved
// (unwritten extents, which the write converts: a metadata change too).
// Each op is one write of size bytes at the end of the data, then
// fdatasync; p50 and p90 are of the op's latency.
func BenchmarkDatasync(b *testing.B) {
	for _, size := range []int{16 << 10, 120 << 10, 480 << 10} {
		for _, mode := range []string{"append", "zeroed", "fallocated", "writezeroes"} {
			b.Run(fmt.Sprintf("mode=%s/size=%dKiB", mode, size>>10), func(b *testing.B) {
				benchDatasync(b, mode, size)
			})
		}
	}
}

func benchDatasync(b *testing.B, mode string, size int) {
	// The file is prepared for exactly b.N writes.
	fileSize := int64(size) * int64(b.N)
	path := filepath.Join(b.TempDir(), "seg")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	switch mode {
	case "zeroed":
		zero := make([]byte, 1<<20)
		for off := int64(0); off < fileSize; off += int64(len(zero)) {
			if _, err := f.WriteAt(zero[:min(int64(len(zero)), fileSize-off)], off); err != nil {
				b.Fatal(err)
			}
		}
	case "writezeroes":
		// Linux 6.17 on: written extents of zeroes, written by the
		// device (or the kernel) rather than by write(2).
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_WRITE_ZEROES, 0, fileSize); err != nil {
			b.Skip("fallocate(FALLOC_FL_WRITE_ZEROES):", err)
		}
	case "fallocated":
		if err := unix.Fallocate(int(f.Fd()), 0, 0, fileSize); err != nil {
			b.Skip("fallocate:", err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	lat := make([]time.Duration, 0, b.N)
	off := int64(0)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if err := datasync(f); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
		off += int64(size)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
}
