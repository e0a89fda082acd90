package metrics

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/drainpipe/drainpipe/internal/tightslice"
)

// sketch is the state of a DDSketch over non-negative values with the
// shared indexMapping (1% relative accuracy): the counts of the positive
// bins. How many values were too small to index (the zero count) is not
// kept: it is the Dist's Count less the bins' counts (zeros).
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
//   - sparse: a bin index and a count for every non-empty bin, ascending
//     (connect times, custom measures and outliers). The index takes 1
//     byte, an offset from lo, while the bins span at most 256 indexes
//     (values within a factor of about 150 of each other: a minute's
//     connect times and most custom measures), 2 bytes while they span
//     at most 65,536 (a factor of about 10^285, every sketch of real
//     latencies), else 4 bytes, the index itself (wide). The choice
//     between the layouts counts 2-byte keys below 65,536 indexes either
//     way (denseIsSmallerAdding), so 1-byte keys make sparse sketches
//     smaller without making more of them sparse.
//
// Every count takes w bytes (1, 2, 4 or 8, little-endian). w is as small
// as the largest count allows and grows when a count would exceed it, so
// counts never wrap below 2^64.
type sketch struct {
	lo     int32 // dense: the bin index of the first count; sparse with 1- or 2-byte keys: what they are offsets from
	w      uint8 // bytes per count: 0 while there are no bins, else 1, 2, 4 or 8
	sparse bool  // bn holds (index, count) entries rather than a dense run
	kb     uint8 // sparse: the bytes of a key: 1 or 2 (offsets from lo), 4 (bin indexes)
	// bn holds the bins, in the layout above, as a 16-byte
	// tightslice.Compact rather than a slice: a Dist is 56 bytes, not
	// 64, a measure with its name 72, the router part of a bucket 144
	// instead of 160 (BenchmarkStateMemory).
	bn tightslice.Compact[byte]
}

var (
	minIndexable = indexMapping.MinIndexableValue()
	maxIndexable = indexMapping.MaxIndexableValue()
)

// Sizes of a sparse entry's bin index: an offset from lo (1 or 2
// bytes), or the index.
const (
	tinyKey   = 1
	narrowKey = 2
	wideKey   = 4
)

// maxTinySpan and maxNarrowSpan are the most indexes that 1-byte and
// 2-byte keys cover.
const (
	maxTinySpan   = 1 << 8
	maxNarrowSpan = 1 << 16
)

// add records one non-negative finite value. Values at or below the
// mapping's smallest indexable value are zeros, which the Dist's Count
// counts and the sketch does not; values beyond the mapping's range
// (above about 1.26e308) are dropped, as the library's Add refuses them
// (Dist.Add does not pass them).
func (s *sketch) add(v float64) {
	if v > minIndexable && v <= maxIndexable {
		k := int32(sketchIndex(v))
		if !s.sparse { // the common case: within a dense run, no widening
			b := s.bn.S()
			switch j := int(k - s.lo); {
			case j < 0:
			case s.w == 1:
				if j < len(b) && b[j] != math.MaxUint8 {
					b[j]++
					return
				}
			case s.w == 2:
				if 2*j+2 <= len(b) {
					p := b[2*j : 2*j+2]
					if c := binary.LittleEndian.Uint16(p); c != math.MaxUint16 {
						binary.LittleEndian.PutUint16(p, c+1)
						return
					}
				}
			case s.w == 4:
				if 4*j+4 <= len(b) {
					p := b[4*j : 4*j+4]
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

// keyBytes is the size of a sparse entry's bin index.
func (s *sketch) keyBytes() int { return int(s.kb) }

// key reads a sparse entry's bin index at p.
func (s *sketch) key(p []byte) int32 {
	switch s.kb {
	case tinyKey:
		return s.lo + int32(p[0])
	case narrowKey:
		return s.lo + int32(binary.LittleEndian.Uint16(p))
	}
	return int32(binary.LittleEndian.Uint32(p))
}

// putKey writes a sparse entry's bin index k at p; k must fit (fits).
func (s *sketch) putKey(p []byte, k int32) {
	switch s.kb {
	case tinyKey:
		p[0] = uint8(k - s.lo)
	case narrowKey:
		binary.LittleEndian.PutUint16(p, uint16(k-s.lo))
	default:
		binary.LittleEndian.PutUint32(p, uint32(k))
	}
}

// fits reports whether the sparse sketch's keys can hold index k.
func (s *sketch) fits(k int32) bool {
	return s.kb == wideKey || k >= s.lo && int64(k)-int64(s.lo) < int64(1)<<(8*s.kb)
}

// keyBytesFor returns the key size of sparse bins that span span
// indexes.
func keyBytesFor(span int64) uint8 {
	switch {
	case span <= maxTinySpan:
		return tinyKey
	case span <= maxNarrowSpan:
		return narrowKey
	}
	return wideKey
}

// setSparseKeys makes s's keys cover the indexes first..last: offsets
// from a lo that leaves room on both sides, of 1 byte when they span at
// most 256 indexes (a minute's custom measures and connect times, 2
// bytes a bin instead of 3), of 2 bytes when at most 65,536, else
// 4-byte indexes.
func (s *sketch) setSparseKeys(first, last int32) {
	span := int64(last) - int64(first) + 1
	s.kb = keyBytesFor(span)
	if s.kb != wideKey {
		s.lo = first - int32((int64(1)<<(8*s.kb)-span)/2)
	}
}

// stride is the bytes of one bin in bn.
func (s *sketch) stride() int {
	if s.sparse {
		return s.keyBytes() + int(s.w)
	}
	return int(s.w)
}

// entries is the number of bins bn holds (dense: including empty ones).
func (s *sketch) entries() int {
	if s.w == 0 {
		return 0
	}
	return len(s.bn.S()) / s.stride()
}

// entry returns the bin index and count of bn's i-th entry.
func (s *sketch) entry(i int) (int32, uint64) {
	if !s.sparse {
		return s.lo + int32(i), getCount(s.bn.S()[i*int(s.w):], s.w)
	}
	p := s.bn.S()[i*(int(s.kb)+int(s.w)):]
	return s.key(p), getCount(p[s.kb:], s.w)
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
	return s.key(s.bn.S()), s.key(s.bn.S()[(n-1)*s.stride():]), true
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
// counts of w bytes, are to be dense: whether they take no more room dense
// than sparse with 4-byte keys. The choice ignores that sparse keys are
// mostly 2 bytes: with them more sketches would be sparse, smaller, and
// a store's merges of them slower (sparse bins are merged by walking
// both sketches; BenchmarkBucketMerge −70%, BenchmarkRollup −30% when
// the choice counted 2-byte keys).
func denseIsSmaller(span, bins int, w uint8) bool {
	return span*int(w) <= bins*(wideKey+int(w))
}

// denseIsSmallerAdding is denseIsSmaller for the fold's adds, which count
// 2-byte sparse keys while the bins span at most 65,536 indexes: a
// sketch being filled in memory takes the smaller layout (a worker's
// minute of a custom measure: 102 bytes sparse with 2-byte keys, 68 with
// 1-byte ones, instead of 152 dense, BenchmarkStateMemory). It does not
// count 1-byte keys as 1 byte: that would make more of the fold's
// sketches sparse, and a store's merges of sparse sketches slower.
// Merges and decoding keep denseIsSmaller: a store's merges and rollups
// stay on dense runs.
func denseIsSmallerAdding(span, bins int, w uint8) bool {
	key := narrowKey
	if span > maxNarrowSpan {
		key = wideKey
	}
	return span*int(w) <= bins*(key+int(w))
}

// alloc returns a zeroed slice of n bytes with a little room to grow:
// the allocator's size class, and at least an eighth more when grow (a
// sparse sketch's next entries; a dense run grows upwards into its size
// class only, as a minute's new bins are few).
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
		s.setSparseKeys(k, k)
		s.bn.Set(alloc(s.stride(), true))
		s.putKey(s.bn.S(), k)
		putCount(s.bn.S()[s.keyBytes():], s.w, c)
	case !s.sparse:
		j := int(k - s.lo)
		if j < 0 || j >= len(s.bn.S())/int(s.w) {
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

// countAt returns the byte offset in bn of entry i's count.
func (s *sketch) countAt(i int) int {
	if s.sparse {
		return i*s.stride() + s.keyBytes()
	}
	return i * int(s.w)
}

// addAt adds c to entry i's count, widening every count first when the
// sum would not fit.
func (s *sketch) addAt(i int, c uint64) {
	off := s.countAt(i)
	sum := getCount(s.bn.S()[off:], s.w) + c
	if sum > maxCount(s.w) {
		s.widen(widthFor(sum))
		off = s.countAt(i)
	}
	putCount(s.bn.S()[off:], s.w, sum)
}

// widen re-encodes every count with w bytes.
func (s *sketch) widen(w uint8) {
	n := s.entries()
	old, oldW := s.bn.S(), s.w
	oldStride := s.stride()
	s.w = w
	s.bn.Set(alloc(n*s.stride(), false))
	for i := range n {
		p := old[i*oldStride:]
		q := s.bn.S()[i*s.stride():]
		if s.sparse {
			kb := s.keyBytes()
			copy(q[:kb], p[:kb])
			p, q = p[kb:], q[kb:]
		}
		putCount(q, w, getCount(p, oldW))
	}
}

// search returns the position of bin index k among the sparse entries,
// and whether it is there.
func (s *sketch) search(k int32) (int, bool) {
	if s.kb != wideKey {
		return s.searchOffset(k)
	}
	stride, b := s.stride(), s.bn.S()
	lo, hi := 0, len(b)/stride
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.key(b[m*stride:]) < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(b)/stride && s.key(b[lo*stride:]) == k
}

// searchOffset is search for 1- and 2-byte keys: it compares k's offset
// from lo with theirs, without a switch on the key size for every entry
// it looks at (a fold's new sketches are sparse until their minute has
// filled them: search was 3% of BenchmarkFoldBackfill). The keys are
// offsets from lo, below 2^(8·kb): an index below lo comes before all of
// them, one beyond their range after all of them.
func (s *sketch) searchOffset(k int32) (int, bool) {
	stride, b := s.stride(), s.bn.S()
	n := len(b) / stride
	off := int64(k) - int64(s.lo)
	switch {
	case off < 0:
		return 0, false
	case off >= int64(1)<<(8*s.kb):
		return n, false
	}
	o := uint16(off)
	lo, hi := 0, n
	if s.kb == tinyKey {
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if uint16(b[m*stride]) < o {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo, lo < n && uint16(b[lo*stride]) == o
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if binary.LittleEndian.Uint16(b[m*stride:]) < o {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && binary.LittleEndian.Uint16(b[lo*stride:]) == o
}

// insert adds a sparse entry (k, c) at position i, and turns the sketch
// dense when that is now smaller.
func (s *sketch) insert(i int, k int32, c uint64) {
	if c > maxCount(s.w) {
		s.widen(widthFor(c))
	}
	if !s.fits(k) { // beyond 2-byte keys: 4-byte ones
		first, last, _ := s.span()
		s.relayoutSparse(min(first, k), max(last, k))
		i, _ = s.search(k)
	}
	stride := s.stride()
	n := len(s.bn.S())
	if n+stride > cap(s.bn.S()) {
		grown := alloc(n+stride, true)
		copy(grown, s.bn.S())
		s.bn.Set(grown)
	} else {
		s.bn.Set(s.bn.S()[:n+stride])
	}
	copy(s.bn.S()[(i+1)*stride:], s.bn.S()[i*stride:n])
	s.putKey(s.bn.S()[i*stride:], k)
	putCount(s.bn.S()[i*stride+s.keyBytes():], s.w, c)
	bins := len(s.bn.S()) / stride
	first, last := s.key(s.bn.S()), s.key(s.bn.S()[(bins-1)*stride:])
	if denseIsSmallerAdding(int(last-first)+1, bins, s.w) {
		s.relayoutDense(first, last)
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
	if span, bins := int(hi-lo)+1, s.nonEmpty()+1; !denseIsSmallerAdding(span, 2*bins, s.w) {
		s.relayoutSparse(lo, hi)
		s.addBin(k, c)
		return
	}
	if w := int(s.w); lo == s.lo && (int(hi-lo)+1)*w <= cap(s.bn.S()) {
		// Upwards within the run's size class: no copy.
		n := len(s.bn.S())
		s.bn.Set(s.bn.S()[:(int(hi-lo)+1)*w])
		clear(s.bn.S()[n:])
	} else {
		s.relayoutDense(lo, hi)
	}
	s.addAt(int(k-s.lo), c)
}

// relayoutDense rebuilds b as a dense run over lo..hi (which must cover
// every non-empty bin), keeping the width.
func (s *sketch) relayoutDense(lo, hi int32) {
	old := *s
	w := int(s.w)
	s.bn.Set(alloc((int(hi-lo)+1)*w, false))
	if !old.sparse { // a longer run: copy the counts as they are
		copy(s.bn.S()[int(old.lo-lo)*w:], old.bn.S())
		s.lo = lo
		return
	}
	s.sparse, s.kb, s.lo = false, 0, lo
	for i, n := 0, old.entries(); i < n; i++ {
		k, c := old.entry(i)
		putCount(s.bn.S()[int(k-lo)*w:], s.w, c)
	}
}

// relayoutSparse rebuilds b as sparse entries, keeping the width, with
// keys that cover first..last (every non-empty bin, and any about to be
// added).
func (s *sketch) relayoutSparse(first, last int32) {
	old := *s
	s.sparse = true
	s.setSparseKeys(first, last)
	stride := s.stride()
	s.bn.Set(alloc(old.nonEmpty()*stride, false))
	j := 0
	for i, n := 0, old.entries(); i < n; i++ {
		k, c := old.entry(i)
		if c == 0 {
			continue
		}
		p := s.bn.S()[j*stride:]
		s.putKey(p, k)
		putCount(p[s.keyBytes():], s.w, c)
		j++
	}
}

// merge adds o's counts.
func (s *sketch) merge(o *sketch) {
	olo, ohi, ok := o.span()
	if !ok {
		return
	}
	if !s.sparse && s.w != 0 && olo >= s.lo && int(ohi-s.lo) < len(s.bn.S())/int(s.w) {
		if o.sparse {
			i := 0
			if o.kb != wideKey && o.w == 1 {
				i = s.addNarrow1(o)
			}
			for n := o.entries(); i < n; i++ { // what is left: widening
				k, c := o.entry(i)
				s.addAt(int(k-s.lo), c)
			}
			return
		}
		s.addDense(int(o.lo-s.lo), o.bn.S(), o.w)
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
			s.relayoutDense(lo, hi)
			s.addDense(int(o.lo-s.lo), o.bn.S(), o.w)
			return
		}
	}
	s.mergeUnion(o, olo, ohi)
}

// addExisting adds o's bins to the sparse s in place when s already has
// every one of them (merging minutes with the same few bins), and
// reports whether it did.
func (s *sketch) addExisting(o *sketch) bool {
	if o.sparse && o.kb != wideKey && s.kb != wideKey {
		return s.addExistingNarrow(o)
	}
	stride := s.stride()
	n := len(s.bn.S()) / stride
	it := binIter{s: o, n: o.entries()}
	for i := 0; ; {
		k, _, ok := it.next()
		if !ok {
			break
		}
		for i < n && s.key(s.bn.S()[i*stride:]) < k {
			i++
		}
		if i == n || s.key(s.bn.S()[i*stride:]) != k {
			return false
		}
	}
	it = binIter{s: o, n: o.entries()}
	for i := 0; ; {
		k, c, ok := it.next()
		if !ok {
			return true
		}
		for s.key(s.bn.S()[i*s.stride():]) < k { // addAt may have widened the counts
			i++
		}
		s.addAt(i, c)
	}
}

// offsetKey reads a 1- or 2-byte key (an offset from lo) at p.
func offsetKey(p []byte, kb uint8, lo int32) int32 {
	if kb == tinyKey {
		return lo + int32(p[0])
	}
	return lo + int32(binary.LittleEndian.Uint16(p))
}

// addExistingNarrow is addExisting for two sparse sketches with 1- or
// 2-byte keys (merging minutes' connect times and custom measures, and
// latencies of few requests), reading the keys and counts in place.
func (s *sketch) addExistingNarrow(o *sketch) bool {
	ob, sb := o.bn.S(), s.bn.S() // read again after addAt, which may widen s
	os, m := int(o.kb)+int(o.w), len(ob)/(int(o.kb)+int(o.w))
	ss, n := int(s.kb)+int(s.w), len(sb)/(int(s.kb)+int(s.w))
	okey := func(j int) int32 { return offsetKey(ob[j*os:], o.kb, o.lo) }
	skey := func(i int) int32 { return offsetKey(sb[i*ss:], s.kb, s.lo) }
	for i, j := 0, 0; j < m; j++ {
		k := okey(j)
		for i < n && skey(i) < k {
			i++
		}
		if i == n || skey(i) != k {
			return false
		}
	}
	for i, j := 0, 0; j < m; j++ {
		k, c := okey(j), getCount(ob[j*os+int(o.kb):], o.w)
		for skey(i) < k {
			i++
		}
		p := sb[i*ss+int(s.kb):]
		if sum := getCount(p, s.w) + c; sum >= c && sum <= maxCount(s.w) {
			putCount(p, s.w, sum)
			continue
		}
		s.addAt(i, c) // widens every count
		ob, sb, ss = o.bn.S(), s.bn.S(), int(s.kb)+int(s.w)
	}
	return true
}

// addNarrow1 adds the sparse o, of 1- or 2-byte keys and 1-byte counts
// (the fold's small sketches), to the dense run of s, which covers it:
// one loop per key size and width of s, as addDense. It stops before a
// count that would outgrow its width and returns how many of o's
// entries it added.
func (s *sketch) addNarrow1(o *sketch) int {
	// A key is the low kb bytes of the 2 at its entry (a 1-byte key's
	// entry is the key and its count).
	kb := int(o.kb)
	stride, mask := kb+1, 1<<(8*kb)-1
	ob, sb := o.bn.S(), s.bn.S() // s's bins do not move: no widening here
	n, base := len(ob)/stride, int(o.lo-s.lo)
	i := 0
	switch s.w {
	case 1:
		for ; i < n; i++ {
			p := ob[i*stride : i*stride+stride]
			j := base + int(binary.LittleEndian.Uint16(p))&mask
			sum := uint(sb[j]) + uint(p[kb])
			if sum > math.MaxUint8 {
				break
			}
			sb[j] = uint8(sum)
		}
	case 2:
		for ; i < n; i++ {
			p := ob[i*stride : i*stride+stride]
			j := 2 * (base + int(binary.LittleEndian.Uint16(p))&mask)
			q := sb[j : j+2]
			sum := uint(binary.LittleEndian.Uint16(q)) + uint(p[kb])
			if sum > math.MaxUint16 {
				break
			}
			binary.LittleEndian.PutUint16(q, uint16(sum))
		}
	case 4:
		for ; i < n; i++ {
			p := ob[i*stride : i*stride+stride]
			j := 4 * (base + int(binary.LittleEndian.Uint16(p))&mask)
			q := sb[j : j+4]
			sum := uint64(binary.LittleEndian.Uint32(q)) + uint64(p[kb])
			if sum > math.MaxUint32 {
				break
			}
			binary.LittleEndian.PutUint32(q, uint32(sum))
		}
	case 8:
		for ; i < n; i++ {
			p := ob[i*stride : i*stride+stride]
			j := 8 * (base + int(binary.LittleEndian.Uint16(p))&mask)
			q := sb[j : j+8]
			sum := binary.LittleEndian.Uint64(q) + uint64(p[kb])
			if sum < uint64(p[kb]) {
				break
			}
			binary.LittleEndian.PutUint64(q, sum)
		}
	}
	return i
}

// addDense adds a dense run of counts of width w (src) to the dense run
// of s from entry off on, which covers it.
func (s *sketch) addDense(off int, src []byte, w uint8) {
	n := len(src) / int(w)
	for i := 0; i < n; {
		sw := int(s.w)
		dst := s.bn.S()[off*sw : (off+n)*sw]
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
	out := sketch{w: w, sparse: !denseIsSmaller(int(hi-lo)+1, bins, w), lo: lo}
	if out.sparse {
		out.setSparseKeys(lo, hi)
	}
	stride := out.stride()
	if out.sparse {
		out.bn.Set(alloc(bins*stride, true))
	} else {
		out.bn.Set(alloc((int(hi-lo)+1)*stride, false))
	}
	j := 0
	walk(func(k int32, c uint64) {
		if !out.sparse {
			putCount(out.bn.S()[int(k-lo)*stride:], w, c)
			return
		}
		out.putKey(out.bn.S()[j:], k)
		putCount(out.bn.S()[j+out.keyBytes():], w, c)
		j += stride
	})
	*s = out
}

// keyAtRank returns the bin index holding the positive value at 0-based
// rank (the library's DenseStore.KeyAtRank).
func (s *sketch) keyAtRank(rank float64) int {
	rank = math.Max(rank, 0)
	var n float64
	e := s.entries()
	if !s.sparse {
		for i := range e {
			n += float64(getCount(s.bn.S()[i*int(s.w):], s.w))
			if n > rank {
				return int(s.lo) + i
			}
		}
	} else {
		stride, kb := s.stride(), s.keyBytes()
		for i := range e {
			n += float64(getCount(s.bn.S()[i*stride+kb:], s.w))
			if n > rank {
				return int(s.key(s.bn.S()[i*stride:]))
			}
		}
	}
	if e == 0 {
		return 0
	}
	k, _ := s.entry(e - 1)
	return int(k)
}

// binTotal returns the sum of the bins' counts.
func (s *sketch) binTotal() uint64 {
	var n uint64
	if !s.sparse {
		switch s.w {
		case 0:
			return 0
		case 1:
			for _, c := range s.bn.S() {
				n += uint64(c)
			}
			return n
		}
	}
	for i, e := 0, s.entries(); i < e; i++ {
		_, c := s.entry(i)
		n += c
	}
	return n
}

// bins calls f for every non-empty positive bin, lowest first.
func (s *sketch) bins(f func(index int, count uint64)) {
	for i, n := 0, s.entries(); i < n; i++ {
		if k, c := s.entry(i); c > 0 {
			f(int(k), c)
		}
	}
}
