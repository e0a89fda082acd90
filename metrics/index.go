package metrics

import (
	"math"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
)

// The sketch's bin index of a value, log(v)/log(γ) rounded down, costs a
// math.Log per observation. sketchIndex looks most values up instead, in
// a table built once from the mapping itself, and returns exactly what
// indexMapping.Index returns.
//
// The table splits every power of two in [2^indexTabMinExp,
// 2^indexTabMaxExp) into 2^indexTabBits equal parts: the value's exponent
// and top mantissa bits select a part. A part holds an index only when
// every float64 in it has that index: the mapping's unrounded index f(v) =
// log(v)·m + offset, computed at both ends of the part, lies strictly
// between two integers with a margin of indexTabMargin on both sides. The
// true f is increasing, and the computed one is within a few ulps of it
// (about 1e-11 at these magnitudes, for a log accurate to 1 ulp), far
// inside the margin, so no value in the part can round to another index.
// Parts that a bin boundary crosses (about 3.5%, bins being 2% wide and
// parts 0.07%) hold indexTabNone and take the mapping's log, as do values
// outside the table's range.
const (
	indexTabBits   = 10
	indexTabMinExp = -10 // 2^-10: about 0.001
	indexTabMaxExp = 38  // 2^38: about 2.7e11
	indexTabMargin = 1e-7
	indexTabNone   = math.MinInt16
	indexTabShift  = 52 - indexTabBits
	indexTabFirst  = uint64(1023+indexTabMinExp) << indexTabBits // the first part's exponent and mantissa bits
)

// indexTab is immutable once built.
var indexTab = buildIndexTab(indexMapping)

// intIndexTab holds the mapping's index of every whole number below its
// length (entry 0 is unused): the router writes whole milliseconds, and
// 1, whose unrounded index is exactly 0, lies on a bin boundary, so its
// part of indexTab is empty. Immutable once built.
var intIndexTab = buildIntIndexTab(indexMapping, 4096)

func buildIntIndexTab(m mapping.IndexMapping, n int) []int16 {
	tab := make([]int16, n)
	for i := 1; i < n; i++ {
		tab[i] = int16(m.Index(float64(i)))
	}
	return tab
}

func buildIndexTab(m mapping.IndexMapping) []int16 {
	p := m.ToProto()
	if p.Interpolation != 0 {
		panic("metrics: the index table needs a logarithmic mapping")
	}
	mult := 1 / math.Log(p.Gamma) // as the library computes it
	f := func(v float64) float64 { return math.Log(v)*mult + p.IndexOffset }
	tab := make([]int16, (indexTabMaxExp-indexTabMinExp)<<indexTabBits)
	for j := range tab {
		bits := (indexTabFirst + uint64(j)) << indexTabShift
		lo := math.Float64frombits(bits)
		hi := math.Float64frombits(bits + 1<<indexTabShift - 1)
		a, b := f(lo)-indexTabMargin, f(hi)+indexTabMargin
		n := math.Floor(a)
		tab[j] = indexTabNone
		if a > n && math.Floor(b) == n && n > indexTabNone && n <= math.MaxInt16 {
			i := m.Index(lo)
			if i != int(n) || m.Index(hi) != i {
				// The unrounded index above is not the mapping's.
				panic("metrics: the index table disagrees with the mapping")
			}
			tab[j] = int16(i)
		}
	}
	return tab
}

// sketchIndex returns indexMapping.Index(v) for a positive, finite v.
func sketchIndex(v float64) int {
	if v < float64(len(intIndexTab)) {
		if n := int(v); float64(n) == v {
			return int(intIndexTab[n])
		}
	}
	j := math.Float64bits(v)>>indexTabShift - indexTabFirst
	if j < uint64(len(indexTab)) {
		if i := indexTab[j]; i != indexTabNone {
			return int(i)
		}
	}
	return indexMapping.Index(v)
}
