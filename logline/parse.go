package logline

import "bytes"

// Error reports a line that claims to be a known kind but is broken in a
// way that makes it uncountable (for example a router line whose status is
// not a number). Callers count such lines as rejected, by Reason.
//
// The values are shared and must not be modified; compare them with
// errors.As. Reason is short and constant, usable as a metric label.
type Error struct {
	Kind   Kind // the kind the line claimed to be
	Reason string
}

func (e *Error) Error() string {
	return "logline: bad " + kindNames[e.Kind] + " line: " + e.Reason
}

var kindNames = [...]string{
	KindUnknown: "unknown",
	KindRouter:  "router",
	KindRuntime: "runtime",
	KindDyno:    "dyno",
	KindAPI:     "api",
	KindLogLoss: "log loss",
	KindCustom:  "custom",
}

// The errors Parse returns. They are preallocated so that Parse never
// allocates, not even on bad input.
var (
	errBadStatus     = &Error{KindRouter, "bad status"}
	errNoStatus      = &Error{KindRouter, "missing status"}
	errNoSample      = &Error{KindRuntime, "no parsable sample"}
	errBadExitStatus = &Error{KindDyno, "bad exit status"}
)

// web is the process type of router lines that no dyno served.
var web = []byte("web")

// Parse classifies one message and fills out with what it says. appName and
// procID are the syslog APP-NAME and PROCID (`heroku` / `router`, `app` /
// `web.1`, ...); msg is the message text. out is reset first, so it can be
// reused between calls; only the part of out that matches out.Kind is
// meaningful, and every byte slice in it aliases msg or procID (except the
// constant process type "web", which must not be modified).
//
// Classification (SPEC §1.3):
//
//   - heroku router: KindRouter. A line without a numeric status counts only
//     when at=error (Status 0); a request line (at= or method=) without one
//     is an *Error; other router text is KindUnknown. Code is kept only when
//     it is an H code H10–H99; any other code= value is dropped (Code
//     empty) while the request still counts.
//   - heroku <dyno> with "sample#": KindRuntime. Memory values are converted
//     to bytes: B or no unit = bytes; kB, KB, K, KiB = 1024; MB, M, MiB =
//     1,048,576; GB, G, GiB = 1024³; TB, T, TiB = 1024⁴. A sample with any
//     other unit (or a load average with a unit) is skipped. When the line
//     names known gauges but none parses it is an *Error; a line with only
//     unknown sample# names is KindUnknown.
//   - heroku <dyno> otherwise: KindDyno for the R-code (R10–R99) and
//     lifecycle lines listed in DynoEvent, else KindUnknown.
//   - heroku <any procid but router> with "Error L10" … "Error L15":
//     KindLogLoss. Dropped is the number right before " message(s)", or 1
//     when there is none. Other L codes are KindUnknown.
//   - app api: KindAPI for release, deploy, scale and config lines, else
//     KindUnknown.
//   - app <dyno> (PROCID such as web.3 or worker.1: a process type, a dot,
//     digits) whose message is an exact lifecycle phrase, as in SPEC §1.1's
//     example: KindDyno, as from heroku <dyno>. The phrases are messages
//     starting with "State changed from ", "Starting process with command ",
//     "Process exited with status <n>", "Process running mem=" or
//     "Error Rnn (", and the whole messages "Stopping all processes with
//     SIGTERM", "Restarting" and "Cycling". Anything else falls through to
//     the custom-metrics rule below.
//   - any other line (app output, and senders with their own APP-NAME such
//     as log-shuttle): KindCustom when it carries count#/measure#/sample#
//     metrics, else KindUnknown. A metric whose value is not a number
//     (optionally followed by a unit made of letters, '%', '/' or '_') is
//     skipped; `count#name` without a value counts 1, as in l2met.
//
// Unknown keys are ignored. Parse never allocates.
func Parse(appName, procID, msg []byte, out *Line) error {
	out.reset()
	if string(appName) == "heroku" {
		if string(procID) == "router" {
			out.filled = partRouter
			return parseRouter(msg, out)
		}
		if isLogLoss(msg) {
			out.filled = partLogLoss
			parseLogLoss(msg, out)
			return nil
		}
		if !isDynoName(procID) || string(procID) == "logplex" {
			return nil
		}
		if bytes.Contains(msg, []byte("sample#")) {
			out.filled = partRuntime
			return parseRuntime(procID, msg, out)
		}
		out.filled = partDyno
		return parseDyno(procID, msg, out)
	}
	if string(appName) == "app" {
		if string(procID) == "api" {
			out.filled = partAPI
			parseAPI(msg, out)
			return nil
		}
		// The phrase first: its first byte rules out most app output.
		if isLifecyclePhrase(msg) && isDynoProc(procID) {
			out.filled = partDyno
			if err := parseDyno(procID, msg, out); err == nil && out.Kind == KindDyno {
				return nil
			}
			out.Kind = KindUnknown
			out.Dyno = Dyno{}
		}
	}
	out.filled |= partCustom
	parseCustom(msg, out)
	return nil
}

// isDynoProc reports whether p is a dyno name as Logplex writes it in
// PROCID: a process type (a letter, then letters, digits, '_' or '-'), a
// dot and the dyno number (web.3, worker.1, run.1234).
func isDynoProc(p []byte) bool {
	dot := bytes.IndexByte(p, '.')
	if dot < 1 || dot == len(p)-1 {
		return false
	}
	if c := p[0] | 0x20; c < 'a' || c > 'z' {
		return false
	}
	for _, c := range p[1:dot] {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	for _, c := range p[dot+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isLifecyclePhrase reports whether msg is one of the exact dyno
// lifecycle phrases of SPEC §1.3 item 3, as the platform writes them. An
// app's own output that merely starts with a similar word ("Restarting
// worker pool", "Error Reading file") is not.
func isLifecyclePhrase(msg []byte) bool {
	// Every phrase starts with one of these bytes: most app output is
	// told apart by its first byte, without lifecyclePrefixes'
	// comparisons and trim (with the PROCID check they were 3.6% of
	// BenchmarkFoldBackfill's instructions, a quarter of its lines
	// being app output).
	if len(msg) == 0 {
		return false
	}
	switch msg[0] {
	case 'S', 'P', 'E', 'R', 'C':
		return lifecyclePrefixes(msg)
	}
	return false
}

// lifecyclePrefixes is isLifecyclePhrase without its first-byte check:
// the phrases' prefixes and whole messages compared one by one.
func lifecyclePrefixes(msg []byte) bool {
	switch {
	case bytes.HasPrefix(msg, []byte("State changed from ")),
		bytes.HasPrefix(msg, []byte("Starting process with command ")),
		bytes.HasPrefix(msg, []byte("Process exited with status ")),
		bytes.HasPrefix(msg, []byte("Process running mem=")):
		return true
	case bytes.HasPrefix(msg, []byte("Error ")):
		// "Error R14 (Memory quota exceeded)"
		c := msg[len("Error "):]
		return errorCode(c, 'R', 10, 99) && len(c) > 4 && c[3] == ' ' && c[4] == '('
	}
	switch string(bytes.TrimRight(msg, " \t\r\n")) {
	case "Stopping all processes with SIGTERM", "Restarting", "Cycling":
		return true
	}
	return false
}

// errorCode reports whether b starts with a Heroku error code: letter and
// two digits forming a number in [lo, hi], followed by the end of b or by
// ' ', '(' or ':'. Codes outside the documented families are not counted,
// so hostile input cannot invent unbounded series keys.
func errorCode(b []byte, letter byte, lo, hi int) bool {
	if len(b) < 3 || b[0] != letter || b[1] < '0' || b[1] > '9' || b[2] < '0' || b[2] > '9' {
		return false
	}
	if n := int(b[1]-'0')*10 + int(b[2]-'0'); n < lo || n > hi {
		return false
	}
	return len(b) == 3 || b[3] == ' ' || b[3] == '(' || b[3] == ':'
}

// reset clears what a previous Parse may have set: only the parts it
// filled (most lines fill one, and clearing all of a Line's parts was a
// tenth of a router line's parse), and of the Custom array only the
// entries that were in use.
func (l *Line) reset() {
	f := l.filled
	l.Kind = KindUnknown
	l.filled = 0
	if f == 0 {
		return
	}
	if f&partRouter != 0 {
		l.Router = Router{}
	}
	if f&partRuntime != 0 {
		l.Runtime = Runtime{}
	}
	if f&partDyno != 0 {
		l.Dyno = Dyno{}
	}
	if f&partAPI != 0 {
		l.API = API{}
	}
	if f&partLogLoss != 0 {
		l.LogLoss = LogLoss{}
	}
	if f&partCustom != 0 {
		n := l.NumCustom
		if n > MaxCustom {
			n = MaxCustom
		}
		if n > 0 {
			clear(l.Custom[:n])
		}
		l.NumCustom = 0
		l.CustomSource = nil
		l.CustomDropped = 0
	}
}

func parseRouter(msg []byte, out *Line) error {
	r := &out.Router
	status, ok := scanRouterFast(msg, r)
	if !ok {
		*r = Router{}
		status = scanRouter(msg, r)
	}
	if len(status) > 0 {
		n, ok := parseUint(status)
		if !ok || n < 100 || n > 999 {
			return errBadStatus
		}
		r.Status = int(n)
	} else if string(r.At) != "error" {
		if r.At != nil || r.Method != nil {
			return errNoStatus
		}
		return nil // some other router text: nothing to count
	}
	if len(r.Code) != 3 || !errorCode(r.Code, 'H', 10, 99) {
		r.Code = nil // not an H code: the request counts, the code does not
	}
	r.ProcessType = processType(r.Dyno)
	out.Kind = KindRouter
	return nil
}

// scanRouter reads the fields of a router line that Parse keeps into r,
// whatever their order, and returns the status value.
func scanRouter(msg []byte, r *Router) (status []byte) {
	s := scanner{b: msg}
	for s.next() {
		switch string(s.key) {
		case "at":
			r.At = s.val
		case "code":
			r.Code = s.val
		case "method":
			r.Method = s.val
		case "path":
			r.Path = s.val
		case "host":
			r.Host = s.val
		case "dyno":
			r.Dyno = s.val
		case "connect":
			r.ConnectMS, r.HasConnect = parseMS(s.val)
		case "service":
			r.ServiceMS, r.HasService = parseMS(s.val)
		case "status":
			status = s.val
		case "bytes":
			if n, ok := parseUint(s.val); ok {
				r.Bytes = n
			}
		}
	}
	return status
}

// scanRouterFast is scanRouter for a line exactly in the form Heroku's
// router writes:
//
//	at=V [code=V [desc=V]] method=V path=V host=V request_id=V fwd=V
//	dyno=V connect=V service=V status=V bytes=V [protocol=V]
//
// with one space between pairs and nothing after the last value, where
// each V is a value as scanner reads it (quoted or not). It reports false
// for any other line, having perhaps set some of r; the caller then clears
// r and uses scanRouter. On a line of this form the scanner would find
// exactly these keys in this order, each once, with the same values (a
// key is followed by '=' and holds no space, tab or '=', and one space
// separates a value from the next key), so both set r to the same.
// Matching the expected keys in place saves scanning and switching on
// every key, which was most of the cost of a router line.
func scanRouterFast(b []byte, r *Router) (status []byte, ok bool) {
	if len(b) < 3 || string(b[:3]) != "at=" {
		return nil, false
	}
	var i int
	r.At, i = scanValue(b, 3)
	if j := afterKey(b, i, " code=", ""); j >= 0 {
		r.Code, i = scanValue(b, j)
		if j := afterKey(b, i, " desc=", ""); j >= 0 {
			_, i = scanValue(b, j)
		}
	}
	var v []byte
	if i = afterKey(b, i, " method=", ""); i < 0 {
		return nil, false
	}
	r.Method, i = scanValue(b, i)
	if i = afterKey(b, i, " path=", ""); i < 0 {
		return nil, false
	}
	r.Path, i = scanValue(b, i)
	if i = afterKey(b, i, " host=", ""); i < 0 {
		return nil, false
	}
	r.Host, i = scanValue(b, i)
	if i = afterKey(b, i, " request", "_id="); i < 0 {
		return nil, false
	}
	_, i = scanValue(b, i)
	if i = afterKey(b, i, " fwd=", ""); i < 0 {
		return nil, false
	}
	_, i = scanValue(b, i)
	if i = afterKey(b, i, " dyno=", ""); i < 0 {
		return nil, false
	}
	r.Dyno, i = scanValue(b, i)
	if i = afterKey(b, i, " connect", "="); i < 0 {
		return nil, false
	}
	v, i = scanValue(b, i)
	r.ConnectMS, r.HasConnect = parseMS(v)
	if i = afterKey(b, i, " service", "="); i < 0 {
		return nil, false
	}
	v, i = scanValue(b, i)
	r.ServiceMS, r.HasService = parseMS(v)
	if i = afterKey(b, i, " status=", ""); i < 0 {
		return nil, false
	}
	status, i = scanValue(b, i)
	if i = afterKey(b, i, " bytes=", ""); i < 0 {
		return nil, false
	}
	v, i = scanValue(b, i)
	if n, ok := parseUint(v); ok {
		r.Bytes = n
	}
	if j := afterKey(b, i, " protoco", "l="); j >= 0 {
		_, i = scanValue(b, j)
	}
	return status, i == len(b)
}

// afterKey is a step of scanRouterFast: when b[i:] starts with the key
// k1+k2 (" method=", " request_id=", each with its '='), it returns the
// index after it, else -1. The key comes in two parts of at most 8 bytes
// each: once afterKey is inlined the compiler compares a constant of up
// to 8 bytes with one load, where it calls memequal for a longer one.
func afterKey(b []byte, i int, k1, k2 string) int {
	n := len(k1) + len(k2)
	if len(b)-i < n || string(b[i:i+len(k1)]) != k1 || string(b[i+len(k1):i+n]) != k2 {
		return -1
	}
	return i + n
}

// parseMS parses a router duration such as "18ms", "18.5ms" or "18" into
// milliseconds; "s" and "us"/"µs" are converted too.
func parseMS(b []byte) (float64, bool) {
	// The router writes whole milliseconds ("18ms"): up to 15 digits are
	// below 2^53, so the value is exact and the same as parseNumber's.
	var m uint64
	d := 0
	for d < len(b) && d < 15 && b[d] >= '0' && b[d] <= '9' {
		m = m*10 + uint64(b[d]-'0')
		d++
	}
	if d > 0 && d < 15 && (d == len(b) || string(b[d:]) == "ms") {
		return float64(m), true
	}
	return parseDuration(b)
}

// parseDuration is parseMS for any number and unit.
func parseDuration(b []byte) (float64, bool) {
	v, n, ok := parseNumber(b)
	if !ok || v < 0 {
		return 0, false
	}
	switch string(b[n:]) {
	case "", "ms":
		return v, true
	case "s":
		return v * 1000, true
	case "us", "µs":
		return v / 1000, true
	}
	return 0, false
}

// processType is the part of a dyno name before the first dot, "web" when
// that is empty (no dyno, or a malformed name such as ".1"), so a process
// type is never empty.
func processType(dyno []byte) []byte {
	i := 0 // a loop, not bytes.IndexByte: dyno names are a few bytes
	for i < len(dyno) && dyno[i] != '.' {
		i++
	}
	if i == 0 {
		return web
	}
	return dyno[:i:i]
}

// isDynoName reports whether p looks like a dyno or process name: a letter,
// then letters, digits, '.', '_' or '-' (web.1, worker.2, run.1234,
// scheduler.1, release.42).
func isDynoName(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	if c := p[0] | 0x20; c < 'a' || c > 'z' {
		return false
	}
	for _, c := range p {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func parseRuntime(procID, msg []byte, out *Line) error {
	rt := &out.Runtime
	known := false
	s := scanner{b: msg}
	for s.next() {
		var g Gauge
		mem := true
		switch string(s.key) {
		case "source":
			rt.Source = s.val
			continue
		case "dyno":
			rt.Dyno = s.val
			continue
		case "sample#load_avg_1m":
			g, mem = GaugeLoad1m, false
		case "sample#load_avg_5m":
			g, mem = GaugeLoad5m, false
		case "sample#load_avg_15m":
			g, mem = GaugeLoad15m, false
		case "sample#memory_total":
			g = GaugeMemTotal
		case "sample#memory_rss":
			g = GaugeMemRSS
		case "sample#memory_cache":
			g = GaugeMemCache
		case "sample#memory_swap":
			g = GaugeMemSwap
		case "sample#memory_quota":
			g = GaugeMemQuota
		default:
			continue
		}
		known = true
		v, n, ok := parseNumber(s.val)
		if !ok {
			continue
		}
		unit := s.val[n:]
		if mem {
			m, ok := byteMultiplier(unit)
			if !ok {
				continue
			}
			v *= m
		} else if len(unit) != 0 {
			continue
		}
		rt.Values[g] = v
		rt.Has |= 1 << g
	}
	if rt.Has == 0 {
		if known {
			return errNoSample
		}
		return nil
	}
	if len(rt.Source) == 0 {
		rt.Source = procID
	}
	rt.ProcessType = processType(rt.Source)
	out.Kind = KindRuntime
	return nil
}

// byteMultiplier converts a memory unit to bytes (binary multiples, so MB
// is 1,048,576 as Heroku means it). No unit means bytes.
func byteMultiplier(unit []byte) (float64, bool) {
	switch string(unit) {
	case "", "B", "b", "bytes":
		return 1, true
	case "kB", "KB", "kb", "K", "k", "KiB":
		return 1 << 10, true
	case "MB", "mb", "M", "MiB":
		return 1 << 20, true
	case "GB", "gb", "G", "GiB":
		return 1 << 30, true
	case "TB", "tb", "T", "TiB":
		return 1 << 40, true
	}
	return 0, false
}

func parseDyno(procID, msg []byte, out *Line) error {
	d := &out.Dyno
	switch {
	case bytes.HasPrefix(msg, []byte("Error R")):
		code := msg[len("Error "):]
		if !errorCode(code, 'R', 10, 99) {
			return nil // not an R code: ordinary text
		}
		d.Event = DynoError
		d.Code = code[:3:3]
	case bytes.HasPrefix(msg, []byte("Process running mem=")):
		d.Event = DynoMemory
	case bytes.HasPrefix(msg, []byte("State changed from ")):
		d.Event = DynoState
		rest := msg[len("State changed from "):]
		if i := bytes.Index(rest, []byte(" to ")); i >= 0 {
			to := bytes.TrimRight(rest[i+len(" to "):], " \t.")
			if string(to) == "crashed" {
				d.Event = DynoCrash
			}
		}
	case bytes.HasPrefix(msg, []byte("Restarting")):
		d.Event = DynoRestart
	case bytes.HasPrefix(msg, []byte("Cycling")):
		d.Event = DynoCycling
	case bytes.HasPrefix(msg, []byte("Stopping ")):
		d.Event = DynoStopping
	case bytes.HasPrefix(msg, []byte("Process exited with status ")):
		n, ok := leadingUint(msg[len("Process exited with status "):])
		if !ok || n > 1<<31 {
			return errBadExitStatus
		}
		d.Event = DynoExit
		d.ExitStatus = int(n)
	case bytes.HasPrefix(msg, []byte("Starting process with command")):
		d.Event = DynoStart
	default:
		return nil
	}
	d.Source = procID
	d.ProcessType = processType(procID)
	d.Detail = msg
	out.Kind = KindDyno
	return nil
}

func parseAPI(msg []byte, out *Line) {
	var ev APIEvent
	switch {
	case bytes.HasPrefix(msg, []byte("Release v")):
		ev = APIRelease
	case bytes.HasPrefix(msg, []byte("Deploy ")):
		ev = APIDeploy
	case bytes.HasPrefix(msg, []byte("Scaled to ")), bytes.HasPrefix(msg, []byte("Scale to ")):
		ev = APIScale
	case (bytes.HasPrefix(msg, []byte("Set ")) || bytes.HasPrefix(msg, []byte("Remove ")) ||
		bytes.HasPrefix(msg, []byte("Unset ")) || bytes.HasPrefix(msg, []byte("Update "))) &&
		bytes.Contains(msg, []byte(" config var")):
		ev = APIConfig
	default:
		return
	}
	out.API = API{Event: ev, Detail: msg}
	out.Kind = KindAPI
}

// isLogLoss reports whether msg starts with "Error L10" … "Error L15".
func isLogLoss(msg []byte) bool {
	return bytes.HasPrefix(msg, []byte("Error ")) && errorCode(msg[len("Error "):], 'L', 10, 15)
}

func parseLogLoss(msg []byte, out *Line) {
	code := msg[len("Error "):]
	out.LogLoss.Code = code[:3:3]
	out.LogLoss.Dropped = 1
	rest := code[3:]
	for {
		j := bytes.Index(rest, []byte(" message"))
		if j < 0 {
			break
		}
		k := j
		for k > 0 && rest[k-1] >= '0' && rest[k-1] <= '9' {
			k--
		}
		if k < j && (k == 0 || rest[k-1] == ' ') {
			if n, ok := parseUint(rest[k:j]); ok {
				out.LogLoss.Dropped = n
			}
			break
		}
		rest = rest[j+1:]
	}
	out.Kind = KindLogLoss
}

func parseCustom(msg []byte, out *Line) {
	if bytes.IndexByte(msg, '#') < 0 {
		return
	}
	s := scanner{b: msg}
	for s.next() {
		k := s.key
		var kind CustomKind
		switch {
		case bytes.HasPrefix(k, []byte("count#")):
			kind, k = CustomCount, k[len("count#"):]
		case bytes.HasPrefix(k, []byte("measure#")):
			kind, k = CustomMeasure, k[len("measure#"):]
		case bytes.HasPrefix(k, []byte("sample#")):
			kind, k = CustomSample, k[len("sample#"):]
		default:
			if string(k) == "source" && s.hasEq {
				out.CustomSource = s.val
			}
			continue
		}
		if len(k) == 0 {
			continue
		}
		var v float64
		var unit []byte
		if len(s.val) == 0 {
			if kind != CustomCount {
				continue
			}
			v = 1
		} else {
			var n int
			var ok bool
			v, n, ok = parseNumber(s.val)
			if !ok || !isUnit(s.val[n:]) {
				continue
			}
			unit = s.val[n:len(s.val):len(s.val)]
		}
		if out.NumCustom == MaxCustom {
			out.CustomDropped++
			continue
		}
		out.Custom[out.NumCustom] = Custom{Kind: kind, Name: k, Value: v, Unit: unit}
		out.NumCustom++
	}
	if out.NumCustom > 0 {
		out.Kind = KindCustom
	}
}

// isUnit reports whether u can be the unit after a metric value: empty, or
// letters, '%', '/', '_' (ms, MB, req/s, %, µs).
func isUnit(u []byte) bool {
	for _, c := range u {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '%', c == '/', c == '_', c >= 0x80:
		default:
			return false
		}
	}
	return true
}
