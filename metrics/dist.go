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

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
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

func newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(indexMapping, store.NewDenseStore(), store.NewDenseStore())
}

// Dist is a mergeable distribution: exact count, sum, min and max, and a
// DDSketch for quantiles. The zero value is empty and ready to use.
type Dist struct {
	Count  int64
	Sum    float64
	Min    float64
	Max    float64
	sketch *ddsketch.DDSketch
}

// Add records one observation. Negative and NaN values are ignored.
func (d *Dist) Add(v float64) {
	if !(v >= 0) || math.IsInf(v, 0) {
		return
	}
	if d.sketch == nil {
		d.sketch = newSketch()
	}
	if d.Count == 0 || v < d.Min {
		d.Min = v
	}
	if d.Count == 0 || v > d.Max {
		d.Max = v
	}
	d.Count++
	d.Sum += v
	_ = d.sketch.Add(v) // cannot fail for finite non-negative values
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
	if o.sketch != nil {
		if d.sketch == nil {
			d.sketch = newSketch()
		}
		_ = d.sketch.MergeWith(o.sketch) // same mapping everywhere: cannot fail
	}
}

// Quantile returns the q-quantile (0..1) within RelativeAccuracy, clamped
// to the exact min and max, and false when the distribution is empty.
func (d *Dist) Quantile(q float64) (float64, bool) {
	if d.Count == 0 || d.sketch == nil || d.sketch.IsEmpty() {
		return 0, false
	}
	v, err := d.sketch.GetValueAtQuantile(q)
	if err != nil {
		return 0, false
	}
	return math.Min(math.Max(v, d.Min), d.Max), true
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
	var sk []byte
	if d.sketch != nil {
		d.sketch.Encode(&sk, true)
	}
	e.bytes(sk)
}

func (d *Dist) decode(r *decoder) error {
	*d = Dist{Count: int64(r.uvarint())}
	if d.Count == 0 {
		return r.err
	}
	d.Sum = r.float()
	d.Min = r.float()
	d.Max = r.float()
	sk := r.bytes()
	if r.err != nil {
		return r.err
	}
	if len(sk) > 0 {
		s, err := ddsketch.DecodeDDSketch(sk, store.DenseStoreConstructor, indexMapping)
		if err != nil {
			return fmt.Errorf("decode sketch: %w", err)
		}
		d.sketch = s
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
