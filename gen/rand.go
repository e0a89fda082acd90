package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// mix is the splitmix64 finaliser: a cheap, well-spread hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hashString is FNV-1a, mixed.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// hash combines values into one well-spread uint64.
func hash(vs ...uint64) uint64 {
	h := uint64(0x243f6a8885a308d3)
	for _, v := range vs {
		h = mix(h ^ v)
	}
	return h
}

// poisson draws a Poisson(lambda) count: Knuth's product method for small
// lambda, a rounded normal approximation above 30.
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		n := math.Round(lambda + math.Sqrt(lambda)*r.NormFloat64())
		if n < 0 {
			return 0
		}
		return int(n)
	}
	l := math.Exp(-lambda)
	k := 0
	p := r.Float64()
	for p > l {
		k++
		p *= r.Float64()
	}
	return k
}

// lognormal draws exp(mu + sigma·N(0,1)): median e^mu.
func lognormal(r *rand.Rand, mu, sigma float64) float64 {
	return math.Exp(mu + sigma*r.NormFloat64())
}

const hexDigits = "0123456789abcdef"

// appendUUID appends a version-4 UUID made from hi and lo.
func appendUUID(dst []byte, hi, lo uint64) []byte {
	hi = hi&^0xf000 | 0x4000               // version 4
	lo = lo&^(0xc000<<48) | (0x8000 << 48) // variant 10
	var b [36]byte
	putHex(b[0:8], hi>>32)
	b[8] = '-'
	putHex(b[9:13], hi>>16)
	b[13] = '-'
	putHex(b[14:18], hi)
	b[18] = '-'
	putHex(b[19:23], lo>>48)
	b[23] = '-'
	putHex(b[24:36], lo)
	return append(dst, b[:]...)
}

// putHex fills b with the low len(b) hex digits of v, two at a time.
func putHex(b []byte, v uint64) {
	for i := len(b) - 2; i >= 0; i -= 2 {
		c := byte(v)
		b[i], b[i+1] = hexDigits[c>>4], hexDigits[c&0xf]
		v >>= 8
	}
}

// appendHex appends the low n hex digits of v.
func appendHex(dst []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, hexDigits[(v>>(4*uint(i)))&0xf])
	}
	return dst
}

// appendIPv4 appends a public-looking dotted IPv4 address made from v.
func appendIPv4(dst []byte, v uint32) []byte {
	a := byte(v >> 24)
	if a == 0 || a == 10 || a == 127 || a >= 224 {
		a = 1 + a%200 + 23 // keep clear of reserved first octets
	}
	dst = appendOctet(dst, a)
	dst = append(dst, '.')
	dst = appendOctet(dst, byte(v>>16))
	dst = append(dst, '.')
	dst = appendOctet(dst, byte(v>>8))
	dst = append(dst, '.')
	return appendOctet(dst, byte(v))
}

// appendOctet appends c in decimal, as strconv.AppendUint would.
func appendOctet(dst []byte, c byte) []byte {
	switch {
	case c >= 100:
		return append(dst, '0'+c/100, '0'+c/10%10, '0'+c%10)
	case c >= 10:
		return append(dst, '0'+c/10, '0'+c%10)
	}
	return append(dst, '0'+c)
}

// appendFixed2 appends x with exactly two decimals.
func appendFixed2(dst []byte, x float64) []byte {
	if x < 0 || x > 1e12 {
		return strconv.AppendFloat(dst, x, 'f', 2, 64)
	}
	c := uint64(x*100 + 0.5)
	dst = strconv.AppendUint(dst, c/100, 10)
	f := c % 100
	return append(dst, '.', byte('0'+f/10), byte('0'+f%10))
}

// appendFixed1 appends x with exactly one decimal.
func appendFixed1(dst []byte, x float64) []byte {
	if x < 0 || x > 1e12 {
		return strconv.AppendFloat(dst, x, 'f', 1, 64)
	}
	c := uint64(x*10 + 0.5)
	dst = strconv.AppendUint(dst, c/10, 10)
	return append(dst, '.', byte('0'+c%10))
}
