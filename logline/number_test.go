package logline

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		v    float64
		n    int
		fail bool
	}{
		{in: "0", v: 0, n: 1},
		{in: "2.46", v: 2.46, n: 4},
		{in: "21.22MB", v: 21.22, n: 5},
		{in: "30000ms", v: 30000, n: 5},
		{in: "-3.5", v: -3.5, n: 4},
		{in: "+7", v: 7, n: 2},
		{in: ".5", v: 0.5, n: 2},
		{in: "5.", v: 5, n: 2},
		{in: "1e3", v: 1000, n: 3},
		{in: "1.5E-2x", v: 0.015, n: 6},
		{in: "2em", v: 2, n: 1},
		{in: "2e+", v: 2, n: 1},
		{in: "0.000001", v: 1e-6, n: 8},
		{in: "348836pages", v: 348836, n: 6},
		{in: "12345678901234567890123", v: 12345678901234567890123, n: 23},
		{in: "0.1234567890123456789012", v: 0.1234567890123456789012, n: 24},
		{in: "1e308", v: 1e308, n: 5},
		{in: "1e-320", v: 1e-320, n: 6},
		{in: "1e99999999999", fail: true},
		{in: "1e400", fail: true},
		{in: "", fail: true},
		{in: "-", fail: true},
		{in: ".", fail: true},
		{in: "abc", fail: true},
		{in: "NaN", fail: true},
		{in: "Inf", fail: true},
	}
	for _, tt := range tests {
		v, n, ok := parseNumber([]byte(tt.in))
		if tt.fail {
			if ok {
				t.Errorf("%q: got %v, want failure", tt.in, v)
			}
			continue
		}
		if !ok || n != tt.n || math.Abs(v-tt.v) > math.Abs(tt.v)*1e-15 {
			t.Errorf("%q: got %v,%d,%v want %v,%d", tt.in, v, n, ok, tt.v, tt.n)
		}
	}
}

func TestParseNumberMatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		var s string
		switch i % 4 {
		case 0: // typical metric values
			s = strconv.FormatFloat(r.Float64()*math.Pow10(r.IntN(12)), 'f', r.IntN(6), 64)
		case 1:
			s = strconv.FormatInt(r.Int64N(1<<53), 10)
		case 2:
			s = strconv.FormatFloat(r.NormFloat64()*1e6, 'g', -1, 64)
		case 3:
			s = strconv.FormatFloat(r.Float64(), 'e', r.IntN(20), 64)
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		got, n, ok := parseNumber([]byte(s))
		if !ok || n != len(s) {
			t.Fatalf("%q: not parsed (%d, %v)", s, n, ok)
		}
		if got != want && math.Abs(got-want) > math.Abs(want)*1e-15 {
			t.Fatalf("%q: got %v want %v", s, got, want)
		}
		if got != want {
			t.Fatalf("%q: got %v want exactly %v", s, got, want)
		}
	}
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"2.46", "21.22MB", "-3.5e-7", "12345678901234567890.5", "1e308", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, n, ok := parseNumber([]byte(s))
		if !ok {
			return
		}
		if n <= 0 || n > len(s) || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("%q: %v, %d", s, v, n)
		}
		want, err := strconv.ParseFloat(s[:n], 64)
		if err != nil {
			if ne, _ := err.(*strconv.NumError); ne == nil || ne.Err != strconv.ErrRange {
				t.Fatalf("%q: parsed %q as %v, strconv says %v", s, s[:n], v, err)
			}
			return
		}
		if v != want && math.Abs(v-want) > math.Abs(want)*1e-12 && math.Abs(want) > 1e-300 {
			t.Fatalf("%q: got %v want %v", s[:n], v, want)
		}
	})
}
