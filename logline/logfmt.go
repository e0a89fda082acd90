package logline

import (
	"encoding/binary"
	"math/bits"
)

// scanner walks the logfmt-ish `key=value` pairs of a message. Values may be
// quoted with '"' (the quotes are removed, backslash escapes are kept raw),
// empty (`dyno=`), or bare words without '=' (then hasEq is false). It never
// allocates; key and val alias the message.
type scanner struct {
	b     []byte
	i     int
	key   []byte
	val   []byte
	hasEq bool
}

func (s *scanner) next() bool {
	b := s.b
	i := skipSpace(b, s.i)
	if i >= len(b) {
		s.i = i
		return false
	}
	st := i
	i = keyEnd(b, i)
	s.key = b[st:i:i]
	s.val = nil
	s.hasEq = false
	if i < len(b) && b[i] == '=' {
		s.hasEq = true
		s.val, i = scanValue(b, i+1)
	}
	s.i = i
	return true
}

// skipSpace returns the index of the first byte at or after i that is not
// a space or a tab, or len(b).
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// scanValue reads the value that starts at b[i], right after a key's '=',
// and returns it and the index after it: a quoted value without its quotes
// (a backslash keeps the byte after it inside the value), or the bytes up
// to the next space or tab.
func scanValue(b []byte, i int) ([]byte, int) {
	if i < len(b) && b[i] == '"' {
		i++
		vs := i
		for {
			i = index2(b, i, '"', '\\')
			if i >= len(b) || b[i] == '"' {
				break
			}
			// A backslash: it and the byte after it stay in the value.
			if i+1 < len(b) {
				i++
			}
			i++
		}
		val := b[vs:i:i]
		if i < len(b) {
			i++ // the closing quote
		}
		return val, i
	}
	// index2(b, i, ' ', '\t'), written out: most values end in their
	// first word, and a second call per value showed in the profile.
	// Space and tab are the only delimiters, but any byte below '!' stops
	// the word scan (one test instead of two), and other control bytes
	// are then stepped over.
	vs := i
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		if m := lessBytes(w, ' '+1); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			if b[i] == ' ' || b[i] == '\t' {
				return b[vs:i:i], i
			}
			i++
			continue
		}
		i += 8
	}
	for i < len(b) && b[i] != ' ' && b[i] != '\t' {
		i++
	}
	return b[vs:i:i], i
}

// The byte scans below look at eight bytes at a time (SWAR): for a word x,
// zeroBytes(x) has the high bit set in the lowest byte of x that is zero,
// and in no byte below it (bytes above it may be set too, by the borrow,
// so only the lowest set bit is used). XOR with a repeated byte c turns
// the bytes equal to c into zeros.
const (
	swarOnes  = 0x0101010101010101
	swarHighs = 0x8080808080808080
)

func zeroBytes(x uint64) uint64 { return (x - swarOnes) &^ x & swarHighs }

// lessBytes is zeroBytes for the bytes of x below n, which must be at
// most 0x80: a byte at or above n borrows nothing from the byte above,
// and its high bit survives the subtraction only when it is at least
// 0x80+n, when &^x clears it.
func lessBytes(x uint64, n byte) uint64 { return (x - swarOnes*uint64(n)) &^ x & swarHighs }

// index2 returns the index of the first byte at or after i that is c1 or
// c2, or len(b) when there is none.
func index2(b []byte, i int, c1, c2 byte) int {
	r1, r2 := swarOnes*uint64(c1), swarOnes*uint64(c2)
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		if m := zeroBytes(w^r1) | zeroBytes(w^r2); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(b) && b[i] != c1 && b[i] != c2 {
		i++
	}
	return i
}

// keyEnd returns the index of the first space, '=' or tab at or after i,
// or len(b): where a key ends. A word at a time, it looks for bytes below
// '!' or equal to '=' (two tests instead of one per delimiter) and steps
// over the other control bytes it finds, as scanValue does.
func keyEnd(b []byte, i int) int {
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		if m := lessBytes(w, ' '+1) | zeroBytes(w^(swarOnes*'=')); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			if c := b[i]; c == ' ' || c == '=' || c == '\t' {
				return i
			}
			i++
			continue
		}
		i += 8
	}
	for i < len(b) && b[i] != ' ' && b[i] != '=' && b[i] != '\t' {
		i++
	}
	return i
}
