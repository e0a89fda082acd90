package metrics

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/drainpipe/drainpipe/internal/tightslice"
	"github.com/drainpipe/drainpipe/logline"

	"github.com/drainpipe/drainpipe/internal/benchmeter"
)

// exactQuantile is numpy's default (linear) percentile of sorted values.
func exactQuantile(sorted []float64, q float64) float64 {
	r := q * float64(len(sorted)-1)
	k := int(r)
	if k+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[k] + (sorted[k+1]-sorted[k])*(r-float64(k))
}

// TestQuantilesAfterMerge spreads a log-normal latency distribution over
// 10 dynos × 60 minutes, merges all the pieces, and checks that p50, p95,
// p99 and p99.9 are within 1% of the exact values.
func TestQuantilesAfterMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all []float64
	var total Dist
	for piece := 0; piece < 600; piece++ {
		var d Dist
		for i := 0; i < 50; i++ {
			v := math.Exp(4 + 0.8*rng.NormFloat64()) // median ~55 ms
			d.Add(v)
			all = append(all, v)
		}
		total.Merge(&d)
	}
	sort.Float64s(all)
	if total.Count != int64(len(all)) {
		t.Fatalf("count = %d, want %d", total.Count, len(all))
	}
	if total.Min != all[0] || total.Max != all[len(all)-1] {
		t.Fatalf("min/max = %v/%v, want %v/%v", total.Min, total.Max, all[0], all[len(all)-1])
	}
	for _, q := range []float64{0.5, 0.95, 0.99, 0.999} {
		got, ok := total.Quantile(q)
		want := exactQuantile(all, q)
		if !ok || math.Abs(got-want)/want > RelativeAccuracy {
			t.Errorf("p%v = %v, want %v ±1%%", q*100, got, want)
		}
	}
}

func sampleBucket(rng *rand.Rand) *Bucket {
	b := new(Bucket)
	for i := 0; i < 100; i++ {
		b.AddStatus([]int{200, 200, 200, 304, 404, 503}[rng.IntN(6)])
		b.AddService(rng.ExpFloat64() * 100)
		b.AddConnect(float64(rng.IntN(3)))
	}
	b.AddHCode([]byte("H12"))
	b.AddRCode([]byte("R14"))
	b.AddLogLoss([]byte("L10"), 7)
	g := b.Dyno([]byte("web.1"))
	g.Add(logline.GaugeMemRSS, 200<<20, 1)
	g.Add(logline.GaugeLoad1m, 0.5, 1)
	b.AddCustom("db.query", logline.CustomMeasure, 12, 0)
	b.AddCustom("signups", logline.CustomCount, 3, 0)
	b.AddCustom("queue.depth", logline.CustomSample, 9, 5)
	return b
}

func TestEncodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := sampleBucket(rng)
	enc := b.Encode(nil)
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(nil), enc) {
		t.Fatal("re-encoding a decoded bucket changed it")
	}
	if got.Requests != 100 || got.HCodes().Get("H12") != 1 || got.LogLoss().Get("L10") != 7 {
		t.Fatalf("decoded counts wrong: %+v", got)
	}
	p1, _ := b.Service().Quantile(0.95)
	p2, _ := got.Service().Quantile(0.95)
	if p1 != p2 {
		t.Fatalf("p95 changed through encoding: %v vs %v", p1, p2)
	}
	signups, _ := got.Metric("signups")
	depth, _ := got.Metric("queue.depth")
	if signups.Total != 3 || depth.Stat == nil || depth.Stat.Last != 9 {
		t.Fatalf("custom metrics lost: %+v", slices.Collect(got.Custom()))
	}
}

func TestMergeIsOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	parts := []*Bucket{sampleBucket(rng), sampleBucket(rng), sampleBucket(rng)}
	var ab, ba Bucket
	for _, p := range parts {
		ab.Merge(p)
	}
	for i := len(parts) - 1; i >= 0; i-- {
		ba.Merge(parts[i])
	}
	if ab.Requests != 300 || ab.Requests != ba.Requests || ab.Status().Get(200) != ba.Status().Get(200) || ab.Count5xx() != ba.Count5xx() {
		t.Fatalf("merge order changed counts: %d/%d", ab.Requests, ba.Requests)
	}
	q1, _ := ab.Service().Quantile(0.99)
	q2, _ := ba.Service().Quantile(0.99)
	if q1 != q2 {
		t.Fatalf("merge order changed p99: %v vs %v", q1, q2)
	}
}

func TestDecodeRejectsCorruptInput(t *testing.T) {
	enc := sampleBucket(rand.New(rand.NewPCG(7, 8))).Encode(nil)
	for _, n := range []int{0, 1, 5, len(enc) / 2, len(enc) - 1} {
		if _, err := Decode(enc[:n]); err == nil {
			t.Errorf("Decode of %d/%d bytes succeeded", n, len(enc))
		}
	}
	if _, err := Decode(append(enc, 0)); err == nil {
		t.Error("Decode with a trailing byte succeeded")
	}
}

// TestDecodePartsKeepsOnlyItsParts decodes a bucket holding every part
// with each part alone: that part must equal the whole decode's, the
// others must be empty, and Requests is always there.
func TestDecodePartsKeepsOnlyItsParts(t *testing.T) {
	enc := sampleBucket(rand.New(rand.NewPCG(15, 16))).Encode(nil)
	full, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	pick := func(b *Bucket, p Part) *Bucket {
		out := &Bucket{Requests: b.Requests}
		if p&(PartService|PartConnect|PartStatus) != 0 && b.rt != nil {
			out.rt = new(routerPart)
			if p&PartService != 0 {
				out.rt.service = b.rt.service
			}
			if p&PartConnect != 0 {
				out.rt.connect = b.rt.connect
			}
			if p&PartStatus != 0 {
				out.rt.status = b.rt.status
			}
		}
		if p&PartHCodes != 0 {
			out.moreCodes().hCodes = b.HCodes()
		}
		if p&PartRCodes != 0 {
			out.moreCodes().rCodes = b.RCodes()
		}
		if p&PartLogLoss != 0 {
			out.moreCodes().logLoss = b.LogLoss()
		}
		if p&PartDynos != 0 {
			out.Dynos = b.Dynos
		}
		if p&PartCustom != 0 {
			out.more().customs = b.rare.customs
			out.moreCodes().odd = b.odd()
		}
		return out
	}
	for p := Part(1); p <= AllParts; p <<= 1 {
		for _, parts := range []Part{p, AllParts &^ p, 0} {
			got, err := DecodeParts(enc, parts)
			if err != nil {
				t.Fatalf("parts %08b: %v", parts, err)
			}
			want := pick(full, parts)
			if !bytes.Equal(got.Encode(nil), want.Encode(nil)) {
				t.Errorf("parts %08b: decoded %+v, want %+v", parts, got, want)
			}
		}
	}
}

// TestDecodePartsChecksEverything: skipping a part skips neither the
// checksum nor the bounds of the encoding.
func TestDecodePartsChecksEverything(t *testing.T) {
	enc := sampleBucket(rand.New(rand.NewPCG(17, 18))).Encode(nil)
	for i := 0; i < len(enc); i += 5 {
		bad := append([]byte(nil), enc...)
		bad[i] ^= 0x04
		if _, err := DecodeParts(bad, 0); err == nil {
			t.Fatalf("flipping a bit of byte %d went unnoticed with no part decoded", i)
		}
	}
	body := enc[:len(enc)-4]
	for _, n := range []int{1, len(body) / 3, len(body) / 2, len(body) - 1} {
		short := binary.LittleEndian.AppendUint32(append([]byte(nil), body[:n]...), crc32.Checksum(body[:n], castagnoli))
		if _, err := DecodeParts(short, 0); err == nil {
			t.Errorf("DecodeParts of a body cut to %d/%d bytes succeeded", n, len(body))
		}
	}
}

// TestQuantilesOfSmallDistributions checks the interpolation on the
// cases where snapping to one rank is far off: two values, and ten.
func TestQuantilesOfSmallDistributions(t *testing.T) {
	for _, vals := range [][]float64{{0, 30000}, {10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, {5}, {0, 0, 0, 7}} {
		var d Dist
		for _, v := range vals {
			d.Add(v)
		}
		for _, q := range []float64{0, 0.5, 0.95, 0.99, 1} {
			got, ok := d.Quantile(q)
			want := exactQuantile(vals, q)
			if !ok || math.Abs(got-want) > RelativeAccuracy*want+1e-9 {
				t.Errorf("%v: q%v = %v, want %v ±1%%", vals, q, got, want)
			}
		}
	}
}

func TestDecodeDetectsBitFlips(t *testing.T) {
	enc := sampleBucket(rand.New(rand.NewPCG(13, 14))).Encode(nil)
	for i := 0; i < len(enc); i += 7 {
		bad := append([]byte(nil), enc...)
		bad[i] ^= 0x10
		if _, err := Decode(bad); err == nil {
			t.Fatalf("flipping a bit of byte %d went unnoticed", i)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to Decode behind a valid checksum, so
// that the decoder itself (not only the checksum) meets corrupt input.
func FuzzDecode(f *testing.F) {
	enc := sampleBucket(rand.New(rand.NewPCG(9, 10))).Encode(nil)
	f.Add(enc[:len(enc)-4])
	f.Add([]byte{2, 0, 0, 0})
	f.Add([]byte("\x010000000000000000000000000001\x050000000000000\xdc\xdc\xdc\xdc\xdc0000000000000000000000000000"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p := binary.LittleEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, castagnoli))
		// Whatever decodes whole decodes in parts; skipping a part may
		// accept a malformed part it would have rejected, never fail.
		for _, parts := range []Part{0, PartService | PartConnect, PartDynos, AllParts &^ PartCustom} {
			if _, perr := DecodeParts(p, parts); perr != nil {
				if _, err := Decode(p); err == nil {
					t.Fatalf("parts %08b: %v where Decode succeeds", parts, perr)
				}
			}
		}
		b, err := Decode(p)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode again, to a bucket
		// that encodes to the same bytes.
		enc := b.Encode(nil)
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(again.Encode(nil), enc) {
			t.Fatal("a decoded bucket re-encodes differently after a round trip")
		}
	})
}

func BenchmarkDistAdd(b *testing.B) {
	var d Dist
	d.Add(1)
	m := benchmeter.Start(b)
	for i := 0; b.Loop(); i++ {
		d.Add(float64(i%5000) + 0.5)
	}
	m.Lines(1)
}

func BenchmarkBucketMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	src := sampleBucket(rng)
	var dst Bucket
	m := benchmeter.Start(b)
	for b.Loop() {
		dst.Merge(src)
	}
	m.Lines(int(src.Requests))
}

// TestCountsMatchMap checks Counts against a map through random adds
// (by value and, for strings, by bytes) and merges: the same counts, in
// key order, without duplicates.
func TestCountsMatchMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	check := func(step int, c Counts[string], m map[string]int64) {
		t.Helper()
		if len(c) != len(m) {
			t.Fatalf("step %d: %d keys, map %d", step, len(c), len(m))
		}
		for i, e := range c {
			if i > 0 && c[i-1].Key >= e.Key {
				t.Fatalf("step %d: keys out of order", step)
			}
			if m[e.Key] != e.N || c.Get(e.Key) != e.N {
				t.Fatalf("step %d: %s = %d, map %d", step, e.Key, e.N, m[e.Key])
			}
		}
		var total int64
		for _, n := range m {
			total += n
		}
		if c.Total() != total {
			t.Fatalf("step %d: total %d, map %d", step, c.Total(), total)
		}
	}
	var a, b Counts[string]
	am, bm := map[string]int64{}, map[string]int64{}
	for step := range 2000 {
		k := fmt.Sprintf("k%d", rng.IntN(40))
		n := int64(rng.IntN(5))
		switch rng.IntN(10) {
		case 0:
			a.merge(b)
			for k, n := range bm {
				am[k] += n
			}
		case 1, 2:
			addBytes(&b, []byte(k), n)
			bm[k] += n
		case 3:
			b, bm = nil, map[string]int64{}
		default:
			a.Add(k, n)
			am[k] += n
		}
		check(step, a, am)
		check(step, b, bm)
	}
	if a.Get("absent") != 0 {
		t.Fatal("an absent key counts")
	}
}

// TestDecodeRejectsUnsortedKeys: Encode writes every part in key order,
// so an encoding (with a valid checksum) whose keys are out of order or
// repeated is corrupt, and accepting it would break the lookups.
func TestDecodeRejectsUnsortedKeys(t *testing.T) {
	for _, b := range []*Bucket{
		{rt: &routerPart{status: StatusCounts{narrow: []statusCount{{500, 1}, {200, 1}}}}},
		{rt: &routerPart{status: StatusCounts{wide: &Counts[int]{{Key: 200, N: 1 << 40}, {Key: 200, N: 1}}}}},
		{rt: &routerPart{status: StatusCounts{wide: &Counts[int]{{Key: 1 << 40, N: 1}, {Key: 200, N: 1}}}}},
		{rare: &bucketRare{codes: &bucketCodes{hCodes: Counts[string]{{Key: "H12", N: 1}, {Key: "H12", N: 2}}}}},
		{rare: &bucketRare{codes: &bucketCodes{logLoss: Counts[string]{{Key: "b", N: 1}, {Key: "a", N: 1}}}}},
		{Dynos: []DynoGauges{{Name: "web.2"}, {Name: "web.1"}}},
		{rare: &bucketRare{customs: customs{counts: tightslice.Of([]named[float64]{{"x", 1}, {"x", 2}})}}},
		{rare: &bucketRare{customs: customs{counts: tightslice.Of([]named[float64]{{"y", 1}, {"x", 1}})}}},
		{rare: &bucketRare{codes: &bucketCodes{odd: []NamedCustom{{Name: "x"}, {Name: "x"}}}}},
	} {
		if _, err := Decode(b.Encode(nil)); err == nil {
			t.Errorf("decoded %+v", b)
		}
	}
}

// TestCustomKeepsOnlyItsKinds: a custom metric holds a Stat or a Dist
// only when it was seen with their kind, and keeps them (empty or not)
// through merges and the encoding, so Has(kind) always finds them.
func TestCustomKeepsOnlyItsKinds(t *testing.T) {
	var a, b Bucket
	a.AddCustom("hits", logline.CustomCount, 2, 0)
	b.AddCustom("hits", logline.CustomMeasure, math.NaN(), 0) // seen, nothing recorded
	b.AddCustom("depth", logline.CustomSample, 4, 1)
	if c, _ := a.Metric("hits"); c.Stat != nil || c.Dist != nil {
		t.Fatalf("a count metric holds %+v", c)
	}
	a.Merge(&b)
	dec, err := Decode(a.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Bucket{&a, dec} {
		hits, _ := x.Metric("hits")
		depth, _ := x.Metric("depth")
		if hits.Total != 2 || hits.Dist == nil || hits.Dist.Count != 0 || hits.Stat != nil {
			t.Fatalf("hits = %+v", hits)
		}
		if depth.Stat == nil || depth.Stat.Last != 4 || depth.Dist != nil {
			t.Fatalf("depth = %+v", depth)
		}
	}
}

// TestDistIgnoresValuesBeyondTheSketch: a finite value too large for the
// sketch's mapping (above about 1.26e308, as a custom measure can send)
// is ignored like an infinite one; counting it would store a bucket
// whose sketch holds fewer observations than its count, which decoding
// rejects as corrupt.
func TestDistIgnoresValuesBeyondTheSketch(t *testing.T) {
	var b Bucket
	b.AddService(5)
	b.AddService(math.MaxFloat64)
	b.AddService(math.Inf(1))
	b.AddCustom("huge", logline.CustomMeasure, 1.5e308, 0)
	if huge, _ := b.Metric("huge"); b.Service().Count != 1 || b.Service().Max != 5 || huge.Dist.Count != 0 {
		t.Fatalf("service %+v, huge %+v", b.Service(), huge.Dist)
	}
	if _, err := Decode(b.Encode(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestCountsFind checks find against slices.BinarySearchFunc on sorted
// keys, present and absent, of every length up to 20.
func TestCountsFind(t *testing.T) {
	for n := range 21 {
		var c Counts[int]
		for i := range n {
			c = append(c, KeyCount[int]{Key: 10 * i, N: 1})
		}
		for k := -5; k <= 10*n+5; k++ {
			i, ok := c.find(k)
			wi, wok := slices.BinarySearchFunc(c, k, func(e KeyCount[int], k int) int { return cmp.Compare(e.Key, k) })
			if i != wi || ok != wok {
				t.Fatalf("n=%d: find(%d) = %d, %v; want %d, %v", n, k, i, ok, wi, wok)
			}
		}
	}
}
