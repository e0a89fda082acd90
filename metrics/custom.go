package metrics

import (
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"

	"github.com/drainpipe/drainpipe/internal/tightslice"
	"github.com/drainpipe/drainpipe/logline"
)

// Custom is one l2met custom metric name of a bucket, as Bucket.Metric
// and Bucket.Custom read it. One name may be used with several kinds
// (count#hits and measure#hits); each kind keeps its own aggregate, so
// none is lost. Stat and Dist point into the bucket: read them, and
// change the bucket through AddCustom.
type Custom struct {
	// Kinds has bit 1<<kind set for every logline.CustomKind seen.
	Kinds uint8
	// Count metrics use Total; sample metrics use Stat; measure metrics use
	// Dist. Stat and Dist are nil unless the name was seen with their kind
	// (Has).
	Total float64
	Stat  *Stat
	Dist  *Dist
}

// NamedCustom is one custom metric of a bucket.
type NamedCustom struct {
	Name string
	Custom
}

// Has reports whether the metric was seen with kind k.
func (c *Custom) Has(k logline.CustomKind) bool { return c.Kinds&(1<<k) != 0 }

// Merge adds o to c.
func (c *Custom) Merge(o *Custom) {
	c.Kinds |= o.Kinds
	c.Total += o.Total
	if o.Stat != nil {
		if c.Stat == nil {
			c.Stat = new(Stat)
		}
		c.Stat.Merge(o.Stat)
	}
	if o.Dist != nil {
		if c.Dist == nil {
			c.Dist = new(Dist)
		}
		c.Dist.Merge(o.Dist)
	}
}

// seen marks c as seen with kind, giving it the Stat or Dist the kind
// uses, and returns it.
func (c *Custom) seen(kind logline.CustomKind) *Custom {
	c.Kinds |= 1 << kind
	switch {
	case kind == logline.CustomSample && c.Stat == nil:
		c.Stat = new(Stat)
	case kind == logline.CustomMeasure && c.Dist == nil:
		c.Dist = new(Dist)
	}
	return c
}

// MaxCustomPerBucket bounds the custom metric names one minute bucket
// keeps, so an app that logs unbounded names cannot grow a bucket without
// limit. Names beyond it are counted in the log-loss series as
// "rejected.custom_limit". Merging (rollups) does not drop names.
const MaxCustomPerBucket = 200

// customs is a bucket's custom metrics, a sorted list per kind: a count
// keeps its name and total (24 bytes), a sample its name and Stat (56),
// a measure its name and Dist (80). A name used with several kinds is in
// several lists. That is what a name holds in the encoding, too (its
// kinds, a total, a Stat and a Dist, empty unless of its kinds), except
// in buckets that older code, or another writer, stored otherwise: kinds
// other than the three, a total, Stat or Dist beside kinds that do not
// use them, or a total of -0 or NaN (which adding +0 in a merge would
// change). Decoding keeps those names whole in the bucket's odd list
// (bucketCodes.odd, as Custom records: kinds, total and pointers), and
// a name in the odd list is in no other: it reads back, merges and
// encodes exactly as before. The fold never makes an odd name; a name
// turns odd when an odd one is merged into it.
//
// The lists are held as tightslice.Compact (16 bytes, not 24): with the
// string counts' pointer, a bucket's rare part is 56 bytes, in the
// 64-byte size class instead of 80 (BenchmarkStateMemory).
type customs struct {
	counts   tightslice.Compact[named[float64]]
	samples  tightslice.Compact[named[Stat]]
	measures tightslice.Compact[named[Dist]]
}

// named is one custom metric name's aggregate of one kind.
type named[V any] struct {
	name string
	v    V
}

// len returns the entries of the per-kind lists: at least the names in
// them.
func (c *customs) len() int { return c.counts.Len() + c.samples.Len() + c.measures.Len() }

// findNamed returns the position of name in s and whether it is there.
func findNamed[V any](s []named[V], name string) (int, bool) {
	lo, hi := 0, len(s)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if s[h].name < name {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo, lo < len(s) && s[lo].name == name
}

// odd returns b's odd custom metrics (see customs).
func (b *Bucket) odd() []NamedCustom {
	if c := b.codes(); c != nil {
		return c.odd
	}
	return nil
}

// oddMetric returns the named odd custom metric, nil when the name is
// not odd.
func (b *Bucket) oddMetric(name string) *Custom {
	odd := b.odd()
	if len(odd) == 0 {
		return nil
	}
	i, ok := oddIndex(odd, name)
	if !ok {
		return nil
	}
	return &odd[i].Custom
}

// oddIndex returns the position of name in odd and whether it is there.
func oddIndex(odd []NamedCustom, name string) (int, bool) {
	return slices.BinarySearchFunc(odd, name, func(c NamedCustom, name string) int { return strings.Compare(c.Name, name) })
}

// Custom yields b's custom metrics in name order. What they point to is
// b's: valid until b next changes.
func (b *Bucket) Custom() iter.Seq[NamedCustom] {
	return func(yield func(NamedCustom) bool) {
		if b.rare == nil {
			return
		}
		cs, odd := b.rare.customs.lists(), b.odd()
		var i, j, k, l int
		for {
			var name string
			found := false
			next := func(n string) {
				if !found || n < name {
					name, found = n, true
				}
			}
			if i < len(cs.counts) {
				next(cs.counts[i].name)
			}
			if j < len(cs.samples) {
				next(cs.samples[j].name)
			}
			if k < len(cs.measures) {
				next(cs.measures[k].name)
			}
			if l < len(odd) {
				next(odd[l].Name)
			}
			if !found {
				return
			}
			c := NamedCustom{Name: name}
			if l < len(odd) && odd[l].Name == name {
				c.Custom = odd[l].Custom
				l++
			}
			if i < len(cs.counts) && cs.counts[i].name == name {
				c.Kinds |= 1 << logline.CustomCount
				c.Total = cs.counts[i].v
				i++
			}
			if j < len(cs.samples) && cs.samples[j].name == name {
				c.Kinds |= 1 << logline.CustomSample
				c.Stat = &cs.samples[j].v
				j++
			}
			if k < len(cs.measures) && cs.measures[k].name == name {
				c.Kinds |= 1 << logline.CustomMeasure
				c.Dist = &cs.measures[k].v
				k++
			}
			if !yield(c) {
				return
			}
		}
	}
}

// customLen returns the number of custom metric names in b.
func (b *Bucket) customLen() int {
	n := 0
	for range b.Custom() {
		n++
	}
	return n
}

// hasCustom reports whether b holds any custom metric.
func (b *Bucket) hasCustom() bool {
	return b.rare != nil && (b.rare.customs.len() > 0 || len(b.odd()) > 0)
}

// Metric returns the named custom metric; false when there is none. What
// it points to is b's: valid until b next changes.
func (b *Bucket) Metric(name string) (Custom, bool) {
	if b.rare == nil {
		return Custom{}, false
	}
	if c := b.oddMetric(name); c != nil {
		return *c, true
	}
	var c Custom
	cs := b.rare.customs.lists()
	if i, ok := findNamed(cs.counts, name); ok {
		c.Kinds |= 1 << logline.CustomCount
		c.Total = cs.counts[i].v
	}
	if i, ok := findNamed(cs.samples, name); ok {
		c.Kinds |= 1 << logline.CustomSample
		c.Stat = &cs.samples[i].v
	}
	if i, ok := findNamed(cs.measures, name); ok {
		c.Kinds |= 1 << logline.CustomMeasure
		c.Dist = &cs.measures[i].v
	}
	return c, c.Kinds != 0
}

// AddCustom records one value of the named custom metric of kind at t
// (Unix ns): a count adds v to the total, a sample adds it to the Stat
// (Stat.Add), a measure to the Dist (Dist.Add). A kind other than the
// three only marks the name as seen with it. It reports false, recording
// nothing, when the name is new and b already holds MaxCustomPerBucket
// names. A new name's string is kept, not copied: the aggregator passes
// the copy its name limits hold.
func (b *Bucket) AddCustom(name string, kind logline.CustomKind, v float64, t int64) bool {
	if c := b.oddMetric(name); c != nil {
		c.seen(kind).add(kind, v, t)
		return true
	}
	switch kind {
	case logline.CustomCount:
		p := customSlot(b, countsOf, name, true)
		if p == nil {
			return false
		}
		*p += v
	case logline.CustomSample:
		p := customSlot(b, samplesOf, name, true)
		if p == nil {
			return false
		}
		p.Add(v, t)
	case logline.CustomMeasure:
		p := customSlot(b, measuresOf, name, true)
		if p == nil {
			return false
		}
		p.Add(v)
	default:
		c := b.oddSlot(name, true)
		if c == nil {
			return false
		}
		c.seen(kind)
	}
	return true
}

// add records v of kind (seen) as AddCustom does.
func (c *Custom) add(kind logline.CustomKind, v float64, t int64) {
	switch kind {
	case logline.CustomCount:
		c.Total += v
	case logline.CustomSample:
		c.Stat.Add(v, t)
	case logline.CustomMeasure:
		c.Dist.Add(v)
	}
}

func countsOf(c *customs) *tightslice.Compact[named[float64]] { return &c.counts }
func samplesOf(c *customs) *tightslice.Compact[named[Stat]]   { return &c.samples }
func measuresOf(c *customs) *tightslice.Compact[named[Dist]]  { return &c.measures }

// customLists is a bucket's per-kind lists as slices, for reading.
type customLists struct {
	counts   []named[float64]
	samples  []named[Stat]
	measures []named[Dist]
}

// lists returns c's lists as slices, for reading (and changing values
// in place).
func (c *customs) lists() customLists {
	return customLists{c.counts.S(), c.samples.S(), c.measures.S()}
}

// customSlot returns the aggregate of name in b's list that list
// selects, adding a zero one when missing; nil when the name is new to b
// and capped and b holds MaxCustomPerBucket names. The name must not be
// odd.
func customSlot[V any](b *Bucket, list func(*customs) *tightslice.Compact[named[V]], name string, capped bool) *V {
	if b.rare != nil {
		s := list(&b.rare.customs).S()
		if i, ok := findNamed(s, name); ok {
			return &s[i].v
		}
	}
	if capped && !b.roomForCustom(name) {
		return nil
	}
	l := list(&b.more().customs)
	s := l.S()
	i, _ := findNamed(s, name)
	s = tightslice.Insert(s, i, named[V]{name: name})
	l.Set(s)
	return &s[i].v
}

// roomForCustom reports whether b may add name: it holds the name
// already, or fewer than MaxCustomPerBucket names.
func (b *Bucket) roomForCustom(name string) bool {
	if b.rare == nil || b.rare.customs.len()+len(b.odd()) < MaxCustomPerBucket {
		return true
	}
	if _, ok := b.Metric(name); ok {
		return true
	}
	return b.customLen() < MaxCustomPerBucket
}

// oddSlot returns the named odd custom metric, making the name odd when
// it is not (its aggregates move from the per-kind lists, unchanged) and
// adding it when missing; nil when the name is new to b and capped and b
// holds MaxCustomPerBucket names.
func (b *Bucket) oddSlot(name string, capped bool) *Custom {
	if c := b.oddMetric(name); c != nil {
		return c
	}
	c, held := b.Metric(name)
	if !held && capped && !b.roomForCustom(name) {
		return nil
	}
	if held {
		cs := &b.rare.customs
		if c.Stat != nil {
			st := *c.Stat
			c.Stat = &st
		}
		if c.Dist != nil {
			d := *c.Dist // its sketch's bins move along with it
			c.Dist = &d
		}
		deleteNamed(&cs.counts, name)
		deleteNamed(&cs.samples, name)
		deleteNamed(&cs.measures, name)
	}
	codes := b.moreCodes()
	i, _ := oddIndex(codes.odd, name)
	codes.odd = tightslice.Insert(codes.odd, i, NamedCustom{Name: name, Custom: c})
	return &codes.odd[i].Custom
}

// deleteNamed removes name from the list l, when there.
func deleteNamed[V any](l *tightslice.Compact[named[V]], name string) {
	if i, ok := findNamed(l.S(), name); ok {
		l.Set(slices.Delete(l.S(), i, i+1))
	}
}

// mergeCustom adds o's custom metrics to b, as Custom.Merge adds them
// name by name: a name odd in either bucket is merged as a whole into an
// odd one, the others kind by kind.
func (b *Bucket) mergeCustom(o *Bucket) {
	if o.rare == nil {
		return
	}
	anyOdd := len(b.odd()) > 0 || len(o.odd()) > 0
	for c := range o.Custom() {
		if anyOdd && (b.oddMetric(c.Name) != nil || o.oddMetric(c.Name) != nil) {
			b.oddSlot(c.Name, false).Merge(&c.Custom)
			continue
		}
		if c.Has(logline.CustomCount) {
			*customSlot(b, countsOf, c.Name, false) += c.Total
		}
		if c.Has(logline.CustomSample) {
			customSlot(b, samplesOf, c.Name, false).Merge(c.Stat)
		}
		if c.Has(logline.CustomMeasure) {
			customSlot(b, measuresOf, c.Name, false).Merge(c.Dist)
		}
	}
}

// encodeCustom writes b's custom metrics: their number, then each name,
// its kinds, total, Stat and Dist (empty when it has none).
func (b *Bucket) encodeCustom(e *encoder) {
	e.uvarint(uint64(b.customLen()))
	for c := range b.Custom() {
		e.str(c.Name)
		e.uvarint(uint64(c.Kinds))
		e.float(c.Total)
		if c.Stat != nil {
			c.Stat.encode(e)
		} else {
			e.uvarint(0) // an empty Stat
		}
		if c.Dist != nil {
			c.Dist.encode(e)
		} else {
			e.uvarint(0) // an empty Dist
		}
	}
}

// regularKinds are the kinds the per-kind lists hold.
const regularKinds = 1<<logline.CustomCount | 1<<logline.CustomSample | 1<<logline.CustomMeasure

// regular reports whether a decoded custom metric fits the per-kind
// lists: it encodes again to the same bytes from them, and merges as
// Custom.Merge would merge it (see customs).
func regular(c *Custom, st *Stat, d *Dist) bool {
	if c.Kinds == 0 || c.Kinds&^regularKinds != 0 {
		return false
	}
	if c.Has(logline.CustomCount) {
		if math.IsNaN(c.Total) || math.Float64bits(c.Total) == 1<<63 {
			return false
		}
	} else if math.Float64bits(c.Total) != 0 {
		return false
	}
	return (st.Count == 0 || c.Has(logline.CustomSample)) && (d.Count == 0 || c.Has(logline.CustomMeasure))
}

// decodeCustom reads n encoded custom metrics into cs, and the odd ones
// into odd. Each list is allocated at its first name, with room for the
// names left.
func decodeCustom(r *decoder, n int, cs *customs, odd *[]NamedCustom) error {
	var prev string
	for i := 0; i < n && r.err == nil; i++ {
		name := r.str()
		if i > 0 && name <= prev && r.err == nil {
			return fmt.Errorf("decode bucket: custom metrics out of order")
		}
		prev = name
		c := Custom{Kinds: uint8(r.uvarint()), Total: r.float()}
		var st Stat
		st.decode(r)
		var d Dist
		if err := d.decode(r); err != nil {
			return fmt.Errorf("decode bucket custom %q: %w", name, err)
		}
		if r.err != nil {
			break
		}
		if !regular(&c, &st, &d) {
			// As decoding always has: a Stat or Dist when not empty or
			// of the name's kinds.
			// (Copies, so that st and d stay on the stack otherwise.)
			if st.Count > 0 || c.Has(logline.CustomSample) {
				c.Stat = new(Stat)
				*c.Stat = st
			}
			if d.Count > 0 || c.Has(logline.CustomMeasure) {
				c.Dist = new(Dist)
				*c.Dist = d
			}
			*odd = append(*odd, NamedCustom{Name: name, Custom: c})
			continue
		}
		if c.Has(logline.CustomCount) {
			appendRoom(&cs.counts, named[float64]{name, c.Total}, n-i)
		}
		if c.Has(logline.CustomSample) {
			appendRoom(&cs.samples, named[Stat]{name, st}, n-i)
		}
		if c.Has(logline.CustomMeasure) {
			appendRoom(&cs.measures, named[Dist]{name, d}, n-i)
		}
	}
	return nil
}

// appendRoom appends v to the list l, making it with room for left
// values when it has none.
func appendRoom[V any](l *tightslice.Compact[V], v V, left int) {
	s := l.S()
	if s == nil {
		s = make([]V, 0, left)
	}
	l.Set(append(s, v))
}
