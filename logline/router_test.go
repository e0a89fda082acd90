package logline

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// checkRouterFast checks that scanRouterFast, when it accepts msg, reads
// exactly what the general scanRouter reads: the same values, aliasing
// the same bytes.
func checkRouterFast(t *testing.T, msg []byte) (accepted bool) {
	t.Helper()
	var fast, slow Router
	status, ok := scanRouterFast(msg, &fast)
	slowStatus := scanRouter(msg, &slow)
	if !ok {
		return false
	}
	same := sameSlice(status, slowStatus) &&
		sameSlice(fast.At, slow.At) && sameSlice(fast.Code, slow.Code) &&
		sameSlice(fast.Dyno, slow.Dyno) && sameSlice(fast.ProcessType, slow.ProcessType) &&
		sameSlice(fast.Method, slow.Method) && sameSlice(fast.Path, slow.Path) &&
		sameSlice(fast.Host, slow.Host) &&
		fast.HasConnect == slow.HasConnect && fast.HasService == slow.HasService &&
		sameFloat(fast.ConnectMS, slow.ConnectMS) && sameFloat(fast.ServiceMS, slow.ServiceMS) &&
		fast.Status == slow.Status && fast.Bytes == slow.Bytes
	if !same {
		t.Fatalf("%q:\nfast    %+v status %q\ngeneral %+v status %q", msg, fast, status, slow, slowStatus)
	}
	return true
}

func sameFloat(a, b float64) bool { return a == b || (a != a && b != b) }

var routerKeys = []string{"at", "code", "desc", "method", "path", "host", "request_id", "fwd", "dyno", "connect", "service", "status", "bytes", "protocol"}

// routerLine writes values under the router's keys in Heroku's order;
// an empty key name in skip leaves that pair out.
func routerLine(vals []string, skip map[string]bool) string {
	var b strings.Builder
	for i, k := range routerKeys {
		if skip[k] {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + vals[i])
	}
	return b.String()
}

var routerFastSeeds = []string{
	specRouter, specRouterError,
	`at=info method=POST path="/a b\"c" host=x.herokuapp.com request_id=1 fwd="1.2.3.4,5.6.7.8" dyno= connect= service= status=200 bytes= protocol=http`,
	`at=info method=GET path=/ host=h request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=200 bytes=3 protocol=https `,
	`at=info method=GET path=/ host=h request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=200 bytes=3 status=500`,
	`at=info method=GET path=/ host=h request_id=r fwd="f"dyno=web.1 connect=1ms service=2ms status=200 bytes=3`,
	`at=info method=GET path=/ host=h request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=200 bytes=3 protocol="https`,
	`at=info method=GET path=/ host=h	request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=200 bytes=3`,
	`at=info method=GET path=/ host=h request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=200  bytes=3`,
	`at=info method=GET path=/ host=h request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=200 bytes=3 code=H12`,
	` at=info method=GET path=/ host=h request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=200 bytes=3`,
	`at=error code=H12 method=GET path=/ host=h request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=503 bytes=3`,
	`at=error desc="x" method=GET path=/ host=h request_id=r fwd="f" dyno=web.1 connect=1ms service=2ms status=503 bytes=3`,
}

func TestRouterFastMatchesGeneral(t *testing.T) {
	accepted := 0
	for _, s := range routerFastSeeds {
		for i := range len(s) + 1 {
			for _, m := range []string{s[:i], s[i:], s[:i] + " " + s[i:], s[:i] + "\t" + s[i:], s[:i] + `"` + s[i:], s[:i] + "=" + s[i:], s[:i] + `\` + s[i:]} {
				if checkRouterFast(t, []byte(m)) {
					accepted++
				}
			}
		}
	}
	vals := []string{"info", "H12", `"Request timeout"`, "GET", `"/x y"`, "h", "r", `"1.2.3.4"`, "web.1", "1ms", "2.5s", "200", "13", "https"}
	for _, k := range routerKeys {
		for _, k2 := range routerKeys {
			if checkRouterFast(t, []byte(routerLine(vals, map[string]bool{k: true, k2: true}))) {
				accepted++
			}
		}
	}
	// The canonical forms must take the fast path, or it saves nothing.
	for _, s := range []string{specRouter, specRouterError, routerLine(vals, nil)} {
		var r Router
		if _, ok := scanRouterFast([]byte(s), &r); !ok {
			t.Errorf("fast path refused %q", s)
		}
	}
	if accepted < 100 {
		t.Errorf("only %d variants took the fast path", accepted)
	}
}

// FuzzRouterFast checks the fast path against the general scanner on
// whole messages.
func FuzzRouterFast(f *testing.F) {
	for _, s := range routerFastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) { checkRouterFast(t, msg) })
}

// FuzzRouterFastValues fills the router's keys, in order, with fuzzed
// values, so that most inputs have the fast path's shape.
func FuzzRouterFastValues(f *testing.F) {
	f.Add("info", "", "", "GET", "/", "h", "r", `"1.2.3.4"`, "web.1", "1ms", "18ms", "200", "13", "https", uint16(0))
	f.Add("error", "H12", `"Request timeout"`, "GET", `"/a\"b"`, "h", "r", `"f"`, "", "0ms", "30000ms", "503", "0", "", uint16(1<<13))
	f.Fuzz(func(t *testing.T, at, code, desc, method, path, host, reqID, fwd, dyno, connect, service, status, bytes, protocol string, skip uint16) {
		vals := []string{at, code, desc, method, path, host, reqID, fwd, dyno, connect, service, status, bytes, protocol}
		omit := map[string]bool{}
		for i, k := range routerKeys {
			if skip&(1<<i) != 0 {
				omit[k] = true
			}
		}
		checkRouterFast(t, []byte(routerLine(vals, omit)))
	})
}

func checkParseMS(t *testing.T, b []byte) {
	t.Helper()
	v, ok := parseMS(b)
	rv, rok := parseDuration(b)
	if ok != rok || math.Float64bits(v) != math.Float64bits(rv) {
		t.Fatalf("parseMS(%q) = %v, %v; without the fast path %v, %v", b, v, ok, rv, rok)
	}
}

var parseMSSeeds = []string{"", "0", "0ms", "18ms", "007ms", "18", "18.5ms", "1s", "2us", "-1ms", "+1ms",
	"1m", "1mss", "ms", "99999999999999ms", "999999999999999ms", "9999999999999999", "12345678901234567890ms", "1e3ms", "1 ms"}

func TestParseMSFastPath(t *testing.T) {
	for _, s := range parseMSSeeds {
		checkParseMS(t, []byte(s))
	}
	for i := range 100000 {
		checkParseMS(t, strconv.AppendInt(nil, int64(i), 10))
		checkParseMS(t, append(strconv.AppendInt(nil, int64(i)*1234567, 10), "ms"...))
	}
}

func FuzzParseMS(f *testing.F) {
	for _, s := range parseMSSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParseMS)
}
