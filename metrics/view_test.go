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
// constant values, and the benchmarks' log-normal latencies.
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
// latency view's quantiles must be Dist.Quantile's, bit for bit, and
// merging views must build the Dist that merging decoded buckets builds.
func TestViewLatencyAnswersAsDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var merged, mergedViews Dist
	var buf []byte
	for round := range 2000 {
		b := sampleBucket(rng)
		b.Service, b.Connect = Dist{}, Dist{}
		randomDist(rng, &b.Service)
		randomDist(rng, &b.Connect)
		b.Requests = b.Service.Count + int64(rng.IntN(3))
		enc := b.Encode(nil)
		dec, err := DecodeParts(enc, PartService|PartConnect)
		if err != nil {
			t.Fatal(err)
		}
		var v LatencyView
		if err := ViewLatency(enc, &v); err != nil {
			t.Fatal(err)
		}
		if v.Requests != dec.Requests || v.Service.Count != dec.Service.Count || v.Connect.Count != dec.Connect.Count {
			t.Fatalf("round %d: counts differ", round)
		}
		// Keep must leave a view that answers the same once the bytes
		// it was read from are gone.
		buf = v.Keep(buf[:0])
		clear(enc)
		for _, qs := range viewQuantiles {
			checkViewQuantiles(t, "service", &v.Service, &dec.Service, qs)
			checkViewQuantiles(t, "connect", &v.Connect, &dec.Connect, qs)
		}

		if round%50 == 0 {
			merged, mergedViews = Dist{}, Dist{}
			mergedViews.Reset()
		}
		merged.Merge(&dec.Service)
		mergedViews.MergeView(&v.Service)
		if merged.Count != mergedViews.Count || !sameFloat(merged.Sum, mergedViews.Sum) ||
			!sameFloat(merged.Min, mergedViews.Min) || !sameFloat(merged.Max, mergedViews.Max) {
			t.Fatalf("round %d: merged views %+v, merged Dists %+v", round, mergedViews, merged)
		}
		for _, q := range []float64{0, 0.01, 0.5, 0.95, 0.99, 0.999, 1} {
			a, aok := merged.Quantile(q)
			b, bok := mergedViews.Quantile(q)
			if aok != bok || !sameFloat(a, b) {
				t.Fatalf("round %d: merged q %v: views %v, Dists %v", round, q, b, a)
			}
		}
		if round%50 == 49 {
			// Reset keeps the memory, and the next merges start afresh.
			mergedViews.Reset()
			if mergedViews.Count != 0 {
				t.Fatal("Reset left a count")
			}
			if _, ok := mergedViews.Quantile(0.5); ok {
				t.Fatal("Reset left a quantile")
			}
		}
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
			checkViewQuantiles(t, "service", &v.Service, &b.Service, qs)
			checkViewQuantiles(t, "connect", &v.Connect, &b.Connect, qs)
		}
		var d Dist
		d.MergeView(&v.Service)
		d.MergeView(&v.Connect)
		var want Dist
		want.Merge(&b.Service)
		want.Merge(&b.Connect)
		for _, q := range []float64{0, 0.5, 0.99, 1} {
			x, xok := d.Quantile(q)
			y, yok := want.Quantile(q)
			if xok != yok || !sameFloat(x, y) {
				t.Fatalf("merged q %v: views %v, Dists %v", q, x, y)
			}
		}
	})
}
