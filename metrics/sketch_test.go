package metrics

import (
	"math"
	"math/rand/v2"
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
		var mine sketch
		lib := ddsketch.NewDDSketch(indexMapping, store.NewDenseStore(), store.NewDenseStore())
		for part := range 3 {
			var m sketch
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
		if float64(mine.zero) != lib.GetZeroCount() || float64(mine.n) != lib.GetCount() {
			t.Fatalf("round %d: zero %d n %d, library %v %v", round, mine.zero, mine.n, lib.GetZeroCount(), lib.GetCount())
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
		pos := float64(mine.n - mine.zero)
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
	var s sketch
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
