package logplex

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"
)

// refDateTime is dateTime as a byte at a time, as parseTimestamp read the
// date and time before: the reference FuzzParseTimestamp compares with.
func refDateTime(b []byte) (year, month, day, hour, minute, sec int, ok bool) {
	hi, lo := digits2(b[0:2]), digits2(b[2:4])
	year = hi*100 + lo
	month, day = digits2(b[5:7]), digits2(b[8:10])
	hour, minute, sec = digits2(b[11:13]), digits2(b[14:16]), digits2(b[17:19])
	if hi < 0 || lo < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || sec < 0 ||
		b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, 0, 0, 0, 0, 0, false
	}
	return year, month, day, hour, minute, sec, true
}

// refFraction is fraction as a byte at a time.
func refFraction(b []byte, i int) (ns int64, end int, ok bool) {
	s := i
	for ; i < len(b) && isDigit(b[i]); i++ {
		if i-s < 9 {
			ns = ns*10 + int64(b[i]-'0')
		}
	}
	if i == s {
		return 0, i, false
	}
	for n := i - s; n < 9; n++ {
		ns *= 10
	}
	return ns, i, true
}

// FuzzParseTimestamp compares the word-at-a-time reads of a timestamp
// (dateTime, fraction) with byte-at-a-time references.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{
		"2012-10-11T03:47:20.123456+00:00 host", "2012-11-30T06:45:29+00:00", "2024-02-29T23:59:59.123456789-07:00",
		"2016-12-31T23:59:60Z", "1970-01-01t00:00:00z", "0001-01-01T00:00:00Z", "9999-01-01T00:00:00Z",
		"2023-02-29T03:04:05Z", "2012-10-11T03:47:20.1234567Z", "2012-10-11T03:47:20.12345678Z",
		"2012-10-11T03:47:20.Z", "2012-1a-11T03:47:20Z", "2012-10-11 03:47:20Z", "2012-10-11T03:47:2\xff0Z",
		"20\xba2-10-11T03:47:20Z", "2012-10-11T24:00:00Z", "2012-10-11T03:47:20.123+14:00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 19 {
			y, mo, d, h, mi, s, ok := dateTime(b)
			ry, rmo, rd, rh, rmi, rs, rok := refDateTime(b)
			if ok != rok || ok && (y != ry || mo != rmo || d != rd || h != rh || mi != rmi || s != rs) {
				t.Fatalf("dateTime(%q) = %d %d %d %d %d %d %v; the reference %d %d %d %d %d %d %v",
					b[:19], y, mo, d, h, mi, s, ok, ry, rmo, rd, rh, rmi, rs, rok)
			}
		}
		for i := range min(len(b), 24) {
			ns, end, ok := fraction(b, i)
			rns, rend, rok := refFraction(b, i)
			if ns != rns || end != rend || ok != rok {
				t.Fatalf("fraction(%q, %d) = %d, %d, %v; the reference %d, %d, %v", b, i, ns, end, ok, rns, rend, rok)
			}
		}
	})
}

// TestTimestampWords checks the word helpers of parseTimestamp against
// byte loops on every byte in every position.
func TestTimestampWords(t *testing.T) {
	base := []byte("0123456789012345")
	for p := range 8 {
		for c := range 256 {
			b := append([]byte(nil), base...)
			b[p] = byte(c)
			w := binary.LittleEndian.Uint64(b)
			want := 0
			for want < 8 && isDigit(b[want]) {
				want++
			}
			if got := leadingDigits8(b); got != want {
				t.Fatalf("leadingDigits8(%q) = %d, want %d", b[:8], got, want)
			}
			if nd := nonDigits(w); (nd>>(8*p+7)&1 == 1) == isDigit(byte(c)) {
				t.Fatalf("nonDigits(%q): byte %d flagged %v", b[:8], p, !isDigit(byte(c)))
			}
			if want > 0 && want < 8 {
				n, _ := strconv.ParseUint(string(b[:want]), 10, 64)
				if got := digits8((w - swarZeros) << (64 - 8*want)); got != n {
					t.Fatalf("digits8 of %q = %d, want %d", b[:want], got, n)
				}
			}
		}
	}
}

// TestSpaceAfter checks the header fields' word-at-a-time space search
// against bytes.IndexByte, for a space (or none) at every position.
func TestSpaceAfter(t *testing.T) {
	for n := range 20 {
		for sp := range n + 1 {
			b := bytes.Repeat([]byte{'a'}, n)
			if sp < n {
				b[sp] = ' '
			}
			for i := range n + 1 {
				want := bytes.IndexByte(b[i:], ' ')
				if want < 0 {
					want = n
				} else {
					want += i
				}
				if got := spaceAfter(b, i); got != want {
					t.Fatalf("spaceAfter(%q, %d) = %d, want %d", b, i, got, want)
				}
			}
		}
	}
}
