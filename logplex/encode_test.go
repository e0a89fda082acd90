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
		var h2 Header
		h2 = h
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
