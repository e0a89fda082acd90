package metrics

import "math"

// sketch is the state of a DDSketch over non-negative values with the
// shared indexMapping (1% relative accuracy): how many values were too
// small to index (kept as zeros), and the counts of the positive bins
// from index lo up, in a slice sized to the bins in use.
//
// drainpipe keeps this itself instead of the library's DDSketch with a
// DenseStore: a DenseStore reserves 128 or more float64 bins whatever it
// holds, so every per-minute bucket's latency, connect and custom-metric
// sketches took a kilobyte or more each in memory (BenchmarkStateMemory)
// and every decoded bucket allocated them again on the query path. The
// mapping, the bins and the ranks are the library's; only the storage is
// compact.
type sketch struct {
	zero   uint64   // values at or below the mapping's smallest indexable value
	n      uint64   // zero plus every bin's count
	lo     int      // bin index of counts[0]
	counts []uint64 // counts[len-1] > 0 when len > 0; leading bins may be 0
}

var (
	minIndexable = indexMapping.MinIndexableValue()
	maxIndexable = indexMapping.MaxIndexableValue()
)

// add records one non-negative finite value. Values beyond the mapping's
// range (above about 1e300) are dropped, as the library's Add refuses them.
func (s *sketch) add(v float64) {
	switch {
	case !(v > minIndexable):
		s.zero++
		s.n++
	case v <= maxIndexable:
		i := indexMapping.Index(v)
		s.cover(i, i)
		s.counts[i-s.lo]++
		s.n++
	}
}

// cover makes counts span the bins lo..hi (lo <= hi), keeping some slack
// so that a sketch filling up grows in few steps.
func (s *sketch) cover(lo, hi int) {
	if len(s.counts) == 0 {
		if cap(s.counts) < hi-lo+1 {
			s.counts = make([]uint64, hi-lo+1, hi-lo+1+4)
		} else {
			s.counts = s.counts[:hi-lo+1]
			clear(s.counts)
		}
		s.lo = lo
		return
	}
	top := s.lo + len(s.counts) - 1
	if lo >= s.lo && hi <= top {
		return
	}
	if lo >= s.lo { // grow upwards, in place when the capacity allows
		n := hi - s.lo + 1
		if n <= cap(s.counts) {
			old := len(s.counts)
			s.counts = s.counts[:n]
			clear(s.counts[old:])
			return
		}
		grown := make([]uint64, n, n+max(4, n/4))
		copy(grown, s.counts)
		s.counts = grown
		return
	}
	// Grow downwards, with some slack below lo for the next lower values.
	newLo := lo - max(2, len(s.counts)/8)
	newTop := max(top, hi)
	n := newTop - newLo + 1
	grown := make([]uint64, n, n+max(2, n/8))
	copy(grown[s.lo-newLo:], s.counts)
	s.lo, s.counts = newLo, grown
}

// merge adds o's counts.
func (s *sketch) merge(o *sketch) {
	if o.n == 0 {
		return
	}
	s.zero += o.zero
	s.n += o.n
	first := -1
	for i, c := range o.counts {
		if c > 0 {
			first = i
			break
		}
	}
	if first < 0 {
		return
	}
	s.cover(o.lo+first, o.lo+len(o.counts)-1)
	off := o.lo - s.lo
	for i := first; i < len(o.counts); i++ {
		s.counts[off+i] += o.counts[i]
	}
}

// keyAtRank returns the bin index holding the positive value at 0-based
// rank (the library's DenseStore.KeyAtRank).
func (s *sketch) keyAtRank(rank float64) int {
	rank = math.Max(rank, 0)
	var n float64
	for i, c := range s.counts {
		n += float64(c)
		if n > rank {
			return s.lo + i
		}
	}
	return s.lo + len(s.counts) - 1
}

// bins calls f for every non-empty positive bin, lowest first.
func (s *sketch) bins(f func(index int, count uint64)) {
	for i, c := range s.counts {
		if c > 0 {
			f(s.lo+i, c)
		}
	}
}
