package journal

// CRC-32C of a concatenation from the CRCs of its parts, so that a
// record's checksum (over its header, then its body) can be finished by
// the writer from the body's CRC-32C, which the appending goroutine
// computes outside the writer's serial section. This is zlib's
// crc32_combine method (multiplication by x^(8·len) modulo the
// polynomial), for the Castagnoli polynomial in reflected bit order.

const castagnoliReflected = 0x82f63b78

// multModP returns a·b modulo the polynomial (reflected: bit 31 is x^0).
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// x2nTable[k] is x^(2^k) modulo the polynomial.
var x2nTable = func() (t [32]uint32) {
	t[0] = 1 << 30 // x^1
	for k := 1; k < len(t); k++ {
		t[k] = multModP(t[k-1], t[k-1])
	}
	return t
}()

// xPow8n returns x^(8·n) modulo the polynomial.
func xPow8n(n int) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n > 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
	}
	return p
}

// crcCombine returns the CRC-32C of A followed by B from crcA, the CRC-32C
// of A, and crcB, that of B, which is lenB bytes long.
func crcCombine(crcA, crcB uint32, lenB int) uint32 {
	return multModP(xPow8n(lenB), crcA) ^ crcB
}
