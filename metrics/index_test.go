package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func checkIndex(t *testing.T, v float64) {
	t.Helper()
	if got, want := sketchIndex(v), indexMapping.Index(v); got != want {
		t.Fatalf("sketchIndex(%v) = %d, the mapping says %d", v, got, want)
	}
}

// TestSketchIndexMatchesMapping checks the table against the mapping at
// both ends and inside every part, on every integer a router duration in
// milliseconds is likely to be, and on random values of every magnitude.
func TestSketchIndexMatchesMapping(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	none := 0
	for j := range indexTab {
		if indexTab[j] == indexTabNone {
			none++
		}
		bits := (indexTabFirst + uint64(j)) << indexTabShift
		for _, b := range []uint64{bits, bits + 1, bits + 1<<indexTabShift - 1, bits + 1<<(indexTabShift-1), bits + rng.Uint64N(1<<indexTabShift)} {
			checkIndex(t, math.Float64frombits(b))
		}
	}
	if frac := float64(none) / float64(len(indexTab)); frac > 0.05 {
		t.Errorf("%.1f%% of the table's parts fall back to the log", 100*frac)
	}
	for i := 1; i <= 200000; i++ {
		checkIndex(t, float64(i))
		checkIndex(t, float64(i)/10)
		checkIndex(t, float64(i)/100)
	}
	for range 1000000 {
		checkIndex(t, math.Exp(rng.Float64()*1400-700))
	}
	for _, v := range []float64{minIndexable, math.Nextafter(minIndexable, 1), maxIndexable, math.SmallestNonzeroFloat64, 1e-300, 1e300} {
		if v > 0 && v <= maxIndexable {
			checkIndex(t, v)
		}
	}
}

// TestSketchIndexBoundaries checks the values next to every bin boundary
// inside the table's range, where a wrong entry would show first.
func TestSketchIndexBoundaries(t *testing.T) {
	lo := indexMapping.Index(math.Ldexp(1, indexTabMinExp))
	hi := indexMapping.Index(math.Ldexp(1, indexTabMaxExp))
	for i := lo; i <= hi; i++ {
		b := indexMapping.LowerBound(i)
		v := b
		for range 8 {
			checkIndex(t, v)
			v = math.Nextafter(v, 0)
		}
		v = b
		for range 8 {
			v = math.Nextafter(v, math.Inf(1))
			checkIndex(t, v)
		}
	}
}

func FuzzSketchIndex(f *testing.F) {
	for _, v := range []float64{1, 18, 30000, 0.5, 1e-3, 1e11, 123.456} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		v = math.Abs(v)
		if v > minIndexable && v <= maxIndexable {
			checkIndex(t, v)
		}
	})
}

func BenchmarkSketchIndex(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, 1024)
	for i := range vals {
		vals[i] = math.Round(rng.ExpFloat64() * 100)
		if vals[i] == 0 {
			vals[i] = 1
		}
	}
	b.Run("impl=table", func(b *testing.B) {
		s := 0
		for i := 0; b.Loop(); i++ {
			s += sketchIndex(vals[i&1023])
		}
		_ = s
	})
	b.Run("impl=log", func(b *testing.B) {
		s := 0
		for i := 0; b.Loop(); i++ {
			s += indexMapping.Index(vals[i&1023])
		}
		_ = s
	})
}
