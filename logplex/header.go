package logplex

import (
	"encoding/binary"
	"math/bits"
)

// HeaderError reports a syslog header (or `heroku logs` line) that cannot
// be parsed. The values are shared and must not be modified; compare them
// with errors.As and read Reason, which is short and constant (usable as a
// metric label).
type HeaderError struct {
	Reason string
}

func (e *HeaderError) Error() string { return "logplex: " + e.Reason }

// The errors ParseHeader and ParseTail return. They are preallocated so the
// parsers never allocate, even on bad input.
var (
	errEmpty      = &HeaderError{"empty message"}
	errPRI        = &HeaderError{"bad priority"}
	errVersion    = &HeaderError{"bad version"}
	errTimestamp  = &HeaderError{"bad timestamp"}
	errDate       = &HeaderError{"timestamp out of range"}
	errHostname   = &HeaderError{"missing hostname"}
	errAppName    = &HeaderError{"missing app name"}
	errProcID     = &HeaderError{"missing procid"}
	errMsgID      = &HeaderError{"missing msgid"}
	errTailSource = &HeaderError{"bad source[proc]"}
)

// fieldErrs are the errors for a missing HOSTNAME, APP-NAME, PROCID and
// MSGID, in that order.
var fieldErrs = [...]error{errHostname, errAppName, errProcID, errMsgID}

var nilValue = []byte("-")

// ParseHeader parses one Logplex message: an RFC 5424 syslog line without
// STRUCTURED-DATA,
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID MSG
//
// e.g. `<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from
// starting to up`. PRI is 0..191, the version must be 1, TIMESTAMP is RFC
// 3339 (fractional seconds up to 9 digits, further digits are ignored; `Z`
// or ±hh:mm). HOSTNAME, PROCID and MSGID may be the nil value `-`, which is
// kept as is. A trailing "\n" / "\r\n" and a UTF-8 BOM at the start of MSG
// are removed.
//
// Structured data. Logplex puts MSG right after MSGID, but other senders
// write a STRUCTURED-DATA field there: log-shuttle emits
// `<190>1 TS shuttle token shuttle - - message` (MSGID `-`, then nil SD
// `-`) and, for pre-formatted input, `... web.1 - [meta sequenceId="1"]
// message`. So after MSGID:
//   - a lone `-` followed by a space (or the end) is taken as nil SD and
//     skipped. A Logplex message that really starts with "- " loses those
//     two bytes, which never changes what a line counts as;
//   - one or more well-formed SD-ELEMENTs (`[id name="value" ...]`, each
//     with at least one parameter) followed by a space or the end are
//     skipped. Bracketed text without parameters, such as the HireFire-style
//     `[hirefire:router] queue=12ms`, is kept in Msg.
//
// ParseHeader does not allocate; the slices in h alias msg.
func ParseHeader(msg []byte, h *Header) error {
	*h = Header{}
	b := trimNewline(msg)
	if len(b) == 0 {
		return errEmpty
	}
	// <PRI>
	if b[0] != '<' {
		return errPRI
	}
	i := 1
	pri := 0
	for i < len(b) && i <= 4 && isDigit(b[i]) {
		pri = pri*10 + int(b[i]-'0')
		i++
	}
	if i == 1 || i > 4 || i >= len(b) || b[i] != '>' || pri > 191 {
		return errPRI
	}
	i++
	// VERSION
	if i+1 >= len(b) || b[i] != '1' || b[i+1] != ' ' {
		return errVersion
	}
	i += 2
	// TIMESTAMP
	ns, n, err := parseTimestamp(b[i:])
	if err != nil {
		return err
	}
	h.Time = ns
	i += n
	if i >= len(b) || b[i] != ' ' {
		return errTimestamp
	}
	i++
	// HOSTNAME, APP-NAME, PROCID and MSGID: each non-empty, ending in a
	// space or at the end.
	for k, f := range [...]*[]byte{&h.Hostname, &h.AppName, &h.ProcID, &h.MsgID} {
		j := spaceAfter(b, i)
		if j == i {
			return fieldErrs[k]
		}
		*f = b[i:j:j]
		i = j
		if i < len(b) {
			i++
		}
	}
	// i is just past the space after MSGID, or at the end.
	rest := skipStructuredData(b[i:])
	if len(rest) >= 3 && rest[0] == 0xEF && rest[1] == 0xBB && rest[2] == 0xBF {
		rest = rest[3:]
	}
	h.Msg = rest
	return nil
}

// spaceAfter returns the index of the first space at or after i, or
// len(b). Most header fields are shorter than 8 bytes (host, heroku,
// router, web.1, -): their space is found in one word.
func spaceAfter(b []byte, i int) int {
	if len(b)-i >= 8 {
		if m := zeroBytes(binary.LittleEndian.Uint64(b[i:]) ^ swarSpaces); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(b) && b[i] != ' ' {
		i++
	}
	return i
}

// skipStructuredData removes a nil or well-formed STRUCTURED-DATA field at
// the start of rest (see ParseHeader).
func skipStructuredData(rest []byte) []byte {
	if len(rest) == 0 {
		return rest
	}
	if rest[0] == '-' {
		if len(rest) == 1 {
			return rest[1:]
		}
		if rest[1] == ' ' {
			return rest[2:]
		}
		return rest
	}
	if rest[0] != '[' {
		return rest
	}
	i := 0
	for i < len(rest) && rest[i] == '[' {
		n := sdElement(rest[i:])
		if n == 0 {
			return rest
		}
		i += n
	}
	if i == len(rest) {
		return rest[i:]
	}
	if rest[i] != ' ' {
		return rest
	}
	return rest[i+1:]
}

// sdElement returns the length of the SD-ELEMENT `[SD-ID 1*(SP PARAM)]` at
// the start of b, or 0 when there is none (or it has no PARAM).
func sdElement(b []byte) int {
	i := 1
	n := sdName(b[i:])
	if n == 0 {
		return 0
	}
	i += n
	params := 0
	for i < len(b) && b[i] == ' ' {
		i++
		n = sdName(b[i:])
		if n == 0 {
			return 0
		}
		i += n
		if i+1 >= len(b) || b[i] != '=' || b[i+1] != '"' {
			return 0
		}
		i += 2
		for {
			if i >= len(b) {
				return 0
			}
			c := b[i]
			if c == '\\' && i+1 < len(b) {
				i += 2
				continue
			}
			i++
			if c == '"' {
				break
			}
		}
		params++
	}
	if i >= len(b) || b[i] != ']' || params == 0 {
		return 0
	}
	return i + 1
}

// sdName returns the length of the SD-NAME at the start of b: 1..32
// printable US-ASCII characters except '=', SP, ']' and '"'.
func sdName(b []byte) int {
	i := 0
	for i < len(b) && i < 32 {
		c := b[i]
		if c <= ' ' || c >= 127 || c == '=' || c == ']' || c == '"' {
			break
		}
		i++
	}
	return i
}

// ParseTail parses one line as printed by `heroku logs --tail`:
//
//	TIMESTAMP SOURCE[PROC]: MSG
//
// e.g. `2012-10-11T03:47:20+00:00 heroku[router]: at=info method=GET ...`.
// SOURCE becomes h.AppName, PROC h.ProcID; h.Hostname and h.MsgID are set to
// the nil value `-`. The space after the colon is optional, a trailing
// "\n" / "\r\n" is removed. ParseTail does not allocate.
func ParseTail(line []byte, h *Header) error {
	*h = Header{}
	b := trimNewline(line)
	if len(b) == 0 {
		return errEmpty
	}
	ns, i, err := parseTimestamp(b)
	if err != nil {
		return err
	}
	if i >= len(b) || b[i] != ' ' {
		return errTimestamp
	}
	h.Time = ns
	i++
	s := i
	for i < len(b) && b[i] != '[' && b[i] != ' ' && b[i] != ']' {
		i++
	}
	if i == s || i >= len(b) || b[i] != '[' {
		return errTailSource
	}
	h.AppName = b[s:i:i]
	i++
	s = i
	for i < len(b) && b[i] != ']' && b[i] != ' ' && b[i] != '[' {
		i++
	}
	if i == s || i+1 >= len(b) || b[i] != ']' || b[i+1] != ':' {
		return errTailSource
	}
	h.ProcID = b[s:i:i]
	i += 2
	if i < len(b) && b[i] == ' ' {
		i++
	}
	h.Hostname = nilValue[:1:1]
	h.MsgID = nilValue[:1:1]
	h.Msg = b[i:]
	return nil
}

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n > 1 && b[n-2] == '\r' {
			b = b[:n-2]
		}
	}
	return b
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Timestamps outside these years are rejected; the range keeps Unix
// nanoseconds well inside int64.
const (
	minYear = 1700
	maxYear = 2200
)

// parseTimestamp parses an RFC 3339 timestamp at the start of b into Unix
// nanoseconds and returns how many bytes it used.
//
//	YYYY-MM-DD('T'|'t')hh:mm:ss[.fraction]('Z'|'z'|('+'|'-')hh:mm)
func parseTimestamp(b []byte) (ns int64, n int, err error) {
	if len(b) < 20 {
		return 0, 0, errTimestamp
	}
	year, month, day, hour, minute, sec, ok := dateTime(b)
	if !ok {
		return 0, 0, errTimestamp
	}
	// sec may be 60 for a leap second; it then counts as the first second
	// of the next minute.
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 60 {
		return 0, 0, errTimestamp
	}
	if year < minYear || year > maxYear {
		return 0, 0, errDate
	}
	i := 19
	var frac int64
	if b[i] == '.' {
		if frac, i, ok = fraction(b, i+1); !ok {
			return 0, 0, errTimestamp
		}
	}
	if i >= len(b) {
		return 0, 0, errTimestamp
	}
	var offset int64 // seconds east of UTC
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i < 6 || b[i+3] != ':' {
			return 0, 0, errTimestamp
		}
		oh, om := digits2(b[i+1:i+3]), digits2(b[i+4:i+6])
		if oh < 0 || om < 0 || oh > 23 || om > 59 {
			return 0, 0, errTimestamp
		}
		offset = int64(oh*3600 + om*60)
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, 0, errTimestamp
	}
	secs := daysSinceEpoch(year, month, day)*86400 +
		int64(hour*3600+minute*60+sec) - offset
	return secs*1_000_000_000 + frac, i, nil
}

// fraction reads the digits of a fraction of a second starting at b[i]
// (after the '.') as nanoseconds; digits beyond the ninth are ignored. It
// returns the index after the digits, and false when there is none.
func fraction(b []byte, i int) (ns int64, end int, ok bool) {
	s := i
	if k := leadingDigits8(b[i:]); k > 0 && k < 8 {
		// Up to 7 digits (usually 6, microseconds) read at once.
		ns = int64(digits8((binary.LittleEndian.Uint64(b[i:]) - swarZeros) << (64 - 8*k)))
		i += k
	} else {
		for i < len(b) && isDigit(b[i]) {
			if i-s < 9 {
				ns = ns*10 + int64(b[i]-'0')
			}
			i++
		}
	}
	if i == s {
		return 0, i, false
	}
	if n := i - s; n < 9 {
		ns *= pow10[9-n]
	}
	return ns, i, true
}

// The words of a timestamp's first 19 bytes that dateTime reads, in
// little-endian order (byte 0 lowest): "YYYY-MM-" at 0, "DDThh:mm" at 8
// and "hh:mm:ss" at 11. The digit masks have 0xFF in the bytes that must
// be digits, the separator masks in those that must be separators, whose
// values (after 'T' is lowered to 't') follow.
const (
	dateDigits = 0x00ffff00ffffffff
	dateSeps   = 0xff0000ff00000000
	dateSepVal = 0x2d00002d00000000 // '-' at bytes 4 and 7
	timeDigits = 0xffff00ffff00ffff
	timeSeps   = 0x0000ff0000ff0000
	dayTimeVal = 0x00003a0000740000 // 't' at byte 2, ':' at 5
	lowerT     = 0x0000000000200000 // makes 'T' at byte 2 't'
	hmsSepVal  = 0x00003a00003a0000 // ':' at bytes 2 and 5
)

// dateTime reads and checks the syntax of YYYY-MM-DD('T'|'t')hh:mm:ss at
// the start of b, which must be at least 19 bytes long, a word at a time.
// ok is false when a digit or separator is not one.
func dateTime(b []byte) (year, month, day, hour, minute, sec int, ok bool) {
	w0 := binary.LittleEndian.Uint64(b[0:8])
	w1 := binary.LittleEndian.Uint64(b[8:16])
	w2 := binary.LittleEndian.Uint64(b[11:19])
	if nonDigits(w0)&dateDigits != 0 || nonDigits(w1)&timeDigits != 0 || nonDigits(w2)&timeDigits != 0 ||
		w0&dateSeps != dateSepVal || (w1|lowerT)&timeSeps != dayTimeVal || w2&timeSeps != hmsSepVal {
		return 0, 0, 0, 0, 0, 0, false
	}
	p0, p1, p2 := digitPairs(w0, dateDigits), digitPairs(w1, timeDigits), digitPairs(w2, timeDigits)
	return int(p0&0xff)*100 + int(p0>>16&0xff), int(p0 >> 40 & 0xff), int(p1 & 0xff),
		int(p2 & 0xff), int(p2 >> 24 & 0xff), int(p2 >> 48 & 0xff), true
}

// nonDigits has the high bit set in every byte of w that is not an ASCII
// digit (and perhaps in the byte after one at 0xBA or above, which is a
// non-digit itself). A byte's high bit is set in w when it is 0x80 or
// above, in w+0x46… when it is above '9', and cleared in
// (w|0x80…)-0x30… when it is below '0'.
func nonDigits(w uint64) uint64 {
	return (w | (w + 0x4646464646464646) | ^((w | swarHighs) - swarZeros)) & swarHighs
}

// digitPairs turns the bytes of w that mask marks, which are ASCII digits,
// into a word where each byte that starts two of them holds their value:
// byte i is ten times digit i plus digit i+1 (no byte reaches 100, so
// none carries into the next).
func digitPairs(w, mask uint64) uint64 {
	d := w&mask - swarZeros&mask
	return d*10 + d>>8
}

// Constants for the word-at-a-time (SWAR) reads of the header.
const (
	swarOnes   = 0x0101010101010101
	swarHighs  = 0x8080808080808080
	swarZeros  = '0' * swarOnes
	swarSpaces = ' ' * swarOnes
)

// zeroBytes has the high bit set in the lowest byte of x that is zero
// (and perhaps in bytes above it, from the borrow: only its lowest set
// bit is exact).
func zeroBytes(x uint64) uint64 { return (x - swarOnes) &^ x & swarHighs }

// leadingDigits8 returns how many of the first 8 bytes of b are ASCII
// digits before the first that is not; 0 when b is shorter than 8 bytes.
func leadingDigits8(b []byte) int {
	if len(b) < 8 {
		return 0
	}
	// The bytes before the first non-digit carry nothing into it, so its
	// bit in nonDigits is exact.
	nd := nonDigits(binary.LittleEndian.Uint64(b))
	if nd == 0 {
		return 8
	}
	return bits.TrailingZeros64(nd) >> 3
}

// digits8 returns the number written by the 8 decimal digit values in the
// bytes of d, the first (most significant) in the lowest byte: an ASCII
// word minus '0' in each byte, as loaded little-endian. Bytes shifted in
// as 0 at the bottom are leading zeros.
func digits8(d uint64) uint64 {
	d = d*10 + d>>8 // each even byte: ten times a digit plus the next
	return (d&0x000000FF000000FF*(100+1000000<<32) +
		d>>16&0x000000FF000000FF*(1+10000<<32)) >> 32
}

func digits2(b []byte) int {
	c0, c1 := b[0]-'0', b[1]-'0'
	if c0 > 9 || c1 > 9 {
		return -1
	}
	return int(c0)*10 + int(c1)
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(month, year int) int {
	switch month {
	case 2:
		if isLeap(year) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

var pow10 = [...]int64{1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000}

// yearDays holds the days from 1970-01-01 to January 1 of every year from
// minYear to maxYear; immutable once built.
var yearDays = func() []int32 {
	t := make([]int32, maxYear-minYear+1)
	for y := minYear; y <= maxYear; y++ {
		t[y-minYear] = int32(daysFromCivil(y, 1, 1))
	}
	return t
}()

// daysBefore is the number of days in a common year before each month.
var daysBefore = [...]int64{1: 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334}

// daysSinceEpoch is daysFromCivil for a valid date with minYear <= y <=
// maxYear, from tables.
func daysSinceEpoch(y, m, d int) int64 {
	n := int64(yearDays[y-minYear]) + daysBefore[m] + int64(d-1)
	if m > 2 && isLeap(y) {
		n++
	}
	return n
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm); y must not be negative.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
