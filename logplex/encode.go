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
	dst = append(dst, " <"...)
	dst = strconv.AppendInt(dst, DefaultPRI, 10)
	dst = append(dst, ">1 "...)
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

// appendTimestamp appends t in TimeLayout. It writes the digits itself:
// time.Time.AppendFormat parses the layout on every call, which was 15%
// of the demo's history import.
func appendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1000, 6)
	return append(dst, "+00:00"...)
}

// appendDigits appends v (0 <= v < 10^width) as exactly width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}
