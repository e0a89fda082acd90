// Package metrics holds drainpipe's mergeable aggregates: the contents of
// one bucket (an app's process type over one minute, ten minutes or an
// hour), how buckets merge, and their compact binary encoding.
//
// Every aggregate here merges exactly: counts add, gauges keep sum, count
// and max, and latency distributions are DDSketches with 1% relative
// accuracy plus exact count, sum, min and max. Percentiles are never
// averaged; they are read from a merged sketch.
package metrics

import (
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
)

// RelativeAccuracy is the relative error bound of every stored quantile.
const RelativeAccuracy = 0.01

// indexMapping is immutable once built and shared by every sketch so that
// sketches merge without remapping and encode without their mapping.
var indexMapping = mustMapping()

func mustMapping() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(RelativeAccuracy)
	if err != nil {
		panic(err) // a constant accuracy that the library rejects is a programming error
	}
	return m
}

// Dist is a mergeable distribution: exact count, sum, min and max, and a
// DDSketch for quantiles. The zero value is empty and ready to use.
type Dist struct {
	Count  int64
	Sum    float64
	Min    float64
	Max    float64
	sketch sketch
}

// Add records one observation. Negative, NaN and infinite values are
// ignored, and so are finite values beyond the sketch's range (above
// about 1.26e308), which the sketch could not count: the count, sum, min
// and max then describe exactly what the sketch holds, as decoding
// checks.
func (d *Dist) Add(v float64) {
	if !(v >= 0) || v > maxIndexable {
		return
	}
	if d.Count == 0 || v < d.Min {
		d.Min = v
	}
	if d.Count == 0 || v > d.Max {
		d.Max = v
	}
	d.Count++
	d.Sum += v
	d.sketch.add(v)
}

// Merge adds o's observations to d.
func (d *Dist) Merge(o *Dist) {
	if o == nil || o.Count == 0 {
		return
	}
	if d.Count == 0 || o.Min < d.Min {
		d.Min = o.Min
	}
	if d.Count == 0 || o.Max > d.Max {
		d.Max = o.Max
	}
	d.Count += o.Count
	d.Sum += o.Sum
	d.sketch.merge(&o.sketch)
}

// Quantile returns the q-quantile (0..1) and false when the distribution
// is empty. It interpolates linearly between the values at the ranks
// around q·(n−1), as numpy's default percentile does, reading each rank's
// value from the sketch (within RelativeAccuracy) and the lowest and
// highest ranks from the exact min and max. So small and sparse
// distributions get the same answer an exact computation would, within
// the sketch's accuracy, instead of snapping to one side.
func (d *Dist) Quantile(q float64) (float64, bool) {
	if d.Count == 0 || !(q >= 0 && q <= 1) {
		return 0, false
	}
	n := float64(d.Count) // what the sketch holds (Add, Merge and decoding keep them equal)
	r := q * (n - 1)
	k := math.Floor(r)
	zc := float64(d.zeros())
	v := d.valueAtRank(k, n, zc)
	if f := r - k; f > 0 {
		v += (d.valueAtRank(k+1, n, zc) - v) * f
	}
	return math.Min(math.Max(v, d.Min), d.Max), true
}

// zeros returns how many observations were too small for the sketch to
// index (at or below its smallest indexable value): those of Count that
// its bins do not hold.
func (d *Dist) zeros() uint64 { return uint64(d.Count) - d.sketch.binTotal() }

// valueAtRank returns the value of the observation at 0-based rank k of
// n, of which zc are zeros.
func (d *Dist) valueAtRank(k, n, zc float64) float64 {
	switch {
	case k <= 0:
		return d.Min
	case k >= n-1:
		return d.Max
	}
	if k < zc {
		return 0
	}
	return indexMapping.Value(d.sketch.keyAtRank(k - zc))
}

// Mean returns the exact mean and false when empty.
func (d *Dist) Mean() (float64, bool) {
	if d.Count == 0 {
		return 0, false
	}
	return d.Sum / float64(d.Count), true
}

func (d *Dist) encode(e *encoder) {
	e.uvarint(uint64(d.Count))
	if d.Count == 0 {
		return
	}
	e.float(d.Sum)
	e.float(d.Min)
	e.float(d.Max)
	encodeSketch(e, &d.sketch, uint64(d.Count))
}

// encodeSketch writes a sketch of n observations as its zero count (n
// less its bins' counts) and its positive bins (index deltas and counts
// as varints). drainpipe writes and reads this itself rather than
// through the library's decoder, so that a corrupt encoding is rejected
// with an error and can never make the decoder allocate without bound.
func encodeSketch(e *encoder, s *sketch, n uint64) {
	bins, total := 0, uint64(0)
	s.bins(func(_ int, c uint64) { bins, total = bins+1, total+c })
	e.uvarint(n - total)
	e.uvarint(uint64(bins))
	prev := 0
	s.bins(func(index int, count uint64) {
		e.varint(int64(index - prev))
		e.uvarint(count)
		prev = index
	})
}

// Bounds of a valid bin index: those of the smallest and largest values
// the mapping can index.
var (
	minSketchIndex = indexMapping.Index(indexMapping.MinIndexableValue())
	maxSketchIndex = indexMapping.Index(indexMapping.MaxIndexableValue())
)

// decodeSketch reads what encodeSketch wrote into s and checks that the
// bins are in range, ascending, and add up, with the zero count, to want
// observations (the Dist's Count, which then implies the zero count). The
// bins are read twice: once to check them and find their range and
// largest count, once to fill the bins, allocated once at their exact
// size in the smaller layout.
func decodeSketch(r *decoder, want int64, s *sketch) error {
	zero := r.uvarint()
	bins := r.count()
	if r.err != nil {
		return r.err
	}
	start := *r
	span, err := r.checkBins(bins, zero, want)
	if err != nil {
		return err
	}
	first, last := span.first, span.last
	end := *r
	*r = start
	*s = sketch{}
	if bins > 0 {
		s.w = widthFor(span.top)
		s.sparse = !denseIsSmaller(last-first+1, bins, s.w)
		s.lo = int32(first)
		if s.sparse {
			s.setSparseKeys(int32(first), int32(last))
		}
		stride := s.stride()
		if s.sparse {
			s.bn.Set(make([]byte, bins*stride))
		} else {
			s.bn.Set(make([]byte, (last-first+1)*stride))
		}
		index := 0
		for i := range bins {
			index += int(r.varint())
			count := r.uvarint()
			if s.sparse {
				s.putKey(s.bn.S()[i*stride:], int32(index))
				putCount(s.bn.S()[i*stride+s.keyBytes():], s.w, count)
			} else {
				putCount(s.bn.S()[(index-first)*stride:], s.w, count)
			}
		}
	}
	*r = end
	return nil
}

// binSpan is what checkBins learns of a sketch's encoded bins: the
// lowest and highest bin index and the largest count.
type binSpan struct {
	first, last int
	top         uint64
}

// checkBins steps r over nbins encoded bins and checks them: indexes in
// the mapping's range and ascending, counts positive, and the counts plus
// zero adding up to want. decodeSketch and the query path's DistView.read
// both check a sketch this way before they use it.
func (r *decoder) checkBins(nbins int, zero uint64, want int64) (binSpan, error) {
	var span binSpan
	b := r.b
	total := zero
	index := 0
	for i := 0; i < nbins; i++ {
		delta, n := nextVarint(b)
		if n <= 0 {
			r.fail()
			return span, r.err
		}
		b = b[n:]
		count, n := nextUvarint(b)
		if n <= 0 {
			r.fail()
			return span, r.err
		}
		b = b[n:]
		if (i > 0 && delta <= 0) || delta > int64(maxSketchIndex-minSketchIndex) || delta < int64(minSketchIndex-maxSketchIndex) {
			return span, fmt.Errorf("sketch bin %d: bad index step %d", i, delta)
		}
		index += int(delta)
		if index < minSketchIndex || index > maxSketchIndex || count == 0 {
			return span, fmt.Errorf("sketch bin %d: index %d or count %d out of range", i, index, count)
		}
		total += count
		if total > uint64(want) || total < count {
			return span, fmt.Errorf("sketch holds more than the %d observations counted", want)
		}
		span.top = max(span.top, count)
		if i == 0 {
			span.first = index
		}
		span.last = index
	}
	if total != uint64(want) {
		return span, fmt.Errorf("sketch holds %d observations, want %d", total, want)
	}
	r.b = b
	return span, nil
}

func (d *Dist) decode(r *decoder) error {
	*d = Dist{Count: int64(r.uvarint())}
	if d.Count == 0 {
		return r.err
	}
	d.Sum = r.float()
	d.Min = r.float()
	d.Max = r.float()
	if r.err != nil {
		return r.err
	}
	if err := decodeSketch(r, d.Count, &d.sketch); err != nil {
		return fmt.Errorf("decode sketch: %w", err)
	}
	return nil
}

// Stat is a mergeable gauge: count, sum and max of samples, and the latest
// sample with its time.
type Stat struct {
	Count int64
	Sum   float64
	Max   float64
	Last  float64
	LastT int64 // Unix nanoseconds of Last
}

// Add records one sample taken at t (Unix nanoseconds).
func (s *Stat) Add(v float64, t int64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if s.Count == 0 || v > s.Max {
		s.Max = v
	}
	if s.Count == 0 || t >= s.LastT {
		s.Last, s.LastT = v, t
	}
	s.Count++
	s.Sum += v
}

// Merge adds o's samples to s.
func (s *Stat) Merge(o *Stat) {
	if o.Count == 0 {
		return
	}
	if s.Count == 0 || o.Max > s.Max {
		s.Max = o.Max
	}
	if s.Count == 0 || o.LastT >= s.LastT {
		s.Last, s.LastT = o.Last, o.LastT
	}
	s.Count += o.Count
	s.Sum += o.Sum
}

// Mean returns the mean of the samples and false when there are none.
func (s *Stat) Mean() (float64, bool) {
	if s.Count == 0 {
		return 0, false
	}
	return s.Sum / float64(s.Count), true
}

func (s *Stat) encode(e *encoder) {
	e.uvarint(uint64(s.Count))
	if s.Count == 0 {
		return
	}
	e.float(s.Sum)
	e.float(s.Max)
	e.float(s.Last)
	e.varint(s.LastT)
}

func (s *Stat) decode(r *decoder) {
	*s = Stat{Count: int64(r.uvarint())}
	if s.Count == 0 {
		return
	}
	s.Sum = r.float()
	s.Max = r.float()
	s.Last = r.float()
	s.LastT = r.varint()
}
