package metrics

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// TestSketchMatchesLibrary checks the compact sketch against the
// library's DDSketch with the same mapping: the same zero count, the same
// bins and the same key at every rank, after adds and after merges of
// sketches with disjoint and overlapping ranges.
func TestSketchMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	gens := []func() float64{
		func() float64 { return math.Exp(rng.NormFloat64()*0.6) * 85 },
		func() float64 { return float64(rng.IntN(3)) },
		func() float64 { return rng.ExpFloat64() * 1e6 },
		func() float64 { return 1e-12 * rng.Float64() },
		func() float64 { return 30000 },
	}
	for round := range 50 {
		var mine zsketch
		lib := ddsketch.NewDDSketch(indexMapping, store.NewDenseStore(), store.NewDenseStore())
		for part := range 3 {
			var m zsketch
			l := ddsketch.NewDDSketch(indexMapping, store.NewDenseStore(), store.NewDenseStore())
			g := gens[(round+part)%len(gens)]
			for range rng.IntN(2000) {
				v := g()
				m.add(v)
				if err := l.Add(v); err != nil {
					t.Fatal(err)
				}
			}
			mine.merge(&m)
			if err := lib.MergeWith(l); err != nil {
				t.Fatal(err)
			}
		}
		if float64(mine.zero) != lib.GetZeroCount() || float64(mine.total()) != lib.GetCount() {
			t.Fatalf("round %d: zero %d n %d, library %v %v", round, mine.zero, mine.total(), lib.GetZeroCount(), lib.GetCount())
		}
		want := map[int]float64{}
		lib.GetPositiveValueStore().ForEach(func(i int, c float64) bool { want[i] = c; return false })
		got := map[int]float64{}
		mine.bins(func(i int, c uint64) { got[i] = float64(c) })
		if len(got) != len(want) {
			t.Fatalf("round %d: %d bins, library %d", round, len(got), len(want))
		}
		for i, c := range want {
			if got[i] != c {
				t.Fatalf("round %d: bin %d holds %v, library %v", round, i, got[i], c)
			}
		}
		pos := float64(mine.total() - mine.zero)
		for _, r := range []float64{0, 1, pos / 2, pos * 0.99, pos - 1} {
			if pos > 0 && mine.keyAtRank(r) != lib.GetPositiveValueStore().KeyAtRank(r) {
				t.Fatalf("round %d: key at rank %v = %d, library %d", round, r, mine.keyAtRank(r), lib.GetPositiveValueStore().KeyAtRank(r))
			}
		}
	}
}

// TestSketchAddAllocatesLittle: once a sketch covers its range, adding
// allocates nothing.
func TestSketchAddAllocatesLittle(t *testing.T) {
	var s zsketch
	for i := range 1000 {
		s.add(float64(i%500) + 1)
	}
	if a := testing.AllocsPerRun(100, func() { s.add(250) }); a != 0 {
		t.Fatalf("%v allocations per add", a)
	}
}

// TestDecodeKeepsNoReference: the store decodes straight from the
// driver's row buffer (sql.RawBytes), so a decoded bucket must not point
// into its input.
func TestDecodeKeepsNoReference(t *testing.T) {
	enc := sampleBucket(rand.New(rand.NewPCG(9, 10))).Encode(nil)
	in := append([]byte(nil), enc...)
	b, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 0xff
	}
	if got := b.Encode(nil); string(got) != string(enc) {
		t.Fatal("the decoded bucket changed when its input was overwritten")
	}
}

// denseRef is the sketch as drainpipe kept it before the compact layouts:
// an 8-byte count for every bin from the lowest to the highest index
// used. The tests below check the compact sketch against it.
type denseRef struct {
	zero, n uint64
	lo      int
	counts  []uint64
}

func (d *denseRef) addBin(k int, c uint64) {
	if len(d.counts) == 0 {
		d.lo, d.counts = k, []uint64{0}
	}
	if k < d.lo {
		d.counts = append(make([]uint64, d.lo-k), d.counts...)
		d.lo = k
	}
	if top := d.lo + len(d.counts) - 1; k > top {
		d.counts = append(d.counts, make([]uint64, k-top)...)
	}
	d.counts[k-d.lo] += c
	d.n += c
}

func (d *denseRef) add(v float64) {
	switch {
	case !(v > minIndexable):
		d.zero++
		d.n++
	case v <= maxIndexable:
		d.addBin(indexMapping.Index(v), 1)
	}
}

func (d *denseRef) merge(o *denseRef) {
	d.zero += o.zero
	d.n += o.zero
	for i, c := range o.counts {
		if c > 0 {
			d.addBin(o.lo+i, c)
		}
	}
}

// encode writes the reference the way encodeSketch did before.
func (d *denseRef) encode(e *encoder) {
	e.uvarint(d.zero)
	bins := 0
	for _, c := range d.counts {
		if c > 0 {
			bins++
		}
	}
	e.uvarint(uint64(bins))
	prev := 0
	for i, c := range d.counts {
		if c > 0 {
			e.varint(int64(d.lo + i - prev))
			e.uvarint(c)
			prev = d.lo + i
		}
	}
}

// checkSketch compares s with the reference: the same zero count and
// total, the same bins, the same key at every rank (at most 64 ranks
// checked, spread over the range, and the first and last) and the same encoding. It also checks
// the compact sketch's own invariants.
func checkSketch(t *testing.T, what string, s *zsketch, ref *denseRef) {
	t.Helper()
	if s.zero != ref.zero || s.total() != ref.n {
		t.Fatalf("%s: zero %d n %d, reference %d %d", what, s.zero, s.total(), ref.zero, ref.n)
	}
	var mine, want encoder
	encodeSketch(&mine, &s.sketch, s.total())
	ref.encode(&want)
	if !bytes.Equal(mine.b, want.b) {
		t.Fatalf("%s: encoding differs from the reference", what)
	}
	pos := s.total() - s.zero
	step := max(1, pos/64)
	var ranks []uint64
	for r := uint64(0); r < pos+2; r += step {
		ranks = append(ranks, r)
	}
	ranks = append(ranks, pos-1)
	slices.Sort(ranks)
	// The reference's keys at the ascending ranks, in one walk.
	i, cum := 0, uint64(0)
	for _, r := range ranks {
		for i < len(ref.counts) && cum+ref.counts[i] <= r {
			cum += ref.counts[i]
			i++
		}
		want := ref.lo + min(i, len(ref.counts)-1)
		if got := s.keyAtRank(float64(r)); got != want && len(ref.counts) > 0 {
			t.Fatalf("%s: key at rank %d = %d, reference %d", what, r, got, want)
		}
	}
	if s.w != 0 {
		if s.w != 1 && s.w != 2 && s.w != 4 && s.w != 8 {
			t.Fatalf("%s: width %d", what, s.w)
		}
		if len(s.bn.S())%s.stride() != 0 {
			t.Fatalf("%s: %d bytes is not a whole number of %d-byte bins", what, len(s.bn.S()), s.stride())
		}
		prev := int32(math.MinInt32)
		for i := range s.entries() {
			k, _ := s.entry(i)
			if s.sparse && k <= prev {
				t.Fatalf("%s: sparse bins out of order", what)
			}
			prev = k
		}
		if lo, hi, _ := s.span(); s.sparse && s.kb != keyBytesFor(int64(hi)-int64(lo)+1) {
			t.Fatalf("%s: %d-byte keys for bins %d..%d", what, s.kb, lo, hi)
		}
	}
}

// sketchPair is a compact sketch and its reference, built the same way.
type sketchPair struct {
	s   zsketch
	ref denseRef
}

// TestSketchMatchesDense drives compact sketches and the old dense
// representation through the same random adds, merges and encode/decode
// round trips, and checks after every step that the bins, the ranks and
// the encoding are the same, whichever layout and count width the
// compact sketch is in.
func TestSketchMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	gens := []func() float64{
		func() float64 { return math.Exp(rng.NormFloat64()*0.6) * 85 }, // dense routerPart
		func() float64 { return math.Exp(rng.NormFloat64()*3) * 50 },   // long tails, sparse
		func() float64 { return float64(rng.IntN(4)) },                 // connect times
		func() float64 { return rng.ExpFloat64() * 1e6 },               // wide
		func() float64 { return 1e-300 * rng.Float64() },               // zeros and the smallest bins
		func() float64 { return 1e300 * rng.Float64() },                // the largest bins: 4-byte keys beside the smallest
		func() float64 { return 30000 },                                // one bin
		func() float64 { return -rng.Float64() },                       // ignored by Dist; zeros here
		func() float64 { return math.Exp(rng.NormFloat64()*0.7) * 20 }, // a custom measure: 1- and 2-byte keys
	}
	tinyMerges := 0 // merges of a sparse sketch of 1-byte keys, into or from
	pool := make([]*sketchPair, 8)
	for i := range pool {
		pool[i] = new(sketchPair)
	}
	for step := range 3000 {
		p := pool[rng.IntN(len(pool))]
		switch op := rng.IntN(10); {
		case op < 6:
			g := gens[rng.IntN(len(gens))]
			for range rng.IntN(300) + 1 {
				v := g()
				if v < 0 {
					continue
				}
				p.s.add(v)
				p.ref.add(v)
			}
		case op < 7:
			o := pool[rng.IntN(len(pool))]
			if o == p {
				continue
			}
			if o.s.sparse && o.s.kb == tinyKey || p.s.sparse && p.s.kb == tinyKey {
				tinyMerges++
			}
			p.s.merge(&o.s)
			p.ref.merge(&o.ref)
			checkSketch(t, fmt.Sprintf("step %d: merge source", step), &o.s, &o.ref)
		case op < 9:
			p.s = roundTrip(t, &p.s)
		default:
			*p = sketchPair{}
		}
		checkSketch(t, fmt.Sprintf("step %d", step), &p.s, &p.ref)
	}
	if tinyMerges < 10 {
		t.Fatalf("only %d merges of sketches with 1-byte keys", tinyMerges)
	}
	// The whole index range, with routerPart merged in either way round.
	var wide, lat sketchPair
	for _, v := range []float64{1e-300, 1e300, 5, 2e-300, 3e299} {
		wide.s.add(v)
		wide.ref.add(v)
	}
	for range 500 {
		v := gens[0]()
		lat.s.add(v)
		lat.ref.add(v)
	}
	clone := func(p sketchPair) sketchPair {
		p.s.bn.Set(bytes.Clone(p.s.bn.S()))
		p.ref.counts = slices.Clone(p.ref.counts)
		return p
	}
	a, b := clone(wide), clone(lat)
	a.s.merge(&lat.s)
	a.ref.merge(&lat.ref)
	checkSketch(t, "wide + routerPart", &a.s, &a.ref)
	b.s.merge(&wide.s)
	b.ref.merge(&wide.ref)
	checkSketch(t, "routerPart + wide", &b.s, &b.ref)
	if !a.s.sparse || !b.s.sparse {
		t.Error("a sketch over the whole index range is not sparse")
	}
}

// TestSketchCountsDoNotWrap: a count that outgrows its width (255,
// 65,535, 2^32−1) widens every count instead of wrapping, in both
// layouts, whether it grows by adds, by merges or by decoding.
func TestSketchCountsDoNotWrap(t *testing.T) {
	for _, start := range []uint64{math.MaxUint8 - 1, math.MaxUint16 - 1, math.MaxUint32 - 1} {
		for _, sparse := range []bool{false, true} {
			add := func(s *zsketch, k int32, c uint64) { s.addBin(k, c) }
			build := func(s *zsketch, ref *denseRef) {
				add(s, 100, 7)
				ref.addBin(100, 7)
				if sparse {
					add(s, 5000, 1) // far away: the sketch stays sparse
					ref.addBin(5000, 1)
				} else {
					for k := 101; k < 120; k++ {
						add(s, int32(k), 1)
						ref.addBin(k, 1)
					}
				}
				if s.sparse != sparse {
					t.Fatalf("sparse = %v, want %v", s.sparse, sparse)
				}
			}
			var s zsketch
			var ref denseRef
			build(&s, &ref)
			add(&s, 110, start)
			ref.addBin(110, start)
			what := fmt.Sprintf("count %d, sparse %v", start, sparse)
			checkSketch(t, what, &s, &ref)
			for range 3 { // across the width's limit one at a time
				add(&s, 110, 1)
				ref.addBin(110, 1)
				checkSketch(t, what+" +1", &s, &ref)
			}
			var o zsketch
			var oref denseRef
			build(&o, &oref)
			add(&o, 110, math.MaxUint32)
			oref.addBin(110, math.MaxUint32)
			s.merge(&o)
			ref.merge(&oref)
			checkSketch(t, what+" merged", &s, &ref)
			if s.w != 8 {
				t.Fatalf("%s: width %d after a count above 2^32", what, s.w)
			}
			got := roundTrip(t, &s)
			checkSketch(t, what+" decoded", &got, &ref)
		}
	}
}

// TestSketchLayoutIsSmall checks that the layouts do what they are for:
// a minute of routerPart is dense with 1-byte counts, a handful of spread
// values is sparse, and neither takes much more than its bins.
func TestSketchLayoutIsSmall(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	var lat, few zsketch
	for range 1000 {
		lat.add(math.Exp(rng.NormFloat64()*0.5) * 80)
	}
	for _, v := range []float64{1, 2, 50, 3000, 1e6} {
		few.add(v)
	}
	if lat.sparse || lat.w != 1 {
		t.Errorf("routerPart: sparse %v width %d, want dense 1-byte counts", lat.sparse, lat.w)
	}
	lo, hi, _ := lat.span()
	if n := int(hi-lo) + 1; cap(lat.bn.S()) > n+n/4+16 {
		t.Errorf("routerPart: %d bytes reserved for %d bins", cap(lat.bn.S()), n)
	}
	if !few.sparse || few.kb != narrowKey || len(few.bn.S()) != 5*(narrowKey+1) {
		t.Errorf("five values: sparse %v, %d bytes", few.sparse, len(few.bn.S()))
	}
	// Values within a factor of about 150 (256 bins): 1-byte keys.
	var near zsketch
	for _, v := range []float64{10, 12, 15, 20, 30, 1000} {
		near.add(v)
	}
	if !near.sparse || near.kb != tinyKey || len(near.bn.S()) != 6*(tinyKey+1) {
		t.Errorf("six near values: sparse %v, %d-byte keys, %d bytes", near.sparse, near.kb, len(near.bn.S()))
	}
}

// zsketch is a sketch with its zero count, which a Dist keeps as part of
// its Count.
type zsketch struct {
	sketch
	zero uint64
}

func (z *zsketch) add(v float64) {
	if !(v > minIndexable) {
		z.zero++
	}
	z.sketch.add(v)
}

func (z *zsketch) merge(o *zsketch) {
	z.zero += o.zero
	z.sketch.merge(&o.sketch)
}

// total returns the observations z holds: its zero count and every bin's
// count (a Dist keeps this as its Count).
func (z *zsketch) total() uint64 {
	n := z.zero
	z.bins(func(_ int, c uint64) { n += c })
	return n
}

// roundTrip encodes and decodes z.
func roundTrip(t *testing.T, z *zsketch) zsketch {
	t.Helper()
	var e encoder
	encodeSketch(&e, &z.sketch, z.total())
	var got zsketch
	r := decoder{b: e.b}
	if err := decodeSketch(&r, int64(z.total()), &got.sketch); err != nil {
		t.Fatalf("decode: %v", err)
	}
	got.zero = z.total() - got.binTotal()
	return got
}

// TestMergeNarrowIntoDense merges a sparse sketch of 1- or 2-byte keys
// and 1-byte counts (what the fold makes of a few values) into dense
// runs of every count width, with counts that outgrow the width at the
// first, a middle and the last entry: every bin must hold the sum.
func TestMergeNarrowIntoDense(t *testing.T) {
	bins := func(s *sketch) map[int32]uint64 {
		m := map[int32]uint64{}
		for i, n := 0, s.entries(); i < n; i++ {
			if k, c := s.entry(i); c > 0 {
				m[k] = c
			}
		}
		return m
	}
	for _, step := range []int32{20, 60} { // keys over 121 and 361 bins: 1- and 2-byte keys
		for _, top := range []uint64{200, math.MaxUint8 - 3, math.MaxUint16 - 3, math.MaxUint32 - 3, math.MaxUint64 / 2} {
			for _, at := range []int{0, 3, 6} { // which source entry overflows
				var dst, src sketch
				for k := int32(100); k <= 120+6*step; k++ {
					dst.addBin(k, 1)
				}
				for j := range int32(7) {
					k := 101 + j*step
					src.addBin(k, uint64(10+j))
					if int(j) == at {
						dst.addBin(k, top)
					}
				}
				wantKB := uint8(tinyKey)
				if step > 40 {
					wantKB = narrowKey
				}
				if dst.sparse || !src.sparse || src.kb != wantKB || src.w != 1 {
					t.Fatalf("layouts: dst sparse %v, src sparse %v keys %d w %d", dst.sparse, src.sparse, src.kb, src.w)
				}
				want := bins(&dst)
				for k, c := range bins(&src) {
					want[k] += c
				}
				w := dst.w
				dst.merge(&src)
				if got := bins(&dst); !maps.Equal(got, want) {
					t.Fatalf("top %d at %d (width %d): %v, want %v", top, at, w, got, want)
				}
			}
		}
	}
}

// TestSketchSearchMatchesScan checks search on sparse sketches of every
// key size against a scan of their entries, for indexes within, below
// and beyond what their keys cover.
func TestSketchSearchMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	kinds := map[uint8]int{}
	for round := range 400 {
		var s sketch
		spread := []float64{0.05, 0.7, 3, 60}[round%4]
		for range rng.IntN(40) + 1 {
			s.add(math.Exp(rng.NormFloat64()*spread) * 50)
		}
		if round%5 == 0 { // bins beyond 2-byte keys' span: 4-byte keys
			s.add(1e-300)
			s.add(1e300)
		}
		if !s.sparse {
			continue
		}
		kinds[s.kb]++
		first, last, _ := s.span()
		n := s.entries()
		probe := func(k int32) {
			want := 0
			for want < n {
				if key, _ := s.entry(want); key >= k {
					break
				}
				want++
			}
			found := want < n
			if found {
				key, _ := s.entry(want)
				found = key == k
			}
			if i, ok := s.search(k); i != want || ok != found {
				t.Fatalf("%d-byte keys from %d, bins %d..%d: search(%d) = %d, %v; want %d, %v", s.kb, s.lo, first, last, k, i, ok, want, found)
			}
		}
		for k := first - 3; k <= last+3; k++ {
			probe(k)
		}
		for _, k := range []int32{s.lo - 1, s.lo, s.lo + 255, s.lo + 256, s.lo + 65535, s.lo + 65536, math.MinInt32, math.MaxInt32} {
			probe(k)
		}
	}
	if kinds[tinyKey] == 0 || kinds[narrowKey] == 0 || kinds[wideKey] == 0 {
		t.Fatalf("sparse sketches by key size: %v; want each size", kinds)
	}
}
