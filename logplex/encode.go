package logplex

import (
	"strconv"
	"time"
)

// TimeLayout is the timestamp format the encoders write: RFC 3339 in UTC
// with microseconds, as Logplex and log-shuttle do.
const TimeLayout = "2006-01-02T15:04:05.000000+00:00"

// DefaultPRI is the syslog priority the encoders write: facility local7,
// severity info, as log-shuttle does for app output.
const DefaultPRI = 190

// AppendMessage appends one complete octet-counted frame to dst and returns
// the extended slice:
//
//	<len> <190>1 TIMESTAMP HOSTNAME APP-NAME PROCID - MSG\n
//
// where <len> counts every byte after the space, including the final "\n".
// The time is written in UTC with microseconds (TimeLayout). Empty header
// fields are written as the nil value `-`; bytes in them that are not
// printable ASCII (spaces included) are written as '_' so the header stays
// parseable. One trailing "\n" on msg is dropped (the frame adds its own).
// AppendMessage allocates only when dst must grow.
func AppendMessage(dst []byte, t time.Time, hostname, appName, procID, msg string) []byte {
	return appendFrame(dst, t, hostname, appName, procID, "", msg)
}

// AppendFrame appends h as one complete octet-counted frame to dst, in the
// same format as AppendMessage (h.MsgID is used when set). It is the inverse
// of Reader.Next plus ParseHeader, up to sub-microsecond time.
func AppendFrame(dst []byte, h *Header) []byte {
	return appendFrame(dst, time.Unix(0, h.Time), h.Hostname, h.AppName, h.ProcID, h.MsgID, h.Msg)
}

func appendFrame[S string | []byte](dst []byte, t time.Time, host, app, proc, msgID, msg S) []byte {
	var tsBuf [48]byte
	ts := appendTimestamp(tsBuf[:0], t)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	n := len("<190>1 ") + len(ts) + 1 + fieldLen(host) + 1 + fieldLen(app) + 1 +
		fieldLen(proc) + 1 + fieldLen(msgID) + 1 + len(msg) + 1
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, " <190>1 "...) // DefaultPRI, VERSION
	dst = append(dst, ts...)
	dst = append(dst, ' ')
	dst = appendField(dst, host)
	dst = append(dst, ' ')
	dst = appendField(dst, app)
	dst = append(dst, ' ')
	dst = appendField(dst, proc)
	dst = append(dst, ' ')
	dst = appendField(dst, msgID)
	dst = append(dst, ' ')
	dst = append(dst, msg...)
	return append(dst, '\n')
}

func fieldLen[S string | []byte](s S) int {
	if len(s) == 0 {
		return 1
	}
	return len(s)
}

func appendField[S string | []byte](dst []byte, s S) []byte {
	if len(s) == 0 {
		return append(dst, '-')
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 127 {
			return appendSanitized(dst, s)
		}
	}
	return append(dst, s...)
}

func appendSanitized[S string | []byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 127 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendTimestamp appends t in TimeLayout. It writes the digits itself,
// two at a time into a fixed array: time.Time.AppendFormat parses the
// layout on every call, which was 15% of the demo's history import.
func appendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	us := t.Nanosecond() / 1000
	var b [len(TimeLayout)]byte
	put2(b[0:], year/100)
	put2(b[2:], year%100)
	b[4] = '-'
	put2(b[5:], int(month))
	b[7] = '-'
	put2(b[8:], day)
	b[10] = 'T'
	put2(b[11:], hour)
	b[13] = ':'
	put2(b[14:], minute)
	b[16] = ':'
	put2(b[17:], sec)
	b[19] = '.'
	put2(b[20:], us/10000)
	put2(b[22:], us/100%100)
	put2(b[24:], us%100)
	copy(b[26:], "+00:00")
	return append(dst, b[:]...)
}

// pairs holds the two digits of 0 to 99.
const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// put2 writes v (0 <= v < 100) as two digits at b[0:2].
func put2(b []byte, v int) {
	b[0], b[1] = pairs[2*v], pairs[2*v+1]
}
