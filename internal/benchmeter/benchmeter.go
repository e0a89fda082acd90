// Package benchmeter adds per-line figures to Go benchmarks: lines per
// second and heap allocations per line, beside the bytes/s that
// testing.B.SetBytes gives. drainpipe's benchmarks report all three so
// that stages that handle one line, one body or one bucket per operation
// can be compared per line.
package benchmeter

import (
	"runtime"
	"testing"
)

// Meter measures the allocations of one benchmark run.
type Meter struct {
	b       *testing.B
	mallocs uint64
}

// Start begins measuring. Call it just before the benchmark loop.
func Start(b *testing.B) *Meter {
	b.Helper()
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &Meter{b: b, mallocs: ms.Mallocs}
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
}
