package logline

import (
	"bytes"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

// refScanner is the byte-at-a-time scanner that scanner replaced; the
// tests check that both cut every input into the same pairs.
type refScanner scanner

func (s *refScanner) next() bool {
	b := s.b
	i := s.i
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	if i >= len(b) {
		s.i = i
		return false
	}
	st := i
	for i < len(b) && b[i] != ' ' && b[i] != '=' && b[i] != '\t' {
		i++
	}
	s.key = b[st:i:i]
	s.val = nil
	s.hasEq = false
	if i < len(b) && b[i] == '=' {
		s.hasEq = true
		i++
		if i < len(b) && b[i] == '"' {
			i++
			vs := i
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' && i+1 < len(b) {
					i++
				}
				i++
			}
			s.val = b[vs:i:i]
			if i < len(b) {
				i++
			}
		} else {
			vs := i
			for i < len(b) && b[i] != ' ' && b[i] != '\t' {
				i++
			}
			s.val = b[vs:i:i]
		}
	}
	s.i = i
	return true
}

// sameSlice reports whether a and b are the same window of memory (or both
// nil): same start, length and capacity.
func sameSlice(a, b []byte) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) || cap(a) != cap(b) {
		return false
	}
	return cap(a) == 0 || &a[:1][0] == &b[:1][0]
}

func checkScanner(t *testing.T, msg []byte) {
	t.Helper()
	s := scanner{b: msg}
	r := refScanner{b: msg}
	for n := 0; ; n++ {
		ok, rok := s.next(), r.next()
		if ok != rok || s.i != r.i {
			t.Fatalf("%q: pair %d: next %v at %d, reference %v at %d", msg, n, ok, s.i, rok, r.i)
		}
		if !ok {
			return
		}
		if !sameSlice(s.key, r.key) || !sameSlice(s.val, r.val) || s.hasEq != r.hasEq {
			t.Fatalf("%q: pair %d: %q=%q (%v), reference %q=%q (%v)", msg, n, s.key, s.val, s.hasEq, r.key, r.val, r.hasEq)
		}
	}
}

var scannerSeeds = []string{
	"", " ", "\t", "a", "a=", "a=b", `a="`, `a="\`, `a="b\"c" d`, `a="b\\" c=d`,
	"key=value\tother=x", "  k  =v", "=x", "==", `x="12345678\"12345678"y`,
	specRouter, specRouterError, specCustom, specLoad, specMemory,
	"sample#memory_total=21.00MB sample#memory_rss=21.00MB\tsample#memory_cache=0.00MB",
	strings.Repeat("abcdefgh", 5) + "=" + strings.Repeat(`"x\`, 7),
	"a=b\x01c d=\x00\x1f\x20\x21\x7f\x80\x9f\xa0\xff e=\x1fxxxxxxxxx\x00yyyyyyyy\tz",
	"key\x01with\x02ctrl=v k\x1fey\x00long\x05er\xff\x80=x sample#\x7fmemory_total\x1e\x1d=1",
}

func TestScannerMatchesReference(t *testing.T) {
	for _, s := range scannerSeeds {
		// Every suffix of every seed, so that delimiters fall at every
		// position of a word.
		for i := range len(s) + 1 {
			checkScanner(t, []byte(s[i:]))
			checkScanner(t, bytes.Clone([]byte(s[:i])))
		}
	}
}

func FuzzScanner(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkScanner)
}

// TestWordScans checks zeroBytes and lessBytes against a byte loop: the
// lowest flagged byte is the first matching one, on words built from
// bytes near the thresholds and random ones.
func TestWordScans(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	interesting := []byte{0, 1, 8, 9, 10, 0x1f, 0x20, 0x21, 0x3d, 0x7f, 0x80, 0x81, 0x9f, 0xa0, 0xa1, 0xfe, 0xff}
	first := func(w uint64, match func(byte) bool) int {
		for k := range 8 {
			if match(byte(w >> (8 * k))) {
				return k
			}
		}
		return 8
	}
	lowest := func(m uint64) int {
		if m == 0 {
			return 8
		}
		return bits.TrailingZeros64(m) >> 3
	}
	for range 200000 {
		var w uint64
		for k := range 8 {
			c := byte(rng.Uint32())
			if rng.IntN(2) == 0 {
				c = interesting[rng.IntN(len(interesting))]
			}
			w |= uint64(c) << (8 * k)
		}
		if got, want := lowest(zeroBytes(w)), first(w, func(c byte) bool { return c == 0 }); got != want {
			t.Fatalf("zeroBytes(%#x): byte %d, want %d", w, got, want)
		}
		for _, n := range []byte{1, 0x21, 0x80} {
			if got, want := lowest(lessBytes(w, n)), first(w, func(c byte) bool { return c < n }); got != want {
				t.Fatalf("lessBytes(%#x, %#x): byte %d, want %d", w, n, got, want)
			}
		}
	}
}
