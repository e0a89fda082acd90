package metrics

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// encodeCountsInt is how Encode wrote status counts when they were a
// Counts[int]: the reference for StatusCounts.encode.
func encodeCountsInt(c Counts[int]) []byte {
	e := encoder{}
	e.uvarint(uint64(len(c)))
	for _, kc := range c {
		e.uvarint(uint64(kc.Key))
		e.uvarint(uint64(kc.N))
	}
	return e.b
}

// checkStatus compares s with the reference c: reads, the encoding, and
// a decoding of it.
func checkStatus(t *testing.T, step string, s *StatusCounts, c Counts[int]) {
	t.Helper()
	if s.Len() != len(c) {
		t.Fatalf("%s: %d codes, want %d", step, s.Len(), len(c))
	}
	i := 0
	for k, n := range s.All() {
		if k != c[i].Key || n != c[i].N {
			t.Fatalf("%s: code %d = %d at %d, want %d = %d", step, k, n, i, c[i].Key, c[i].N)
		}
		if got := s.Get(k); got != n {
			t.Fatalf("%s: Get(%d) = %d, want %d", step, k, got, n)
		}
		i++
	}
	if s.wide == nil != fitsAll(c) {
		t.Fatalf("%s: wide=%v, yet the counts fit 32 bits: %v", step, s.wide != nil, fitsAll(c))
	}
	want := encodeCountsInt(c)
	var e encoder
	s.encode(&e)
	if !bytes.Equal(e.b, want) {
		t.Fatalf("%s: encodes as % x, want % x", step, e.b, want)
	}
	r := decoder{b: want}
	var d StatusCounts
	if !d.decode(&r, r.count()) || r.err != nil || len(r.b) != 0 {
		t.Fatalf("%s: decode: %v", step, r.err)
	}
	if !slices.Equal(slices.Collect(keysOf(d)), slices.Collect(keysOf(*s))) {
		t.Fatalf("%s: decoded codes differ", step)
	}
	for k, n := range s.All() {
		if d.Get(k) != n {
			t.Fatalf("%s: decoded %d = %d, want %d", step, k, d.Get(k), n)
		}
	}
	if d.wide == nil != fitsAll(c) {
		t.Fatalf("%s: decoded wide=%v, yet the counts fit 32 bits: %v", step, d.wide != nil, fitsAll(c))
	}
}

func keysOf(s StatusCounts) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range s.All() {
			if !yield(k) {
				return
			}
		}
	}
}

func fitsAll(c Counts[int]) bool {
	for _, kc := range c {
		if !fits(kc.Key, kc.N) {
			return false
		}
	}
	return true
}

// TestStatusCountsMatchCounts drives StatusCounts and a Counts[int]
// through random adds and merges, with counts that cross 2^32-1 and
// codes beyond 32 bits (as stored buckets may hold), and checks every
// count, the encoding and its decoding after each step: the 8-byte form
// reads back exactly what the 16-byte one held.
func TestStatusCountsMatchCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	count := func() int64 {
		switch rng.IntN(8) {
		case 0:
			return math.MaxUint32 - rng.Int64N(3)
		case 1:
			return 1<<40 + rng.Int64N(9)
		}
		return 1 + rng.Int64N(1000)
	}
	for round := range 300 {
		wideOK := round%3 == 0 // else codes and counts stay small, mostly
		statusOps(t, func() bool { return true }, func(n int) int {
			if !wideOK && n == len(statusCodes) {
				return rng.IntN(9)
			}
			return rng.IntN(n)
		}, func() int64 {
			if !wideOK {
				return 1 + rng.Int64N(1000)
			}
			return count()
		})
	}
}

// statusCodes are the codes statusOps draws from: the parser's range,
// and beyond 32 bits.
var statusCodes = []int{0, 100, 200, 201, 304, 404, 500, 503, 999, 99999, math.MaxUint32, math.MaxUint32 + 1, 1 << 40}

// statusOps applies to two StatusCounts and two Counts[int] the adds and
// merges that next draws (count draws a count), while more reports
// true, and checks them after every step.
func statusOps(t *testing.T, more func() bool, next func(n int) int, count func() int64) {
	var a, b StatusCounts
	var ac, bc Counts[int]
	for step := 0; step < 40 && more(); step++ {
		k, n := statusCodes[next(len(statusCodes))], count()
		switch next(5) {
		case 0:
			b.add(k, n)
			bc.Add(k, n)
		case 1:
			a.merge(&b)
			ac.merge(bc)
			checkStatus(t, "merge", &a, ac)
		case 2:
			b.merge(&a)
			bc.merge(ac)
			checkStatus(t, "merge back", &b, bc)
		default:
			a.add(k, n)
			ac.Add(k, n)
		}
		checkStatus(t, "add", &a, ac)
		checkStatus(t, "add b", &b, bc)
	}
}

// FuzzStatusCounts is TestStatusCountsMatchCounts with the operations,
// codes and counts drawn from the fuzzer's bytes.
func FuzzStatusCounts(f *testing.F) {
	f.Add([]byte{1, 2, 0, 0, 3, 4, 5, 1, 1, 12, 0, 6, 2, 2, 7, 1, 3, 0, 9})
	f.Add([]byte{7, 0, 255, 255, 255, 250, 7, 0, 255, 255, 255, 250, 1, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		next := func(n int) int {
			if len(in) == 0 {
				return 0
			}
			v := int(in[0]) % n
			in = in[1:]
			return v
		}
		count := func() int64 { // up to 2^40: 5 bytes
			var c int64
			for range next(6) {
				c = c<<8 | int64(next(256))
			}
			return c
		}
		statusOps(t, func() bool { return len(in) > 0 }, next, count)
	})
}
