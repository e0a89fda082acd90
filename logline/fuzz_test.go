package logline

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// within reports whether s is empty or lies inside one of the inputs.
func within(s []byte, ins ...[]byte) bool {
	if len(s) == 0 {
		return true
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	for _, in := range ins {
		if len(in) == 0 {
			continue
		}
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(in)))
		if p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(in)) {
			return true
		}
	}
	return false
}

func FuzzParse(f *testing.F) {
	seeds := [][3]string{
		{"heroku", "router", specRouter},
		{"heroku", "router", specRouterError},
		{"heroku", "router", `at=error code=H10 desc="App crashed" method=GET path="/favicon.ico" dyno= connect= service= status=503 bytes=`},
		{"heroku", "router", `at=info path="/a b\"c" status=200 service=18.5ms`},
		{"heroku", "web.1", specLoad},
		{"heroku", "web.1", specMemory},
		{"heroku", "web.1", "Error R14 (Memory quota exceeded)"},
		{"heroku", "web.1", "Process running mem=1028M(103.3%)"},
		{"heroku", "web.1", "State changed from up to crashed"},
		{"heroku", "web.1", "Process exited with status 143"},
		{"heroku", "logplex", specLogLoss},
		{"app", "web.3", "State changed from starting to up"},
		{"heroku", "router", `at=error code=H123 method=GET status=503`},
		{"app", "api", "Scaled to web@2:Standard-1X worker@1:Standard-2X by user foo@example.com"},
		{"app", "web.1", specCustom + " source=web.1"},
		{"app", "web.1", "count#a count#b= measure#c=1e3ms sample#d=-.5%"},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]), []byte(s[2]))
	}
	// dirty is reused across inputs, as callers do, and must always end up
	// equal to a freshly zeroed Line.
	var dirty Line
	dirtyMsg := []byte("source=x " + strings.Repeat("count#x=1 ", MaxCustom+2))
	f.Fuzz(func(t *testing.T, app, proc, msg []byte) {
		checkParse(t, app, proc, msg, &dirty, dirtyMsg)
	})
}

// checkParse parses msg as from app and proc and checks every invariant
// of the answer: a reused Line ends up equal to a fresh one, errors are
// *Error, every field aliases the input, numbers are finite and in range,
// codes have their documented shape.
func checkParse(t *testing.T, app, proc, msg []byte, dirty *Line, dirtyMsg []byte) {
	t.Helper()
	_ = Parse([]byte("app"), []byte("web.1"), dirtyMsg, dirty)
	var l Line
	err := Parse(app, proc, msg, &l)
	err2 := Parse(app, proc, msg, dirty)
	if err != err2 || !reflect.DeepEqual(&l, dirty) {
		t.Fatalf("reused Line differs from fresh one:\n%s\n%s", render(&l), render(dirty))
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T is not *Error", err)
		}
		return
	}
	in := func(name string, s []byte) {
		if !within(s, msg, proc, web) {
			t.Fatalf("%s %q does not alias the input", name, s)
		}
	}
	finite := func(v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("non-finite value %v", v)
		}
	}
	switch l.Kind {
	case KindRouter:
		r := &l.Router
		if r.Status > 0 && !bytes.Contains(msg, []byte(strconv.Itoa(r.Status))) {
			t.Fatalf("status %d not in %q", r.Status, msg)
		}
		if r.Status == 0 && string(r.At) != "error" {
			t.Fatalf("status 0 with at=%q", r.At)
		}
		if len(r.ProcessType) == 0 {
			t.Fatalf("empty process type")
		}
		if len(r.Code) > 0 && (len(r.Code) != 3 || !errorCode(r.Code, 'H', 10, 99)) {
			t.Fatalf("router code %q", r.Code)
		}
		for _, s := range [][]byte{r.At, r.Code, r.Dyno, r.ProcessType, r.Method, r.Path, r.Host} {
			in("router field", s)
		}
		finite(r.ConnectMS)
		finite(r.ServiceMS)
		if r.ConnectMS < 0 || r.ServiceMS < 0 || r.Bytes < 0 {
			t.Fatalf("negative router values")
		}
	case KindRuntime:
		if l.Runtime.Has == 0 || l.Runtime.Has >= 1<<NumGauges {
			t.Fatalf("Has = %b", l.Runtime.Has)
		}
		for _, v := range l.Runtime.Values {
			finite(v)
		}
		in("source", l.Runtime.Source)
		in("dyno", l.Runtime.Dyno)
		in("process type", l.Runtime.ProcessType)
	case KindDyno:
		if l.Dyno.Event == DynoNone || (l.Dyno.Event == DynoError) != (len(l.Dyno.Code) > 0) {
			t.Fatalf("dyno event %d code %q", l.Dyno.Event, l.Dyno.Code)
		}
		in("code", l.Dyno.Code)
		if len(l.Dyno.Code) > 0 && (len(l.Dyno.Code) != 3 || !errorCode(l.Dyno.Code, 'R', 10, 99)) {
			t.Fatalf("dyno code %q", l.Dyno.Code)
		}
	case KindAPI:
		if l.API.Event == APINone {
			t.Fatalf("api without event")
		}
	case KindLogLoss:
		if l.LogLoss.Dropped < 0 || len(l.LogLoss.Code) != 3 || !errorCode(l.LogLoss.Code, 'L', 10, 15) {
			t.Fatalf("log loss %+v", l.LogLoss)
		}
	case KindCustom:
		if l.NumCustom < 1 || l.NumCustom > MaxCustom {
			t.Fatalf("NumCustom %d", l.NumCustom)
		}
		for _, c := range l.Custom[:l.NumCustom] {
			finite(c.Value)
			if len(c.Name) == 0 || c.Kind < CustomCount || c.Kind > CustomMeasure {
				t.Fatalf("custom %+v", c)
			}
			in("name", c.Name)
			in("unit", c.Unit)
		}
		in("custom source", l.CustomSource)
	}
}

// fuzzKind fuzzes the parser of one line kind: app and proc are fixed to
// what Logplex sends for that kind, so every input reaches that parser.
func fuzzKind(f *testing.F, app, proc string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var dirty Line
	dirtyMsg := []byte("source=x " + strings.Repeat("count#x=1 ", MaxCustom+2))
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkParse(t, []byte(app), []byte(proc), msg, &dirty, dirtyMsg)
	})
}

// FuzzParseRouter fuzzes router lines (heroku[router]).
func FuzzParseRouter(f *testing.F) {
	fuzzKind(f, "heroku", "router", specRouter, specRouterError,
		`at=error code=H10 desc="App crashed" method=GET path="/favicon.ico" dyno= connect= service= status=503 bytes=`,
		`at=info path="/a b\"c" status=200 service=18.5ms connect=0.5s`,
		`at=error code=H12 desc="Request timeout" method=GET path=/ dyno=web.1 connect=0ms service=30000ms status=503 bytes=0`)
}

// FuzzParseRuntime fuzzes log-runtime-metrics samples (heroku[web.1]).
func FuzzParseRuntime(f *testing.F) {
	fuzzKind(f, "heroku", "web.1", specLoad, specMemory,
		"source=web.1 dyno=heroku.1.a sample#memory_total=1.5GB sample#load_avg_1m=0",
		"Error R14 (Memory quota exceeded)", "Process running mem=1028M(103.3%)")
}

// FuzzParseCustom fuzzes l2met custom metrics in an app's own lines.
func FuzzParseCustom(f *testing.F) {
	fuzzKind(f, "app", "web.1", specCustom, specCustom+" source=web.1",
		"count#a count#b= measure#c=1e3ms sample#d=-.5%",
		"measure#x=1.5e308 count#y=-0 sample#z=NaN")
}
