package logplex

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
	var ok bool
	if h.Hostname, i, ok = field(b, i); !ok {
		return errHostname
	}
	if h.AppName, i, ok = field(b, i); !ok {
		return errAppName
	}
	if h.ProcID, i, ok = field(b, i); !ok {
		return errProcID
	}
	if h.MsgID, i, ok = field(b, i); !ok {
		return errMsgID
	}
	// i is just past the space after MSGID, or at the end.
	rest := skipStructuredData(b[i:])
	if len(rest) >= 3 && rest[0] == 0xEF && rest[1] == 0xBB && rest[2] == 0xBF {
		rest = rest[3:]
	}
	h.Msg = rest
	return nil
}

// field reads one non-empty header field starting at i, which must end in a
// space or at the end of b. It returns the field and the index just past
// the space that ends it.
func field(b []byte, i int) ([]byte, int, bool) {
	j := i
	for j < len(b) && b[j] != ' ' {
		j++
	}
	if j == i {
		return nil, i, false
	}
	f := b[i:j:j]
	if j < len(b) {
		j++
	}
	return f, j, true
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
	year := digits4(b[0:4])
	month := digits2(b[5:7])
	day := digits2(b[8:10])
	hour := digits2(b[11:13])
	minute := digits2(b[14:16])
	sec := digits2(b[17:19])
	if year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || sec < 0 ||
		b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') ||
		b[13] != ':' || b[16] != ':' {
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
		i++
		s := i
		for i < len(b) && isDigit(b[i]) {
			if i-s < 9 {
				frac = frac*10 + int64(b[i]-'0')
			}
			i++
		}
		if i == s {
			return 0, 0, errTimestamp
		}
		if n := i - s; n < 9 {
			frac *= pow10[9-n] // digits beyond the ninth are ignored
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

func digits2(b []byte) int {
	c0, c1 := b[0]-'0', b[1]-'0'
	if c0 > 9 || c1 > 9 {
		return -1
	}
	return int(c0)*10 + int(c1)
}

func digits4(b []byte) int {
	hi, lo := digits2(b[0:2]), digits2(b[2:4])
	if hi < 0 || lo < 0 {
		return -1
	}
	return hi*100 + lo
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
