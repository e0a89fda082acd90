// Package benchmeter adds per-line figures to Go benchmarks: lines per
// second (and per CPU-second), and heap allocations per line, beside the
// bytes/s that
// testing.B.SetBytes gives. drainpipe's benchmarks report all three so
// that stages that handle one line, one body or one bucket per operation
// can be compared per line.
package benchmeter

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Meter measures the allocations of one benchmark run.
type Meter struct {
	b       *testing.B
	mallocs uint64
	cpu     time.Duration
}

// Start begins measuring. Call it just before the benchmark loop.
func Start(b *testing.B) *Meter {
	b.Helper()
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &Meter{b: b, mallocs: ms.Mallocs, cpu: ProcessCPU()}
}

// Lines reports lines/s and allocs/line for a loop whose every operation
// handled linesPerOp lines. Call it after the loop.
func (m *Meter) Lines(linesPerOp int) {
	m.b.Helper()
	m.Per(linesPerOp, "line")
}

// Per reports units/s and allocs/unit for a loop whose every operation
// handled perOp of unit (say 1,440 "bucket"s for a query). Call it after
// the loop.
func (m *Meter) Per(perOp int, unit string) {
	m.b.Helper()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := float64(perOp) * float64(m.b.N)
	if n == 0 {
		return
	}
	m.b.ReportMetric(n/m.b.Elapsed().Seconds(), unit+"s/s")
	m.b.ReportMetric(float64(ms.Mallocs-m.mallocs)/n, "allocs/"+unit)
	if cpu := ProcessCPU() - m.cpu; cpu > 0 {
		m.b.ReportMetric(n/cpu.Seconds(), unit+"s/cpu-s")
	}
}

// ProcessCPU returns the user and system CPU time the process has used.
// On a machine shared with other work a benchmark's wall-clock time
// includes waiting for a core; units per CPU-second is what the code does
// when it has one (for a single-goroutine loop, per core).
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
