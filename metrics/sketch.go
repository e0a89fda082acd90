package metrics

import (
	"encoding/binary"
	"math"
	"slices"
)

// sketch is the state of a DDSketch over non-negative values with the
// shared indexMapping (1% relative accuracy): how many values were too
// small to index (kept as zeros), and the counts of the positive bins.
//
// drainpipe keeps this itself instead of the library's DDSketch with a
// DenseStore, and keeps it small: every per-minute bucket's latency,
// connect and custom-metric sketches are held in memory until the next
// flush (BenchmarkStateMemory), and every decoded bucket builds them on
// the query path. The mapping, the bins and the ranks are the library's;
// only the storage differs. The bins are stored in one byte slice, in one
// of two layouts, whichever is smaller:
//
//   - dense: one count for every bin from lo up, zeros included, the
//     first and last not zero (a minute's latencies fill most bins between
//     their lowest and highest);
//   - sparse: a 4-byte bin index and a count for every non-empty bin,
//     ascending (connect times, custom measures and outliers).
//
// Every count takes w bytes (1, 2, 4 or 8, little-endian). w is as small
// as the largest count allows and grows when a count would exceed it, so
// counts never wrap below 2^64.
type sketch struct {
	zero   uint64 // values at or below the mapping's smallest indexable value
	lo     int32  // dense: the bin index of the first count
	w      uint8  // bytes per count: 0 while there are no bins, else 1, 2, 4 or 8
	sparse bool   // b holds (index, count) entries rather than a dense run
	b      []byte // the bins, in the layout above
}

var (
	minIndexable = indexMapping.MinIndexableValue()
	maxIndexable = indexMapping.MaxIndexableValue()
)

// keyBytes is the size of a sparse entry's bin index.
const keyBytes = 4

// add records one non-negative finite value. Values beyond the mapping's
// range (above about 1.26e308) are dropped, as the library's Add refuses
// them; Dist.Add does not pass them.
func (s *sketch) add(v float64) {
	switch {
	case !(v > minIndexable):
		s.zero++
	case v <= maxIndexable:
		k := int32(sketchIndex(v))
		if !s.sparse { // the common case: within a dense run, no widening
			switch j := int(k - s.lo); {
			case j < 0:
			case s.w == 1:
				if j < len(s.b) && s.b[j] != math.MaxUint8 {
					s.b[j]++
					return
				}
			case s.w == 2:
				if 2*j+2 <= len(s.b) {
					p := s.b[2*j : 2*j+2]
					if c := binary.LittleEndian.Uint16(p); c != math.MaxUint16 {
						binary.LittleEndian.PutUint16(p, c+1)
						return
					}
				}
			case s.w == 4:
				if 4*j+4 <= len(s.b) {
					p := s.b[4*j : 4*j+4]
					if c := binary.LittleEndian.Uint32(p); c != math.MaxUint32 {
						binary.LittleEndian.PutUint32(p, c+1)
						return
					}
				}
			}
		}
		s.addBin(k, 1)
	}
}

// widthFor returns the bytes per count that c needs.
func widthFor(c uint64) uint8 {
	switch {
	case c <= math.MaxUint8:
		return 1
	case c <= math.MaxUint16:
		return 2
	case c <= math.MaxUint32:
		return 4
	}
	return 8
}

// maxCount is the largest count w bytes hold.
func maxCount(w uint8) uint64 {
	if w >= 8 {
		return math.MaxUint64
	}
	return 1<<(8*w) - 1
}

func getCount(p []byte, w uint8) uint64 {
	switch w {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(p))
	case 4:
		return uint64(binary.LittleEndian.Uint32(p))
	}
	return binary.LittleEndian.Uint64(p)
}

func putCount(p []byte, w uint8, c uint64) {
	switch w {
	case 1:
		p[0] = uint8(c)
	case 2:
		binary.LittleEndian.PutUint16(p, uint16(c))
	case 4:
		binary.LittleEndian.PutUint32(p, uint32(c))
	default:
		binary.LittleEndian.PutUint64(p, c)
	}
}

func getKey(p []byte) int32    { return int32(binary.LittleEndian.Uint32(p)) }
func putKey(p []byte, k int32) { binary.LittleEndian.PutUint32(p, uint32(k)) }

// stride is the bytes of one bin in b.
func (s *sketch) stride() int {
	if s.sparse {
		return keyBytes + int(s.w)
	}
	return int(s.w)
}

// entries is the number of bins b holds (dense: including empty ones).
func (s *sketch) entries() int {
	if s.w == 0 {
		return 0
	}
	return len(s.b) / s.stride()
}

// entry returns the bin index and count of b's i-th entry.
func (s *sketch) entry(i int) (int32, uint64) {
	if s.sparse {
		p := s.b[i*(keyBytes+int(s.w)):]
		return getKey(p), getCount(p[keyBytes:], s.w)
	}
	return s.lo + int32(i), getCount(s.b[i*int(s.w):], s.w)
}

// span returns the lowest and highest non-empty bin indexes; ok is false
// when there are none. (A dense run starts and ends with non-empty bins.)
func (s *sketch) span() (lo, hi int32, ok bool) {
	n := s.entries()
	if n == 0 {
		return 0, 0, false
	}
	if !s.sparse {
		return s.lo, s.lo + int32(n-1), true
	}
	return getKey(s.b), getKey(s.b[(n-1)*(keyBytes+int(s.w)):]), true
}

// nonEmpty counts the non-empty bins.
func (s *sketch) nonEmpty() int {
	if s.sparse {
		return s.entries()
	}
	n := 0
	for i, e := 0, s.entries(); i < e; i++ {
		if _, c := s.entry(i); c > 0 {
			n++
		}
	}
	return n
}

// denseIsSmaller reports whether bins bins spread over span indexes, with
// counts of w bytes, take no more room dense than sparse.
func denseIsSmaller(span, bins int, w uint8) bool {
	return span*int(w) <= bins*(keyBytes+int(w))
}

// alloc returns a zeroed slice of n bytes with a little room to grow
// (the allocator's size class, and at least an eighth more when grow).
func alloc(n int, grow bool) []byte {
	c := n
	if grow {
		c += max(4, n/8)
	}
	return slices.Grow([]byte(nil), c)[:n]
}

// addBin adds c to the bin with index k.
func (s *sketch) addBin(k int32, c uint64) {
	switch {
	case s.w == 0:
		s.w, s.sparse = widthFor(c), true
		s.b = alloc(keyBytes+int(s.w), true)
		putKey(s.b, k)
		putCount(s.b[keyBytes:], s.w, c)
	case !s.sparse:
		j := int(k - s.lo)
		if j < 0 || j >= len(s.b)/int(s.w) {
			s.extend(k, c)
			return
		}
		s.addAt(j, c)
	default:
		i, found := s.search(k)
		if found {
			s.addAt(i, c)
			return
		}
		s.insert(i, k, c)
	}
}

// countAt returns the byte offset in b of entry i's count.
func (s *sketch) countAt(i int) int {
	if s.sparse {
		return i*(keyBytes+int(s.w)) + keyBytes
	}
	return i * int(s.w)
}

// addAt adds c to entry i's count, widening every count first when the
// sum would not fit.
func (s *sketch) addAt(i int, c uint64) {
	off := s.countAt(i)
	sum := getCount(s.b[off:], s.w) + c
	if sum > maxCount(s.w) {
		s.widen(widthFor(sum))
		off = s.countAt(i)
	}
	putCount(s.b[off:], s.w, sum)
}

// widen re-encodes every count with w bytes.
func (s *sketch) widen(w uint8) {
	n := s.entries()
	old, oldW := s.b, s.w
	oldStride := s.stride()
	s.w = w
	s.b = alloc(n*s.stride(), false)
	for i := range n {
		p := old[i*oldStride:]
		q := s.b[i*s.stride():]
		if s.sparse {
			copy(q[:keyBytes], p[:keyBytes])
			p, q = p[keyBytes:], q[keyBytes:]
		}
		putCount(q, w, getCount(p, oldW))
	}
}

// search returns the position of bin index k among the sparse entries,
// and whether it is there.
func (s *sketch) search(k int32) (int, bool) {
	stride := s.stride()
	lo, hi := 0, len(s.b)/stride
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if getKey(s.b[m*stride:]) < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.b)/stride && getKey(s.b[lo*stride:]) == k
}

// insert adds a sparse entry (k, c) at position i, and turns the sketch
// dense when that is now smaller.
func (s *sketch) insert(i int, k int32, c uint64) {
	if c > maxCount(s.w) {
		s.widen(widthFor(c))
	}
	stride := s.stride()
	n := len(s.b)
	if n+stride > cap(s.b) {
		grown := alloc(n+stride, true)
		copy(grown, s.b)
		s.b = grown
	} else {
		s.b = s.b[:n+stride]
	}
	copy(s.b[(i+1)*stride:], s.b[i*stride:n])
	putKey(s.b[i*stride:], k)
	putCount(s.b[i*stride+keyBytes:], s.w, c)
	bins := len(s.b) / stride
	first, last := getKey(s.b), getKey(s.b[(bins-1)*stride:])
	if denseIsSmaller(int(last-first)+1, bins, s.w) {
		s.relayout(first, last, false)
	}
}

// extend adds c at index k, outside the dense run: the run grows to
// cover k unless the bins would then take less room sparse (by half, so
// that a sketch does not flip between the layouts).
func (s *sketch) extend(k int32, c uint64) {
	lo, hi, ok := s.span()
	if !ok {
		lo, hi = k, k
	}
	lo, hi = min(lo, k), max(hi, k)
	if w := widthFor(c); w > s.w {
		s.widen(w)
	}
	if span, bins := int(hi-lo)+1, s.nonEmpty()+1; !denseIsSmaller(span, 2*bins, s.w) {
		s.relayout(0, 0, true)
		s.addBin(k, c)
		return
	}
	s.relayout(lo, hi, false)
	s.addAt(int(k-s.lo), c)
}

// relayout rebuilds b in the given layout: sparse, or dense over lo..hi
// (which must cover every non-empty bin), keeping the width.
func (s *sketch) relayout(lo, hi int32, sparse bool) {
	old := *s
	if !sparse && !old.sparse { // a longer run: copy the counts as they are
		w := int(s.w)
		s.b = alloc((int(hi-lo)+1)*w, true)
		copy(s.b[int(old.lo-lo)*w:], old.b)
		s.lo = lo
		return
	}
	if sparse {
		s.b = alloc(old.nonEmpty()*(keyBytes+int(s.w)), false)
	} else {
		s.b = alloc((int(hi-lo)+1)*int(s.w), true)
	}
	s.sparse, s.lo = sparse, lo
	j := 0
	for i, n := 0, old.entries(); i < n; i++ {
		k, c := old.entry(i)
		if c == 0 {
			continue
		}
		if sparse {
			p := s.b[j*(keyBytes+int(s.w)):]
			putKey(p, k)
			putCount(p[keyBytes:], s.w, c)
			j++
			continue
		}
		putCount(s.b[int(k-lo)*int(s.w):], s.w, c)
	}
}

// merge adds o's counts.
func (s *sketch) merge(o *sketch) {
	s.zero += o.zero
	olo, ohi, ok := o.span()
	if !ok {
		return
	}
	if !s.sparse && s.w != 0 && olo >= s.lo && int(ohi-s.lo) < len(s.b)/int(s.w) {
		if o.sparse {
			for i, n := 0, o.entries(); i < n; i++ {
				k, c := o.entry(i)
				s.addAt(int(k-s.lo), c)
			}
			return
		}
		s.addDense(int(o.lo-s.lo), o.b, o.w)
		return
	}
	if s.sparse && s.addExisting(o) {
		return
	}
	if !s.sparse && s.w != 0 && !o.sparse {
		// Both dense: widen the run to cover o, when dense stays the
		// smaller layout, and add in place.
		slo, shi, _ := s.span()
		lo, hi := min(slo, olo), max(shi, ohi)
		if denseIsSmaller(int(hi-lo)+1, s.nonEmpty()+o.nonEmpty(), max(s.w, o.w)) {
			s.relayout(lo, hi, false)
			s.addDense(int(o.lo-s.lo), o.b, o.w)
			return
		}
	}
	s.mergeUnion(o, olo, ohi)
}

// addExisting adds o's bins to the sparse s in place when s already has
// every one of them (merging minutes with the same few bins), and
// reports whether it did.
func (s *sketch) addExisting(o *sketch) bool {
	stride := keyBytes + int(s.w)
	n := len(s.b) / stride
	it := binIter{s: o, n: o.entries()}
	for i := 0; ; {
		k, _, ok := it.next()
		if !ok {
			break
		}
		for i < n && getKey(s.b[i*stride:]) < k {
			i++
		}
		if i == n || getKey(s.b[i*stride:]) != k {
			return false
		}
	}
	it = binIter{s: o, n: o.entries()}
	for i := 0; ; {
		k, c, ok := it.next()
		if !ok {
			return true
		}
		for getKey(s.b[i*(keyBytes+int(s.w)):]) < k {
			i++
		}
		s.addAt(i, c)
	}
}

// addDense adds a dense run of counts of width w (src) to the dense run
// of s from entry off on, which covers it.
func (s *sketch) addDense(off int, src []byte, w uint8) {
	n := len(src) / int(w)
	for i := 0; i < n; {
		sw := int(s.w)
		dst := s.b[off*sw : (off+n)*sw]
		limit := maxCount(s.w)
		// One loop per destination width, reading the source with the
		// same width every time; leave it to widen.
		switch {
		case s.w == 1 && w == 1:
			for ; i < n; i++ {
				sum := uint(dst[i]) + uint(src[i])
				if sum > math.MaxUint8 {
					break
				}
				dst[i] = uint8(sum)
			}
		case s.w == 2 && w == 1:
			for ; i < n; i++ {
				p := dst[2*i : 2*i+2]
				sum := uint(binary.LittleEndian.Uint16(p)) + uint(src[i])
				if sum > math.MaxUint16 {
					break
				}
				binary.LittleEndian.PutUint16(p, uint16(sum))
			}
		case s.w == 4 && w == 1:
			for ; i < n; i++ {
				p := dst[4*i : 4*i+4]
				sum := uint64(binary.LittleEndian.Uint32(p)) + uint64(src[i])
				if sum > math.MaxUint32 {
					break
				}
				binary.LittleEndian.PutUint32(p, uint32(sum))
			}
		case s.w == 2:
			for ; i < n; i++ {
				p := dst[2*i : 2*i+2]
				sum := uint64(binary.LittleEndian.Uint16(p)) + getCount(src[i*int(w):], w)
				if sum > limit {
					break
				}
				binary.LittleEndian.PutUint16(p, uint16(sum))
			}
		case s.w == 4:
			for ; i < n; i++ {
				p := dst[4*i : 4*i+4]
				sum := uint64(binary.LittleEndian.Uint32(p)) + getCount(src[i*int(w):], w)
				if sum > limit {
					break
				}
				binary.LittleEndian.PutUint32(p, uint32(sum))
			}
		case s.w == 8:
			for ; i < n; i++ {
				p := dst[8*i : 8*i+8]
				binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)+getCount(src[i*int(w):], w))
			}
		}
		if i < n { // the count at i needs more room
			s.addAt(off+i, getCount(src[i*int(w):], w))
			i++
		}
	}
}

// binIter walks a sketch's non-empty bins in index order.
type binIter struct {
	s    *sketch
	i, n int
}

func (it *binIter) next() (int32, uint64, bool) {
	for it.i < it.n {
		k, c := it.s.entry(it.i)
		it.i++
		if c > 0 {
			return k, c, true
		}
	}
	return 0, 0, false
}

// mergeUnion merges o (whose bins span olo..ohi) into s by writing the
// union of their bins into a new slice, in the smaller layout.
func (s *sketch) mergeUnion(o *sketch, olo, ohi int32) {
	walk := func(f func(k int32, c uint64)) {
		a, b := binIter{s: s, n: s.entries()}, binIter{s: o, n: o.entries()}
		ka, ca, oka := a.next()
		kb, cb, okb := b.next()
		for oka || okb {
			switch {
			case oka && (!okb || ka < kb):
				f(ka, ca)
				ka, ca, oka = a.next()
			case okb && (!oka || kb < ka):
				f(kb, cb)
				kb, cb, okb = b.next()
			default:
				f(ka, ca+cb)
				ka, ca, oka = a.next()
				kb, cb, okb = b.next()
			}
		}
	}
	bins, top := 0, uint64(0)
	lo, hi := olo, ohi
	walk(func(k int32, c uint64) {
		bins++
		top = max(top, c)
		lo, hi = min(lo, k), max(hi, k)
	})
	w := max(widthFor(top), s.w, o.w)
	dense := denseIsSmaller(int(hi-lo)+1, bins, w)
	var b []byte
	if dense {
		b = alloc((int(hi-lo)+1)*int(w), true)
	} else {
		b = alloc(bins*(keyBytes+int(w)), true)
	}
	j := 0
	walk(func(k int32, c uint64) {
		if dense {
			putCount(b[int(k-lo)*int(w):], w, c)
			return
		}
		putKey(b[j:], k)
		putCount(b[j+keyBytes:], w, c)
		j += keyBytes + int(w)
	})
	s.b, s.w, s.sparse, s.lo = b, w, !dense, lo
}

// keyAtRank returns the bin index holding the positive value at 0-based
// rank (the library's DenseStore.KeyAtRank).
func (s *sketch) keyAtRank(rank float64) int {
	rank = math.Max(rank, 0)
	var n float64
	e := s.entries()
	if !s.sparse {
		for i := range e {
			n += float64(getCount(s.b[i*int(s.w):], s.w))
			if n > rank {
				return int(s.lo) + i
			}
		}
	} else {
		stride := keyBytes + int(s.w)
		for i := range e {
			n += float64(getCount(s.b[i*stride+keyBytes:], s.w))
			if n > rank {
				return int(getKey(s.b[i*stride:]))
			}
		}
	}
	if e == 0 {
		return 0
	}
	k, _ := s.entry(e - 1)
	return int(k)
}

// bins calls f for every non-empty positive bin, lowest first.
func (s *sketch) bins(f func(index int, count uint64)) {
	for i, n := 0, s.entries(); i < n; i++ {
		if k, c := s.entry(i); c > 0 {
			f(int(k), c)
		}
	}
}
