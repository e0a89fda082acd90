package logplex

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/internal/benchmeter"
)

func TestAppendMessage(t *testing.T) {
	tm := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.FixedZone("", -7*3600))
	tests := []struct {
		host, app, proc, msg string
		want                 string
	}{
		{"host", "app", "web.1", "hello", "<190>1 2024-01-02T10:04:05.123456+00:00 host app web.1 - hello\n"},
		{"host", "app", "web.1", "hello\n", "<190>1 2024-01-02T10:04:05.123456+00:00 host app web.1 - hello\n"},
		{"", "heroku", "router", "at=info status=200", "<190>1 2024-01-02T10:04:05.123456+00:00 - heroku router - at=info status=200\n"},
		{"my host", "app", "web.1", "", "<190>1 2024-01-02T10:04:05.123456+00:00 my_host app web.1 - \n"},
	}
	for _, tt := range tests {
		prefix := []byte("x")
		got := AppendMessage(prefix, tm, tt.host, tt.app, tt.proc, tt.msg)
		want := "x" + strconv.Itoa(len(tt.want)) + " " + tt.want
		if string(got) != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
		// It round-trips through Reader and ParseHeader.
		r := NewReader(got[1:])
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		var h Header
		if err := ParseHeader(m, &h); err != nil {
			t.Fatal(err)
		}
		if h.Time != tm.Truncate(time.Microsecond).UnixNano() || string(h.Msg) != strings.TrimSuffix(tt.msg, "\n") {
			t.Errorf("round trip: %d %q", h.Time, h.Msg)
		}
		h2 := h
		again := AppendFrame(nil, &h2)
		if string(again) != string(got[1:]) {
			t.Errorf("AppendFrame = %q, want %q", again, got[1:])
		}
	}
}

func TestAppendMessageAllocs(t *testing.T) {
	tm := time.Now()
	buf := make([]byte, 0, 4096)
	h := Header{Time: tm.UnixNano(), Hostname: []byte("h"), AppName: []byte("app"), ProcID: []byte("web.1"), Msg: []byte("hello")}
	if a := testing.AllocsPerRun(100, func() {
		buf = AppendMessage(buf[:0], tm, "host", "app", "web.1", "hello world")
	}); a != 0 {
		t.Errorf("AppendMessage: %v allocs", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		buf = AppendFrame(buf[:0], &h)
	}); a != 0 {
		t.Errorf("AppendFrame: %v allocs", a)
	}
}

func BenchmarkAppendMessage(b *testing.B) {
	tm := time.Now()
	buf := make([]byte, 0, 4096)
	m := benchmeter.Start(b)
	for b.Loop() {
		buf = AppendMessage(buf[:0], tm, "host", "heroku", "router", routerMsg)
	}
	b.SetBytes(int64(len(buf)))
	m.Lines(1)
}

// TestAppendTimestampMatchesFormat checks the hand-written timestamp
// against time.Time.AppendFormat, across years, leap days and the
// microsecond digits, in and out of UTC.
func TestAppendTimestampMatchesFormat(t *testing.T) {
	zone := time.FixedZone("x", -7*3600)
	for _, tm := range []time.Time{
		time.Date(2026, 11, 25, 10, 4, 5, 123456789, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999999999, zone),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 1000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(12, 3, 4, 5, 6, 7, 8000, time.UTC),
	} {
		got := string(appendTimestamp(nil, tm))
		want := tm.UTC().Format(TimeLayout)
		if got != want {
			t.Errorf("%v: %q, want %q", tm, got, want)
		}
	}
	for i := int64(0); i < 2000; i++ {
		tm := time.Unix(0, i*7919*int64(time.Hour)+i*104729).UTC()
		if got, want := string(appendTimestamp(nil, tm)), tm.Format(TimeLayout); got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
}

// TestAppendMessageWritesDefaultPRI checks the frame's literal priority
// is DefaultPRI.
func TestAppendMessageWritesDefaultPRI(t *testing.T) {
	var h Header
	r := NewReader(AppendMessage(nil, time.Now(), "h", "a", "p", "m"))
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := ParseHeader(m, &h); err != nil || !strings.HasPrefix(string(m), "<"+strconv.Itoa(DefaultPRI)+">1 ") {
		t.Fatalf("%q: %v", m, err)
	}
}
