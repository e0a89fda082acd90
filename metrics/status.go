package metrics

import (
	"cmp"
	"iter"
	"math"
	"slices"

	"github.com/drainpipe/drainpipe/internal/tightslice"
)

// StatusCounts counts requests per HTTP status code. A status code and
// its count take 8 bytes (two uint32s) rather than the 16 of a
// KeyCount[int]: a web bucket counts a handful of codes, every bucket
// touched since the last flush is held in memory, and a minute's
// requests of one code fit 32 bits. When a code or a count does not fit
// (a count beyond 4,294,967,295 after merging many buckets, or a code
// beyond 32 bits from a stored bucket), the counts turn into a
// Counts[int] and stay so: every count reads back exactly as the int64
// it is. The zero value is empty. A Bucket counts them (AddStatus); a
// StatusCounts it returns is for reading.
type StatusCounts struct {
	narrow []statusCount // by code; nil once wide is set
	wide   *Counts[int]  // the counts, when one does not fit narrow
}

// statusCount is one status code's count in narrow form.
type statusCount struct{ code, n uint32 }

// Len returns the number of status codes counted.
func (c StatusCounts) Len() int {
	if c.wide != nil {
		return len(*c.wide)
	}
	return len(c.narrow)
}

// Get returns the count of status code k, 0 when absent.
func (c StatusCounts) Get(k int) int64 {
	if c.wide != nil {
		return c.wide.Get(k)
	}
	if k < 0 || k > math.MaxUint32 {
		return 0
	}
	if i, ok := c.find(uint32(k)); ok {
		return int64(c.narrow[i].n)
	}
	return 0
}

// All yields every status code and its count, in code order.
func (c StatusCounts) All() iter.Seq2[int, int64] {
	if c.wide != nil {
		return c.wide.All()
	}
	narrow := c.narrow
	return func(yield func(int, int64) bool) {
		for _, e := range narrow {
			if !yield(int(e.code), int64(e.n)) {
				return
			}
		}
	}
}

// find returns the position of code k in the narrow form and whether it
// is there.
func (c StatusCounts) find(k uint32) (int, bool) {
	// Written out, as Counts.find: the fold counts every status here.
	s := c.narrow
	lo, hi := 0, len(s)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if s[h].code < k {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo, lo < len(s) && s[lo].code == k
}

// fits reports whether code k and count n fit the narrow form.
func fits(k int, n int64) bool {
	return k >= 0 && uint64(k) <= math.MaxUint32 && n >= 0 && n <= math.MaxUint32
}

// add adds n to status code k's count.
func (c *StatusCounts) add(k int, n int64) {
	if c.wide == nil && fits(k, n) {
		i, ok := c.find(uint32(k))
		switch {
		case !ok:
			c.narrow = tightslice.Insert(c.narrow, i, statusCount{code: uint32(k), n: uint32(n)})
			return
		case uint64(c.narrow[i].n)+uint64(n) <= math.MaxUint32:
			c.narrow[i].n += uint32(n)
			return
		}
	}
	c.widen()
	c.wide.Add(k, n)
}

// widen turns c into its wide form (when it is not yet).
func (c *StatusCounts) widen() {
	if c.wide != nil {
		return
	}
	w := make(Counts[int], len(c.narrow))
	for i, e := range c.narrow {
		w[i] = KeyCount[int]{Key: int(e.code), N: int64(e.n)}
	}
	c.wide, c.narrow = &w, nil
}

// merge adds o's counts to c.
func (c *StatusCounts) merge(o *StatusCounts) {
	if o.wide == nil && c.wide == nil && c.mergeNarrow(o.narrow) {
		return
	}
	c.widen()
	if o.wide != nil {
		c.wide.merge(*o.wide)
		return
	}
	for _, e := range o.narrow {
		c.wide.Add(int(e.code), int64(e.n))
	}
}

// mergeNarrow adds o to c's narrow form; it reports false, changing
// nothing, when a sum would not fit 32 bits.
func (c *StatusCounts) mergeNarrow(o []statusCount) bool {
	out, ok := mergeSorted(c.narrow, o)
	if ok {
		c.narrow = out
	}
	return ok
}

// cmpKey compares e's code with o's.
func (e statusCount) cmpKey(o statusCount) int { return cmp.Compare(e.code, o.code) }

// plus returns e with o's count added; false when the sum does not fit
// 32 bits.
func (e statusCount) plus(o statusCount) (statusCount, bool) {
	n := uint64(e.n) + uint64(o.n)
	return statusCount{code: e.code, n: uint32(n)}, n <= math.MaxUint32
}

// encode writes the counts as Encode always has: their number, then
// each code and count as uvarints.
func (c StatusCounts) encode(e *encoder) {
	e.uvarint(uint64(c.Len()))
	if c.wide != nil {
		for _, kc := range *c.wide {
			e.uvarint(uint64(kc.Key))
			e.uvarint(uint64(kc.N))
		}
		return
	}
	for _, sc := range c.narrow { // not through All: its func would escape, an allocation per bucket
		e.uvarint(uint64(sc.code))
		e.uvarint(uint64(sc.n))
	}
}

// count5xx returns the requests answered with a 5xx status.
func (c StatusCounts) count5xx() int64 {
	var n int64
	if c.wide != nil {
		for _, kc := range *c.wide {
			if kc.Key >= 500 && kc.Key <= 599 {
				n += kc.N
			}
		}
		return n
	}
	for _, sc := range c.narrow {
		if sc.code >= 500 && sc.code <= 599 {
			n += int64(sc.n)
		}
	}
	return n
}

// decode reads n encoded counts into c (empty), narrow while they fit;
// it reports false when the codes are not in increasing order.
func (c *StatusCounts) decode(r *decoder, n int) bool {
	c.narrow = make([]statusCount, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		k, cnt := int(r.uvarint()), int64(r.uvarint())
		if r.err != nil {
			break
		}
		if c.wide == nil && fits(k, cnt) {
			if m := len(c.narrow); m > 0 && uint32(k) <= c.narrow[m-1].code {
				return false
			}
			c.narrow = append(c.narrow, statusCount{code: uint32(k), n: uint32(cnt)})
			continue
		}
		if c.wide == nil {
			c.widen()
			w := slices.Grow(*c.wide, n-i)
			c.wide = &w
		}
		if m := len(*c.wide); m > 0 && k <= (*c.wide)[m-1].Key {
			return false
		}
		*c.wide = append(*c.wide, KeyCount[int]{Key: k, N: cnt})
	}
	return true
}
