package metrics

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// LatencyView is the router latency part of an encoded bucket, read in
// place: the request count and the service and connect distributions,
// whose sketches stay encoded. Reading one allocates nothing, and its
// quantiles are answered from the encoded bins in one pass
// (DistView.Quantiles), so a query over a day of minutes need not build
// 1,440 sketches to read three numbers from each.
type LatencyView struct {
	Requests int64
	Service  DistView
	Connect  DistView
}

// DistView is an encoded Dist read in place: its exact count, sum, min
// and max, and its sketch's bins still encoded. It aliases the bytes it
// was read from.
type DistView struct {
	Count int64
	Sum   float64
	Min   float64
	Max   float64
	zero  uint64 // the sketch's zero count
	nbins int    // non-empty bins
	first int    // index of the lowest bin
	last  int    // index of the highest bin
	enc   []byte // the bins: index steps and counts, as varints
}

// ViewLatency reads the latency part of an encoding made by Bucket.Encode
// into v, as DecodeParts(p, PartService|PartConnect) would decode it, and
// with its checks of the checksum over all of p, the version and the
// sketches' bins (in range, ascending, adding up to their counts). Unlike
// DecodeParts it does not scan the parts that follow (status counts,
// codes, dynos, custom metrics) for their structure. v aliases p.
func ViewLatency(p []byte, v *LatencyView) error {
	if len(p) < 4 {
		return fmt.Errorf("decode bucket: %w", errShort)
	}
	body, sum := p[:len(p)-4], binary.LittleEndian.Uint32(p[len(p)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("decode bucket: %w", ErrChecksum)
	}
	r := decoder{b: body}
	if ver := r.uvarint(); ver != encodingVersion {
		if r.err != nil {
			return fmt.Errorf("decode bucket: %w", r.err)
		}
		return fmt.Errorf("decode bucket: unknown encoding version %d", ver)
	}
	v.Requests = int64(r.uvarint())
	if err := v.Service.read(&r); err != nil {
		return fmt.Errorf("decode bucket service: %w", err)
	}
	if err := v.Connect.read(&r); err != nil {
		return fmt.Errorf("decode bucket connect: %w", err)
	}
	// The parts after these are not scanned: the checksum covers their
	// bytes, and their structure is checked where a bucket is decoded
	// whole (every write merges into the decoded stored bucket) and by the
	// store's start-up check, which steps over every part.
	if r.err != nil {
		return fmt.Errorf("decode bucket: %w", r.err)
	}
	return nil
}

// read reads an encoded Dist, checking its sketch as decodeSketch does.
func (v *DistView) read(r *decoder) error {
	*v = DistView{Count: int64(r.uvarint())}
	if v.Count == 0 {
		return r.err
	}
	v.Sum = r.float()
	v.Min = r.float()
	v.Max = r.float()
	v.zero = r.uvarint()
	v.nbins = r.count()
	if r.err != nil {
		return r.err
	}
	start := r.b
	span, err := r.checkBins(v.nbins, v.zero, v.Count)
	if err != nil {
		return fmt.Errorf("decode sketch: %w", err)
	}
	v.first, v.last = span.first, span.last
	v.enc = start[:len(start)-len(r.b)]
	return nil
}

// nextUvarint is binary.Uvarint with a fast path for one-byte values,
// which most of a sketch's index steps and counts are.
func nextUvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return binary.Uvarint(b)
}

// nextVarint is binary.Varint through nextUvarint.
func nextVarint(b []byte) (int64, int) {
	ux, n := nextUvarint(b)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}

// Keep copies the encoded bins of v's distributions to the end of buf
// and points v at the copy, so that v stays valid once the bytes it was
// read from are reused. It returns the extended buf.
func (v *LatencyView) Keep(buf []byte) []byte {
	for _, d := range []*DistView{&v.Service, &v.Connect} {
		n := len(buf)
		buf = append(buf, d.enc...)
		d.enc = buf[n:len(buf):len(buf)]
	}
	return buf
}

// maxViewQuantiles is how many quantiles one call answers.
const maxViewQuantiles = 4

// Quantiles sets out[i] to the qs[i]-quantile of the distribution, the
// value Dist.Quantile gives for the decoded Dist, bit for bit, reading
// the encoded bins once for all of them. It returns false, leaving out
// alone, when the distribution is empty. qs must be ascending, within
// [0, 1], and at most 4; out as long as qs.
func (v *DistView) Quantiles(qs, out []float64) bool {
	var q quantileQuery
	if !q.start(v.Count, v.zero, v.Min, v.Max, qs, out) {
		return false
	}
	if q.want > 0 {
		viewKeys(v, q.ranks[:q.want], q.keys[:q.want])
	}
	q.finish(qs, out)
	return true
}

// MergedQuantiles is Quantiles of the merge of vs: the values
// Dist.Quantile gives for the decoded Dists merged, bit for bit. The
// bins of all of vs are read together once, in index order, adding the
// counts of equal indexes, as a merged sketch holds them.
func MergedQuantiles(vs []*DistView, qs, out []float64) bool {
	var (
		count    int64
		zero     uint64
		lo, hi   float64
		withBins *DistView
		several  bool
	)
	for _, v := range vs {
		if v.Count == 0 {
			continue
		}
		if count == 0 || v.Min < lo {
			lo = v.Min
		}
		if count == 0 || v.Max > hi {
			hi = v.Max
		}
		count += v.Count
		zero += v.zero
		if v.nbins > 0 {
			several = several || withBins != nil
			withBins = v
		}
	}
	var q quantileQuery
	if !q.start(count, zero, lo, hi, qs, out) {
		return false
	}
	if q.want > 0 {
		if several {
			mergedKeys(vs, q.ranks[:q.want], q.keys[:q.want])
		} else {
			viewKeys(withBins, q.ranks[:q.want], q.keys[:q.want])
		}
	}
	q.finish(qs, out)
	return true
}

// quantileQuery is Dist.Quantile's computation for up to four quantiles
// of a distribution of count values, zero of them below the sketch's
// indexable range, with exact min and max lo and hi. Each quantile reads
// the values at ranks k and k+1 around q·(count−1): start works out
// which sketch ranks that takes (ranks[:want], ascending), the caller
// finds the bin index at each (keys, as sketch.keyAtRank), and finish
// computes the quantiles.
type quantileQuery struct {
	n, zc, lo, hi float64
	ks, fs        [maxViewQuantiles]float64
	vals          [2 * maxViewQuantiles]float64
	ranks         [2 * maxViewQuantiles]float64 // sketch ranks to find, ascending
	slots         [2 * maxViewQuantiles]int     // where each one's value goes
	keys          [2 * maxViewQuantiles]int
	want          int
}

// start prepares q; it returns false when count is 0.
func (q *quantileQuery) start(count int64, zero uint64, lo, hi float64, qs, out []float64) bool {
	if count == 0 {
		return false
	}
	if len(qs) > maxViewQuantiles || len(out) < len(qs) {
		panic("metrics: too many quantiles, or too few outputs")
	}
	q.n, q.zc, q.lo, q.hi = float64(count), float64(zero), lo, hi
	for i, x := range qs {
		r := x * (q.n - 1)
		q.ks[i] = math.Floor(r)
		q.fs[i] = r - q.ks[i]
		q.need(q.ks[i], 2*i)
		if q.fs[i] > 0 {
			q.need(q.ks[i]+1, 2*i+1)
		}
	}
	return true
}

// need records that the value at rank k goes to vals[slot].
func (q *quantileQuery) need(k float64, slot int) {
	switch {
	case k <= 0:
		q.vals[slot] = q.lo
	case k >= q.n-1:
		q.vals[slot] = q.hi
	case k < q.zc:
		q.vals[slot] = 0
	default:
		// Insert in order (a handful of ranks).
		rank := k - q.zc
		i := q.want
		for i > 0 && q.ranks[i-1] > rank {
			q.ranks[i], q.slots[i] = q.ranks[i-1], q.slots[i-1]
			i--
		}
		q.ranks[i], q.slots[i] = rank, slot
		q.want++
	}
}

// finish sets out from the keys found.
func (q *quantileQuery) finish(qs, out []float64) {
	for i := range q.want {
		q.vals[q.slots[i]] = indexMapping.Value(q.keys[i])
	}
	for i := range qs {
		x := q.vals[2*i]
		if q.fs[i] > 0 {
			x += (q.vals[2*i+1] - x) * q.fs[i]
		}
		out[i] = math.Min(math.Max(x, q.lo), q.hi)
	}
}

// viewKeys finds the bin index at each of the ascending sketch ranks in
// v's bins, in one pass: the first bin where the running count exceeds
// the rank, or the last bin (sketch.keyAtRank).
func viewKeys(v *DistView, ranks []float64, keys []int) {
	found := 0
	var cum float64
	index := 0
	b := v.enc
	for bin := 0; bin < v.nbins && found < len(ranks); bin++ {
		// read checked these varints; they are read here without the
		// decoder's bookkeeping.
		d, m := nextVarint(b)
		b = b[m:]
		c, m := nextUvarint(b)
		b = b[m:]
		index += int(d)
		cum += float64(c)
		for found < len(ranks) && cum > ranks[found] {
			keys[found] = index
			found++
		}
	}
	for ; found < len(ranks); found++ {
		keys[found] = v.last
	}
}

// binCursor walks one view's encoded bins.
type binCursor struct {
	b     []byte
	left  int // bins not read yet
	index int // the current bin's index
	count uint64
}

func (c *binCursor) next() bool {
	if c.left == 0 {
		return false
	}
	d, m := nextVarint(c.b)
	c.b = c.b[m:]
	n, m := nextUvarint(c.b)
	c.b = c.b[m:]
	c.index += int(d)
	c.count = n
	c.left--
	return true
}

// mergedKeys is viewKeys over the merge of vs: their bins in index
// order, the counts of one index added up before they are counted.
func mergedKeys(vs []*DistView, ranks []float64, keys []int) {
	var fixed [4]binCursor
	cs := fixed[:0]
	last := 0
	for _, v := range vs {
		if v.nbins == 0 {
			continue
		}
		c := binCursor{b: v.enc, left: v.nbins}
		c.next()
		if len(cs) == 0 || v.last > last {
			last = v.last
		}
		cs = append(cs, c)
	}
	found := 0
	var cum float64
	for len(cs) > 0 && found < len(ranks) {
		index := cs[0].index
		for _, c := range cs[1:] {
			index = min(index, c.index)
		}
		var sum uint64
		for i := 0; i < len(cs); {
			if cs[i].index != index {
				i++
				continue
			}
			sum += cs[i].count
			if cs[i].next() {
				i++
				continue
			}
			cs = append(cs[:i], cs[i+1:]...)
		}
		cum += float64(sum)
		for found < len(ranks) && cum > ranks[found] {
			keys[found] = index
			found++
		}
	}
	for ; found < len(ranks); found++ {
		keys[found] = last
	}
}

// DistSum adds up distributions read in place into plain counts, one per
// bin index from the lowest seen to the highest: a whole range's
// distribution, whose quantiles are those of the decoded Dists merged.
// It trades the compact sketch's memory for adding each bin with one
// addition. Its counts span at most the mapping's 70,889 bin indexes
// (0.6 MB); a range of real latencies spans a few hundred.
type DistSum struct {
	Count  int64
	Min    float64
	Max    float64
	zero   uint64
	lo     int      // the bin index of counts[0]
	counts []uint64 // counts[len-1] > 0 when not empty
}

// Add adds the distribution v holds.
func (s *DistSum) Add(v *DistView) { s.AddQuantiles(v, nil, nil) }

// AddQuantiles adds the distribution v holds and, in the same pass over
// its bins, sets out as v.Quantiles(qs, out) does, returning what it
// returns: a step of one row and the whole range read together.
func (s *DistSum) AddQuantiles(v *DistView, qs, out []float64) bool {
	var q quantileQuery
	if !q.start(v.Count, v.zero, v.Min, v.Max, qs, out) {
		return false
	}
	if s.Count == 0 || v.Min < s.Min {
		s.Min = v.Min
	}
	if s.Count == 0 || v.Max > s.Max {
		s.Max = v.Max
	}
	s.Count += v.Count
	s.zero += v.zero
	if v.nbins > 0 {
		s.cover(v.first, v.last)
		found := 0
		var cum float64
		index := 0
		b := v.enc
		for range v.nbins {
			d, m := nextVarint(b)
			b = b[m:]
			c, m := nextUvarint(b)
			b = b[m:]
			index += int(d)
			s.counts[index-s.lo] += c
			cum += float64(c)
			for found < q.want && cum > q.ranks[found] {
				q.keys[found] = index
				found++
			}
		}
		for ; found < q.want; found++ {
			q.keys[found] = v.last
		}
	}
	q.finish(qs, out)
	return true
}

// cover makes counts span lo..hi, with some room to grow either way.
func (s *DistSum) cover(lo, hi int) {
	if len(s.counts) == 0 {
		s.lo, s.counts = lo, make([]uint64, hi-lo+1, hi-lo+1+16)
		return
	}
	top := s.lo + len(s.counts) - 1
	if lo >= s.lo && hi <= top {
		return
	}
	if lo >= s.lo && hi-s.lo < cap(s.counts) {
		s.counts = s.counts[:hi-s.lo+1]
		return
	}
	newLo, newTop := min(lo, s.lo), max(hi, top)
	if newLo < s.lo {
		newLo -= min(16, newLo-minSketchIndex) // room below
	}
	n := newTop - newLo + 1
	grown := make([]uint64, n, n+16)
	copy(grown[s.lo-newLo:], s.counts)
	s.lo, s.counts = newLo, grown
}

// Quantile returns the q-quantile (0..1), Dist.Quantile's answer for the
// decoded Dists merged, and false when empty.
func (s *DistSum) Quantile(x float64) (float64, bool) {
	if !(x >= 0 && x <= 1) {
		return 0, false
	}
	qs, out := [1]float64{x}, [1]float64{}
	var q quantileQuery
	if !q.start(s.Count, s.zero, s.Min, s.Max, qs[:], out[:]) {
		return 0, false
	}
	found := 0
	var cum float64
	for i := 0; i < len(s.counts) && found < q.want; i++ {
		cum += float64(s.counts[i])
		for found < q.want && cum > q.ranks[found] {
			q.keys[found] = s.lo + i
			found++
		}
	}
	for ; found < q.want; found++ {
		q.keys[found] = s.lo + len(s.counts) - 1
	}
	q.finish(qs[:], out[:])
	return out[0], true
}
