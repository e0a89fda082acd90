package metrics

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"testing"
)

// randomDist fills d with one of several shapes of data: tiny counts,
// zeros (below the sketch's smallest indexable value), heavy tails,
// constant values, and the benchmarks' log-normal routerPart.
func randomDist(rng *rand.Rand, d *Dist) {
	n := []int{0, 1, 2, 3, 5, 10, 100, 700, 5000}[rng.IntN(9)]
	shape := rng.IntN(5)
	for range n {
		var v float64
		switch shape {
		case 0:
			v = rng.ExpFloat64() * 100
		case 1:
			v = float64(rng.IntN(3)) // connect times: many zeros
		case 2:
			v = math.Exp(rng.NormFloat64() * 4) // very wide
		case 3:
			v = 42
		default:
			v = 85 * (1 + rng.NormFloat64()*0.6*rng.Float64())
		}
		d.Add(v)
	}
}

// viewQuantiles are the quantile sets the checks ask for.
var viewQuantiles = [][]float64{
	{0.5, 0.95, 0.99},
	{0.95},
	{0, 1},
	{0, 0.001, 0.5, 1},
	{0.25, 0.5, 0.75, 0.9999},
}

// sameFloat reports whether a and b are the same float64, bit for bit.
func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// checkViewQuantiles compares v's quantiles with d's, bit for bit.
func checkViewQuantiles(t *testing.T, what string, v *DistView, d *Dist, qs []float64) {
	t.Helper()
	out := make([]float64, len(qs))
	ok := v.Quantiles(qs, out)
	for i, q := range qs {
		want, wok := d.Quantile(q)
		if ok != wok || (ok && !sameFloat(out[i], want)) {
			t.Fatalf("%s: q %v: view %v %v, Dist %v %v (count %d)", what, q, out[i], ok, want, wok, d.Count)
		}
	}
}

// TestViewLatencyAnswersAsDecode reads random buckets both ways: the
// latency view's counts, sum, extremes and quantiles must be the decoded
// Dist's, bit for bit, also once Keep has copied the view.
func TestViewLatencyAnswersAsDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var buf []byte
	for round := range 2000 {
		b := sampleBucket(rng)
		b.rt = new(routerPart)
		randomDist(rng, &b.rt.service)
		randomDist(rng, &b.rt.connect)
		b.Requests = b.rt.service.Count + int64(rng.IntN(3))
		enc := b.Encode(nil)
		dec, err := DecodeParts(enc, PartService|PartConnect)
		if err != nil {
			t.Fatal(err)
		}
		var v LatencyView
		if err := ViewLatency(enc, &v); err != nil {
			t.Fatal(err)
		}
		if v.Requests != dec.Requests || v.Service.Count != dec.Service().Count || v.Connect.Count != dec.Connect().Count {
			t.Fatalf("round %d: counts differ", round)
		}
		// Keep must leave a view that answers the same once the bytes
		// it was read from are gone.
		buf = v.Keep(buf[:0])
		clear(enc)
		for _, qs := range viewQuantiles {
			checkViewQuantiles(t, "service", &v.Service, dec.Service(), qs)
			checkViewQuantiles(t, "connect", &v.Connect, dec.Connect(), qs)
		}

		// The view's sum and extremes are the decoded Dist's.
		if ds := dec.Service(); !sameFloat(v.Service.Sum, ds.Sum) || (v.Service.Count > 0 &&
			(!sameFloat(v.Service.Min, ds.Min) || !sameFloat(v.Service.Max, ds.Max))) {
			t.Fatalf("round %d: view %+v, Dist %+v", round, v.Service, ds)
		}
	}
}

// TestMergedQuantilesAnswerAsMergedDists merges one to four random
// views, by MergedQuantiles and into a DistSum (AddQuantiles, which also
// answers each view's own quantiles), and compares their quantiles with
// those of the decoded Dists, merged, bit for bit.
func TestMergedQuantilesAnswerAsMergedDists(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	qsets := append(viewQuantiles, []float64{0.5}, []float64{0.99})
	var sum DistSum
	var all Dist
	for round := range 3000 {
		k := 1 + rng.IntN(4)
		var views []*DistView
		var merged Dist
		for range k {
			var d Dist
			randomDist(rng, &d)
			b := &Bucket{rt: &routerPart{service: d}, Requests: d.Count}
			var v LatencyView
			if err := ViewLatency(b.Encode(nil), &v); err != nil {
				t.Fatal(err)
			}
			views = append(views, &v.Service)
			merged.Merge(&d)
			all.Merge(&d)
			// Adding a view and reading its own quantiles in one pass.
			qs := viewQuantiles[rng.IntN(len(viewQuantiles))]
			out := make([]float64, len(qs))
			ok := sum.AddQuantiles(&v.Service, qs, out)
			for i, q := range qs {
				want, wok := d.Quantile(q)
				if ok != wok || (ok && !sameFloat(out[i], want)) {
					t.Fatalf("round %d: AddQuantiles q %v: %v %v, Dist %v %v", round, q, out[i], ok, want, wok)
				}
			}
		}
		for _, qs := range qsets {
			out := make([]float64, len(qs))
			ok := MergedQuantiles(views, qs, out)
			for i, q := range qs {
				want, wok := merged.Quantile(q)
				if ok != wok || (ok && !sameFloat(out[i], want)) {
					t.Fatalf("round %d, %d views: q %v: merged views %v %v, merged Dists %v %v", round, k, q, out[i], ok, want, wok)
				}
			}
		}
		if sum.Count != all.Count || !sameFloat(sum.Min, all.Min) || !sameFloat(sum.Max, all.Max) {
			t.Fatalf("round %d: DistSum %d %v %v, Dist %d %v %v", round, sum.Count, sum.Min, sum.Max, all.Count, all.Min, all.Max)
		}
		for _, q := range []float64{-1, 0, 0.001, 0.5, 0.95, 0.99, 1, 2} {
			got, gok := sum.Quantile(q)
			want, wok := all.Quantile(q)
			if gok != wok || !sameFloat(got, want) {
				t.Fatalf("round %d: DistSum q %v: %v %v, Dist %v %v", round, q, got, gok, want, wok)
			}
		}
		if round%100 == 99 {
			sum, all = DistSum{}, Dist{}
		}
	}
	if MergedQuantiles(nil, []float64{0.5}, make([]float64, 1)) {
		t.Fatal("no views answered a quantile")
	}
}

// TestViewLatencyRejectsDamage checks the view verifies the checksum.
func TestViewLatencyRejectsDamage(t *testing.T) {
	enc := sampleBucket(rand.New(rand.NewPCG(13, 14))).Encode(nil)
	var v LatencyView
	for i := 0; i < len(enc); i++ {
		bad := append([]byte(nil), enc...)
		bad[i] ^= 0x10
		if err := ViewLatency(bad, &v); err == nil {
			t.Fatalf("flipping a bit of byte %d went unnoticed", i)
		}
	}
	if err := ViewLatency(enc[:3], &v); err == nil {
		t.Fatal("a 3-byte bucket was read")
	}
}

// FuzzViewLatency feeds arbitrary bytes behind a valid checksum to
// ViewLatency and to DecodeParts of the latency parts: what DecodeParts
// accepts the view accepts and answers the same; what the view rejects
// DecodeParts rejects. (The view may accept a bucket whose parts after
// the latency are malformed: it does not scan them.)
func FuzzViewLatency(f *testing.F) {
	enc := sampleBucket(rand.New(rand.NewPCG(9, 10))).Encode(nil)
	f.Add(enc[:len(enc)-4])
	f.Add([]byte{2, 0, 0, 0})
	f.Add([]byte{2, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		p := binary.LittleEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, castagnoli))
		var v LatencyView
		verr := ViewLatency(p, &v)
		b, derr := DecodeParts(p, PartService|PartConnect)
		if verr != nil && derr == nil {
			t.Fatalf("view: %v where DecodeParts succeeds", verr)
		}
		if derr != nil {
			return
		}
		for _, qs := range viewQuantiles {
			checkViewQuantiles(t, "service", &v.Service, b.Service(), qs)
			checkViewQuantiles(t, "connect", &v.Connect, b.Connect(), qs)
		}
		var want Dist
		want.Merge(b.Service())
		want.Merge(b.Connect())
		var sum DistSum
		sum.Add(&v.Service)
		sum.Add(&v.Connect)
		qs := []float64{0, 0.5, 0.99, 1}
		out := make([]float64, len(qs))
		mok := MergedQuantiles([]*DistView{&v.Service, &v.Connect}, qs, out)
		for i, q := range qs {
			y, yok := want.Quantile(q)
			if z, zok := sum.Quantile(q); zok != yok || !sameFloat(z, y) {
				t.Fatalf("DistSum q %v: %v, Dists %v", q, z, y)
			}
			if mok != yok || (mok && !sameFloat(out[i], y)) {
				t.Fatalf("MergedQuantiles q %v: %v, Dists %v", q, out[i], y)
			}
		}
	})
}
