package logline

import (
	"math"
	"strconv"
)

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseNumber parses the longest decimal number at the start of b:
//
//	[+-] (digits [. digits] | . digits) [(e|E) [+-] digits]
//
// and returns its value and the number of bytes used (0 when there is no
// number). An exponent is only taken when digits follow the 'e', so a unit
// such as "em" stays a unit. The result is correctly rounded (a fast path
// for mantissas below 2^53 with exponents within ±22, strconv otherwise),
// except for numbers written with more than 32 bytes, which are within a
// few ulps. Values that overflow float64 are rejected. It never allocates.
func parseNumber(b []byte) (v float64, n int, ok bool) {
	i := 0
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	var mant uint64
	nd := 0   // significant digits kept in mant
	exp := 0  // decimal exponent to apply to mant
	seen := 0 // digits seen, significant or not
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		seen++
		if nd < 19 {
			if mant != 0 || b[i] != '0' {
				mant = mant*10 + uint64(b[i]-'0')
				nd++
			}
		} else {
			exp++ // digit dropped from the integer part
		}
	}
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			seen++
			if nd < 19 {
				if mant != 0 || b[i] != '0' {
					mant = mant*10 + uint64(b[i]-'0')
					nd++
				}
				exp--
			}
		}
	}
	if seen == 0 {
		return 0, 0, false
	}
	if i+1 < len(b) && (b[i] == 'e' || b[i] == 'E') {
		j := i + 1
		eneg := false
		if b[j] == '+' || b[j] == '-' {
			eneg = b[j] == '-'
			j++
		}
		if j < len(b) && b[j] >= '0' && b[j] <= '9' {
			e := 0
			for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
				if e < 100000 {
					e = e*10 + int(b[j]-'0')
				}
			}
			if eneg {
				e = -e
			}
			exp += e
			i = j
		}
	}
	switch {
	case mant == 0:
		v = 0
	case mant < 1<<53 && exp >= 0 && exp <= 22:
		v = float64(mant) * pow10[exp]
	case mant < 1<<53 && exp < 0 && exp >= -22:
		v = float64(mant) / pow10[-exp]
	case exp > 308+19 || exp < -343-19:
		if exp > 0 {
			return 0, 0, false
		}
		v = 0
	case i <= 32 && exp+nd <= 300:
		// Correctly rounded. The syntax was checked above and the value
		// cannot overflow, so ParseFloat cannot fail (and build an error),
		// and a string of at most 32 bytes that does not escape is converted
		// on the stack: no allocation.
		v, _ = strconv.ParseFloat(string(b[:i]), 64)
		return v, i, true
	default:
		v = float64(mant) * math.Pow10(exp)
		if exp < -300 {
			// Avoid the underflow of 10^exp for tiny values with long mantissas.
			v = float64(mant) * math.Pow10(exp+100) * 1e-100
		}
	}
	if math.IsInf(v, 0) {
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, i, true
}

// parseUint parses b, which must be all decimal digits (at most 18).
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// leadingUint parses the decimal digits at the start of b (at most 18).
func leadingUint(b []byte) (int64, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return parseUint(b[:i])
}
