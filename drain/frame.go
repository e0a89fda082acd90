package drain

import (
	"time"
	"unsafe"
)

// TODO: switch to logplex.AppendMessage once it has landed in package
// logplex; appendFrame mirrors its documented behaviour.

// appendFrame appends one octet-counted RFC 5424 frame as Logplex sends it:
//
//	<len> <190>1 TIMESTAMP hostname appName procID - msg\n
//
// where <len> is the decimal byte count of everything after the space that
// follows it, trailing newline included, and TIMESTAMP is the UTC time with
// microseconds ("2006-01-02T15:04:05.000000+00:00").
func appendFrame(dst []byte, t time.Time, hostname, appName, procID, msg string) []byte {
	// "<190>1 " + ts(32) + " " + host + " " + app + " " + proc + " - " + msg + "\n"
	n := 7 + tsLen + 1 + len(hostname) + 1 + len(appName) + 1 + len(procID) + 3 + len(msg) + 1
	dst = appendUint(dst, uint64(n))
	dst = append(dst, " <190>1 "...)
	dst = appendTimestamp(dst, t)
	dst = append(dst, ' ')
	dst = append(dst, hostname...)
	dst = append(dst, ' ')
	dst = append(dst, appName...)
	dst = append(dst, ' ')
	dst = append(dst, procID...)
	dst = append(dst, " - "...)
	dst = append(dst, msg...)
	return append(dst, '\n')
}

// tsLen is the length of the timestamps appendTimestamp writes.
const tsLen = len("2006-01-02T15:04:05.000000+00:00")

// appendTimestamp appends t in UTC as 2006-01-02T15:04:05.000000+00:00. It
// is equivalent to t.UTC().AppendFormat(dst, that layout) for years 0–9999,
// only several times faster.
func appendTimestamp(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	us := t.Nanosecond() / 1000
	days := sec / 86400
	rem := sec % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	y, m, d := civil(days)
	dst = append2(dst, y/100)
	dst = append2(dst, y%100)
	dst = append(dst, '-')
	dst = append2(dst, m)
	dst = append(dst, '-')
	dst = append2(dst, d)
	dst = append(dst, 'T')
	dst = append2(dst, int(rem/3600))
	dst = append(dst, ':')
	dst = append2(dst, int(rem/60%60))
	dst = append(dst, ':')
	dst = append2(dst, int(rem%60))
	dst = append(dst, '.')
	dst = append2(dst, us/10000)
	dst = append2(dst, us/100%100)
	dst = append2(dst, us%100)
	return append(dst, "+00:00"...)
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil inverse).
func civil(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era = (z - 146096) / 146097
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

func appendUint(dst []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	buf[i] = byte('0' + v)
	return append(dst, buf[i:]...)
}

// unsafeString views b as a string without copying; the caller must not
// keep the string beyond b's lifetime or let b change while it is used.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
