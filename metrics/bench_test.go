package metrics

import (
	"math/rand/v2"
	"testing"

	"github.com/drainpipe/drainpipe/internal/benchmeter"
)

// BenchmarkDistMerge merges one minute's latency sketch (1,000 log-normal
// requests) into another: the sketch merge of every rollup and every
// query step coarser than its tier.
func BenchmarkDistMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var src, dst Dist
	for range 1000 {
		src.Add(rng.ExpFloat64() * 100)
	}
	m := benchmeter.Start(b)
	for b.Loop() {
		dst.Merge(&src)
	}
	m.Lines(int(src.Count))
}

// BenchmarkRollup is the CPU part of rolling one hour of one series up on
// write: 60 decoded 1-minute buckets merged into one hourly bucket, which
// is then encoded for the store. Lines are the hour's requests.
func BenchmarkRollup(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	minutes := make([]*Bucket, 60)
	var lines int64
	size := 0
	for i := range minutes {
		minutes[i] = sampleBucket(rng)
		lines += minutes[i].Requests
		size += len(minutes[i].Encode(nil))
	}
	b.SetBytes(int64(size))
	var buf []byte
	m := benchmeter.Start(b)
	for b.Loop() {
		var hour Bucket
		for _, mb := range minutes {
			hour.Merge(mb)
		}
		buf = hour.Encode(buf[:0])
	}
	m.Lines(int(lines))
}

// BenchmarkDecode decodes one stored 1-minute bucket, as every query does
// for every row it reads.
func BenchmarkDecode(b *testing.B) {
	enc := sampleBucket(rand.New(rand.NewPCG(7, 8))).Encode(nil)
	b.SetBytes(int64(len(enc)))
	m := benchmeter.Start(b)
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
	m.Lines(100)
}
