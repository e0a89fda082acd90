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
	b := r.b
	total := v.zero
	index := 0
	for i := 0; i < v.nbins; i++ {
		delta, n := nextVarint(b)
		if n <= 0 {
			r.fail()
			return fmt.Errorf("decode sketch: %w", r.err)
		}
		b = b[n:]
		count, n := nextUvarint(b)
		if n <= 0 {
			r.fail()
			return fmt.Errorf("decode sketch: %w", r.err)
		}
		b = b[n:]
		if (i > 0 && delta <= 0) || delta > int64(maxSketchIndex-minSketchIndex) || delta < int64(minSketchIndex-maxSketchIndex) {
			return fmt.Errorf("decode sketch: sketch bin %d: bad index step %d", i, delta)
		}
		index += int(delta)
		if index < minSketchIndex || index > maxSketchIndex || count == 0 {
			return fmt.Errorf("decode sketch: sketch bin %d: index %d or count %d out of range", i, index, count)
		}
		total += count
		if total > uint64(v.Count) || total < count {
			return fmt.Errorf("decode sketch: sketch holds more than the %d observations counted", v.Count)
		}
		if i == 0 {
			v.first = index
		}
		v.last = index
	}
	if total != uint64(v.Count) {
		return fmt.Errorf("decode sketch: sketch holds %d observations, want %d", total, v.Count)
	}
	r.b = b
	v.enc = start[:len(start)-len(b)]
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

// maxViewQuantiles is how many quantiles one Quantiles call answers.
const maxViewQuantiles = 4

// Quantiles sets out[i] to the qs[i]-quantile of the distribution, the
// value Dist.Quantile gives for the decoded Dist, bit for bit, reading
// the encoded bins once for all of them. It returns false, leaving out
// alone, when the distribution is empty. qs must be ascending, within
// [0, 1], and at most 4; out as long as qs.
func (v *DistView) Quantiles(qs, out []float64) bool {
	if v.Count == 0 {
		return false
	}
	if len(qs) > maxViewQuantiles || len(out) < len(qs) {
		panic("metrics: DistView.Quantiles: bad arguments")
	}
	// Each quantile reads the values at ranks k and k+1 (Dist.Quantile);
	// those inside the sketch's bins are found in one pass.
	n := float64(v.Count) // the sketch's n: read checked it is Count
	zc := float64(v.zero)
	var (
		ks    [maxViewQuantiles]float64
		fs    [maxViewQuantiles]float64
		vals  [2 * maxViewQuantiles]float64
		ranks [2 * maxViewQuantiles]float64 // sketch ranks to find, ascending
		slots [2 * maxViewQuantiles]int     // where each one's value goes
		keys  [2 * maxViewQuantiles]int
	)
	want := 0
	need := func(k float64, slot int) {
		switch {
		case k <= 0:
			vals[slot] = v.Min
		case k >= n-1:
			vals[slot] = v.Max
		case k < zc:
			vals[slot] = 0
		default:
			// Insert in order (a handful of ranks).
			rank := k - zc
			i := want
			for i > 0 && ranks[i-1] > rank {
				ranks[i], slots[i] = ranks[i-1], slots[i-1]
				i--
			}
			ranks[i], slots[i] = rank, slot
			want++
		}
	}
	for i, q := range qs {
		r := q * (n - 1)
		ks[i] = math.Floor(r)
		fs[i] = r - ks[i]
		need(ks[i], 2*i)
		if fs[i] > 0 {
			need(ks[i]+1, 2*i+1)
		}
	}
	if want > 0 {
		found := 0
		var cum float64
		index := 0
		b := v.enc
		for bin := 0; bin < v.nbins && found < want; bin++ {
			// read checked these varints; they are read here without
			// the decoder's bookkeeping.
			d, m := nextVarint(b)
			b = b[m:]
			c, m := nextUvarint(b)
			b = b[m:]
			index += int(d)
			cum += float64(c)
			for found < want && cum > ranks[found] {
				keys[found] = index
				found++
			}
		}
		for ; found < want; found++ {
			keys[found] = v.last // sketch.keyAtRank's fallback
		}
		for i := range want {
			vals[slots[i]] = indexMapping.Value(keys[i])
		}
	}
	for i := range qs {
		x := vals[2*i]
		if fs[i] > 0 {
			x += (vals[2*i+1] - x) * fs[i]
		}
		out[i] = math.Min(math.Max(x, v.Min), v.Max)
	}
	return true
}

// MergeView adds the distribution v holds to d, as d.Merge of v's decoded
// Dist would.
func (d *Dist) MergeView(v *DistView) {
	if v.Count == 0 {
		return
	}
	if d.Count == 0 || v.Min < d.Min {
		d.Min = v.Min
	}
	if d.Count == 0 || v.Max > d.Max {
		d.Max = v.Max
	}
	d.Count += v.Count
	d.Sum += v.Sum
	s := &d.sketch
	s.zero += v.zero
	s.n += uint64(v.Count)
	if v.nbins == 0 {
		return
	}
	lo, hi := int32(v.first), int32(v.last)
	if !s.coverDense(lo, hi, v.nbins) {
		// Sparse: the bins go in one by one.
		index := 0
		b := v.enc
		for range v.nbins {
			delta, m := nextVarint(b)
			b = b[m:]
			c, m := nextUvarint(b)
			b = b[m:]
			index += int(delta)
			s.addBin(int32(index), c)
		}
		return
	}
	index := -int(s.lo)
	b := v.enc
	for range v.nbins {
		delta, m := nextVarint(b)
		b = b[m:]
		c, m := nextUvarint(b)
		b = b[m:]
		index += int(delta)
		s.addAt(index, c)
	}
}

// Reset empties d, keeping the memory of its sketch for reuse.
func (d *Dist) Reset() {
	*d = Dist{sketch: sketch{b: d.sketch.b[:0]}}
}
