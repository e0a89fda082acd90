package metrics

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/drainpipe/drainpipe/logline"
)

// goldenBucket makes a bucket of every kind of content, with many keys.
func goldenBucket(rng *rand.Rand) *Bucket {
	b := new(Bucket)
	for range rng.IntN(400) {
		b.AddStatus([]int{200, 200, 201, 301, 304, 404, 429, 500, 503, 0, 99999}[rng.IntN(11)])
		b.AddService(rng.ExpFloat64() * 100)
		b.AddConnect(float64(rng.IntN(3)))
	}
	for range rng.IntN(6) {
		b.AddHCode([]byte(fmt.Sprintf("H%d", 10+rng.IntN(20))))
		b.AddRCode([]byte(fmt.Sprintf("R%d", 10+rng.IntN(6))))
		b.AddLogLoss([]byte([]string{"L10", "rejected.malformed", "drop_count"}[rng.IntN(3)]), int64(rng.IntN(9)+1))
	}
	for range rng.IntN(12) {
		g := b.Dyno([]byte(fmt.Sprintf("%s.%d", []string{"web", "worker", "run"}[rng.IntN(3)], rng.IntN(9)+1)))
		for i := range logline.NumGauges {
			if rng.IntN(3) > 0 {
				g.Add(i, rng.Float64()*500, rng.Int64N(1e12))
			}
		}
	}
	for range rng.IntN(10) {
		k := logline.CustomKind(rng.IntN(3)) // 0, count or sample
		name := fmt.Sprintf("m.%d", rng.IntN(12))
		switch k {
		case logline.CustomCount:
			b.AddCustom(name, k, rng.Float64()*10, 0)
		case logline.CustomSample:
			b.AddCustom(name, k, rng.Float64(), rng.Int64N(1e12))
		default:
			// Kind 0 (no l2met kind, as from a newer or corrupt writer)
			// with a distribution: these buckets were written that way,
			// and such a name is odd (see customs).
			if b.AddCustom(name, k, 0, 0); b.oddMetric(name) == nil {
				panic(name + " of kind 0 is not odd")
			}
			c := b.oddMetric(name)
			if c.Dist == nil {
				c.Dist = new(Dist)
			}
			for range rng.IntN(50) + 1 {
				c.Dist.Add(rng.ExpFloat64() * 30)
			}
		}
	}
	return b
}

// summary lists what a bucket holds through its accessors, one line.
func summary(b *Bucket) string {
	var sum strings.Builder
	fmt.Fprintf(&sum, "req=%d 5xx=%d", b.Requests, b.Count5xx())
	for code, n := range b.Status().All() {
		fmt.Fprintf(&sum, " s%d=%d", code, n)
	}
	for _, m := range []Counts[string]{b.HCodes(), b.RCodes(), b.LogLoss()} {
		sum.WriteString(" |")
		for k, n := range m.All() {
			fmt.Fprintf(&sum, " %s=%d", k, n)
		}
	}
	sum.WriteString(" |")
	for _, d := range b.Dynos {
		st := b.GaugeStat(logline.GaugeMemRSS, d.Name)
		fmt.Fprintf(&sum, " %s:%d:%v", d.Name, st.Count, st.Sum)
	}
	all := b.GaugeStat(logline.GaugeLoad1m, "")
	fmt.Fprintf(&sum, " all:%d:%v:%v |", all.Count, all.Sum, all.Last)
	for nc := range b.Custom() {
		c, _ := b.Metric(nc.Name)
		var q float64
		var samples int64
		if c.Dist != nil {
			q, _ = c.Dist.Quantile(0.9)
		}
		if c.Stat != nil {
			samples = c.Stat.Count
		}
		fmt.Fprintf(&sum, " %s:%d:%v:%d:%v", nc.Name, c.Kinds, c.Total, samples, q)
	}
	return sum.String()
}

// TestDecodesStoredBuckets decodes buckets encoded before buckets kept
// sorted slices (and before the compact sketch layouts): each must
// re-encode to the same bytes and read back what the maps held then
// (testdata/buckets-v2.txt, written by the map-based code from the same
// buckets).
func TestDecodesStoredBuckets(t *testing.T) {
	encs, err := os.ReadFile("testdata/buckets-v2.hex")
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile("testdata/buckets-v2.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(encs)), "\n")
	want := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if len(lines) != len(want) || len(lines) < 10 {
		t.Fatalf("%d encodings, %d summaries", len(lines), len(want))
	}
	rng := rand.New(rand.NewPCG(2026, 11))
	for i, line := range lines {
		enc, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Decode(enc)
		if err != nil {
			t.Fatalf("bucket %d: %v", i, err)
		}
		if !bytes.Equal(b.Encode(nil), enc) {
			t.Fatalf("bucket %d re-encodes differently", i)
		}
		if got := summary(b); got != want[i] {
			t.Fatalf("bucket %d reads\n%s\nwant\n%s", i, got, want[i])
		}
		// The same operations on today's Bucket encode to the same bytes.
		if !bytes.Equal(goldenBucket(rng).Encode(nil), enc) {
			t.Fatalf("bucket %d: the same operations encode differently today", i)
		}
	}
}
