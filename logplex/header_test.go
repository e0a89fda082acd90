package logplex

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/internal/benchmeter"
)

func ts(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

type headerWant struct {
	time                   int64
	host, app, proc, msgID string
	msg                    string
}

func checkHeader(t *testing.T, h *Header, w headerWant) {
	t.Helper()
	if h.Time != w.time {
		t.Errorf("Time = %d (%s), want %d (%s)", h.Time, time.Unix(0, h.Time).UTC().Format(time.RFC3339Nano),
			w.time, time.Unix(0, w.time).UTC().Format(time.RFC3339Nano))
	}
	for _, f := range []struct {
		name      string
		got, want string
	}{
		{"Hostname", string(h.Hostname), w.host},
		{"AppName", string(h.AppName), w.app},
		{"ProcID", string(h.ProcID), w.proc},
		{"MsgID", string(h.MsgID), w.msgID},
		{"Msg", string(h.Msg), w.msg},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
}

const routerMsg = `at=info method=GET path=/ host=example.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.1 connect=1ms service=18ms status=200 bytes=13 protocol=https`

// headerCase is one table row of a header parser test: the input, and
// either the header wanted or the HeaderError reason wanted.
type headerCase struct {
	name string
	in   string
	want headerWant
	err  string // HeaderError reason
}

// runHeaderCases runs parse over every case.
func runHeaderCases(t *testing.T, parse func([]byte, *Header) error, tests []headerCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			err := parse([]byte(tt.in), &h)
			if tt.err != "" {
				var he *HeaderError
				if !errors.As(err, &he) || he.Reason != tt.err {
					t.Fatalf("err = %v, want HeaderError %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			checkHeader(t, &h, tt.want)
		})
	}
}

func TestParseHeader(t *testing.T) {
	tests := []headerCase{
		{name: "spec example", in: "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up",
			want: headerWant{ts("2012-11-30T06:45:29Z"), "host", "app", "web.3", "-", "State changed from starting to up"}},
		{name: "trailing newline", in: "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - up\n",
			want: headerWant{ts("2012-11-30T06:45:29Z"), "host", "app", "web.3", "-", "up"}},
		{name: "trailing crlf", in: "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - up\r\n",
			want: headerWant{ts("2012-11-30T06:45:29Z"), "host", "app", "web.3", "-", "up"}},
		{name: "router", in: "<158>1 2012-10-11T03:47:20+00:00 host heroku router - " + routerMsg,
			want: headerWant{ts("2012-10-11T03:47:20Z"), "host", "heroku", "router", "-", routerMsg}},
		{name: "log-shuttle nil SD", in: "<190>1 2013-03-27T20:02:24+00:00 shuttle token shuttle - - Hello World\n",
			want: headerWant{ts("2013-03-27T20:02:24Z"), "shuttle", "token", "shuttle", "-", "Hello World"}},
		{name: "log-shuttle SD element", in: `<13>1 2013-09-25T01:16:49.371356+00:00 host token web.1 - [meta sequenceId="1"] message 1` + "\n",
			want: headerWant{ts("2013-09-25T01:16:49.371356Z"), "host", "token", "web.1", "-", "message 1"}},
		{name: "two SD elements", in: `<13>1 2013-09-25T01:16:49Z host token web.1 - [a@1 x="1"][b@2 y="a \"q\" ]" z=""] msg`,
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "token", "web.1", "-", "msg"}},
		{name: "SD then end", in: `<13>1 2013-09-25T01:16:49Z host token web.1 - [meta sequenceId="1"]`,
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "token", "web.1", "-", ""}},
		{name: "hirefire tag kept", in: "<190>1 2013-09-25T01:16:49Z host app web.1 - [hirefire:router] queue=12ms",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", "[hirefire:router] queue=12ms"}},
		{name: "unclosed bracket kept", in: `<190>1 2013-09-25T01:16:49Z host app web.1 - [meta a="1" oops`,
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", `[meta a="1" oops`}},
		{name: "bracket not followed by space kept", in: `<190>1 2013-09-25T01:16:49Z host app web.1 - [meta a="1"]x`,
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", `[meta a="1"]x`}},
		{name: "dash word kept", in: "<190>1 2013-09-25T01:16:49Z host app web.1 - -x",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", "-x"}},
		{name: "only nil SD", in: "<190>1 2013-09-25T01:16:49Z host app web.1 - -",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", ""}},
		{name: "empty msg", in: "<190>1 2013-09-25T01:16:49Z host app web.1 -",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", ""}},
		{name: "empty msg after space", in: "<190>1 2013-09-25T01:16:49Z host app web.1 - ",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", ""}},
		{name: "msgid set", in: "<190>1 2013-09-25T01:16:49Z host app web.1 ID47 hi",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "ID47", "hi"}},
		{name: "BOM stripped", in: "<190>1 2013-09-25T01:16:49Z host app web.1 - \xEF\xBB\xBFhi",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", "hi"}},
		{name: "msg keeps inner spaces", in: "<190>1 2013-09-25T01:16:49Z host app web.1 -  two  spaces ",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "host", "app", "web.1", "-", " two  spaces "}},
		{name: "pri 0", in: "<0>1 2013-09-25T01:16:49Z h a p - m",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "h", "a", "p", "-", "m"}},
		{name: "pri 191", in: "<191>1 2013-09-25T01:16:49Z h a p - m",
			want: headerWant{ts("2013-09-25T01:16:49Z"), "h", "a", "p", "-", "m"}},

		// Timestamps.
		{name: "Z", in: "<1>1 2024-01-02T03:04:05Z h a p - m",
			want: headerWant{ts("2024-01-02T03:04:05Z"), "h", "a", "p", "-", "m"}},
		{name: "lowercase t and z", in: "<1>1 2024-01-02t03:04:05z h a p - m",
			want: headerWant{ts("2024-01-02T03:04:05Z"), "h", "a", "p", "-", "m"}},
		{name: "-07:00", in: "<1>1 2024-01-02T03:04:05-07:00 h a p - m",
			want: headerWant{ts("2024-01-02T10:04:05Z"), "h", "a", "p", "-", "m"}},
		{name: "+05:30 across midnight", in: "<1>1 2024-01-01T02:04:05+05:30 h a p - m",
			want: headerWant{ts("2023-12-31T20:34:05Z"), "h", "a", "p", "-", "m"}},
		{name: "millis", in: "<1>1 2024-01-02T03:04:05.123+00:00 h a p - m",
			want: headerWant{ts("2024-01-02T03:04:05.123Z"), "h", "a", "p", "-", "m"}},
		{name: "micros", in: "<1>1 2024-01-02T03:04:05.123456+00:00 h a p - m",
			want: headerWant{ts("2024-01-02T03:04:05.123456Z"), "h", "a", "p", "-", "m"}},
		{name: "nanos", in: "<1>1 2024-01-02T03:04:05.123456789-01:00 h a p - m",
			want: headerWant{ts("2024-01-02T04:04:05.123456789Z"), "h", "a", "p", "-", "m"}},
		{name: "more than 9 digits truncated", in: "<1>1 2024-01-02T03:04:05.1234567899Z h a p - m",
			want: headerWant{ts("2024-01-02T03:04:05.123456789Z"), "h", "a", "p", "-", "m"}},
		{name: "one digit fraction", in: "<1>1 2024-01-02T03:04:05.5Z h a p - m",
			want: headerWant{ts("2024-01-02T03:04:05.5Z"), "h", "a", "p", "-", "m"}},
		{name: "leap day", in: "<1>1 2024-02-29T23:59:59Z h a p - m",
			want: headerWant{ts("2024-02-29T23:59:59Z"), "h", "a", "p", "-", "m"}},
		{name: "leap day 2000", in: "<1>1 2000-02-29T00:00:00Z h a p - m",
			want: headerWant{ts("2000-02-29T00:00:00Z"), "h", "a", "p", "-", "m"}},
		{name: "leap second", in: "<1>1 2016-12-31T23:59:60Z h a p - m",
			want: headerWant{ts("2017-01-01T00:00:00Z"), "h", "a", "p", "-", "m"}},
		{name: "epoch", in: "<1>1 1970-01-01T00:00:00Z h a p - m",
			want: headerWant{0, "h", "a", "p", "-", "m"}},
		{name: "before epoch", in: "<1>1 1969-12-31T23:59:59.5Z h a p - m",
			want: headerWant{-500_000_000, "h", "a", "p", "-", "m"}},

		{name: "not leap year", in: "<1>1 2023-02-29T00:00:00Z h a p - m", err: "bad timestamp"},
		{name: "1900 not leap", in: "<1>1 2100-02-29T00:00:00Z h a p - m", err: "bad timestamp"},
		{name: "april 31", in: "<1>1 2024-04-31T00:00:00Z h a p - m", err: "bad timestamp"},
		{name: "day 0", in: "<1>1 2024-04-00T00:00:00Z h a p - m", err: "bad timestamp"},
		{name: "month 13", in: "<1>1 2024-13-01T00:00:00Z h a p - m", err: "bad timestamp"},
		{name: "month 0", in: "<1>1 2024-00-01T00:00:00Z h a p - m", err: "bad timestamp"},
		{name: "hour 24", in: "<1>1 2024-01-01T24:00:00Z h a p - m", err: "bad timestamp"},
		{name: "minute 60", in: "<1>1 2024-01-01T23:60:00Z h a p - m", err: "bad timestamp"},
		{name: "second 61", in: "<1>1 2024-01-01T23:00:61Z h a p - m", err: "bad timestamp"},
		{name: "no zone", in: "<1>1 2024-01-01T23:00:00 h a p - m", err: "bad timestamp"},
		{name: "short offset", in: "<1>1 2024-01-01T23:00:00+0000 h a p - m", err: "bad timestamp"},
		{name: "offset hour 24", in: "<1>1 2024-01-01T23:00:00+24:00 h a p - m", err: "bad timestamp"},
		{name: "empty fraction", in: "<1>1 2024-01-01T23:00:00.Z h a p - m", err: "bad timestamp"},
		{name: "space date", in: "<1>1 2024-01-01 23:00:00Z h a p - m", err: "bad timestamp"},
		{name: "nil timestamp", in: "<1>1 - h a p - m", err: "bad timestamp"},
		{name: "garbage after zone", in: "<1>1 2024-01-01T23:00:00Zx h a p - m", err: "bad timestamp"},
		{name: "year out of range", in: "<1>1 0001-01-01T00:00:00Z h a p - m", err: "timestamp out of range"},
		{name: "year 9999", in: "<1>1 9999-01-01T00:00:00Z h a p - m", err: "timestamp out of range"},

		// Header structure.
		{name: "empty", in: "", err: "empty message"},
		{name: "just newline", in: "\n", err: "empty message"},
		{name: "no PRI", in: "1 2024-01-01T23:00:00Z h a p - m", err: "bad priority"},
		{name: "PRI 192", in: "<192>1 2024-01-01T23:00:00Z h a p - m", err: "bad priority"},
		{name: "PRI empty", in: "<>1 2024-01-01T23:00:00Z h a p - m", err: "bad priority"},
		{name: "PRI 4 digits", in: "<0040>1 2024-01-01T23:00:00Z h a p - m", err: "bad priority"},
		{name: "PRI unclosed", in: "<40", err: "bad priority"},
		{name: "version 2", in: "<40>2 2024-01-01T23:00:00Z h a p - m", err: "bad version"},
		{name: "no version", in: "<40>2024-01-01T23:00:00Z h a p - m", err: "bad version"},
		{name: "RFC 3164", in: "<40>Oct 11 22:14:15 mymachine su: hi", err: "bad version"},
		{name: "missing app", in: "<40>1 2024-01-01T23:00:00Z host", err: "missing app name"},
		{name: "double space", in: "<40>1 2024-01-01T23:00:00Z host  app p - m", err: "missing app name"},
		{name: "missing procid", in: "<40>1 2024-01-01T23:00:00Z host app", err: "missing procid"},
		{name: "missing msgid", in: "<40>1 2024-01-01T23:00:00Z host app web.1", err: "missing msgid"},
		{name: "missing hostname", in: "<40>1 2024-01-01T23:00:00Z ", err: "missing hostname"},
	}
	runHeaderCases(t, ParseHeader, tests)
}

func TestTimestampMatchesTimePackage(t *testing.T) {
	// Every minute-ish step over several years, each with a different
	// offset and fraction, compared against time.Parse.
	start := time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("", -7*3600), time.FixedZone("", 5*3600+30*60), time.FixedZone("", 14*3600)}
	layouts := []string{time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05.000000Z07:00", "2006-01-02T15:04:05.000Z07:00"}
	for i := 0; i < 200000; i++ {
		tm := start.Add(time.Duration(i) * (7*time.Hour + 13*time.Minute + 17*time.Second + 123456789))
		tm = tm.In(zones[i%len(zones)])
		s := tm.Format(layouts[(i/4)%len(layouts)])
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, n, herr := parseTimestamp([]byte(s))
		if herr != nil || n != len(s) || got != want.UnixNano() {
			t.Fatalf("%s: got %d,%d,%v want %d", s, got, n, herr, want.UnixNano())
		}
	}
}

func TestParseTail(t *testing.T) {
	tests := []headerCase{
		{name: "spec router", in: "2012-10-11T03:47:20+00:00 heroku[router]: " + routerMsg,
			want: headerWant{ts("2012-10-11T03:47:20Z"), "-", "heroku", "router", "-", routerMsg}},
		{name: "app web with micros", in: "2024-01-02T03:04:05.123456+00:00 app[web.1]: Completed 200 OK\n",
			want: headerWant{ts("2024-01-02T03:04:05.123456Z"), "-", "app", "web.1", "-", "Completed 200 OK"}},
		{name: "api", in: "2024-01-02T03:04:05.123456-08:00 app[api]: Release v99 created by user foo@example.com\r\n",
			want: headerWant{ts("2024-01-02T11:04:05.123456Z"), "-", "app", "api", "-", "Release v99 created by user foo@example.com"}},
		{name: "heroku dyno", in: "2024-01-02T03:04:05Z heroku[web.1]: State changed from up to crashed",
			want: headerWant{ts("2024-01-02T03:04:05Z"), "-", "heroku", "web.1", "-", "State changed from up to crashed"}},
		{name: "no space after colon", in: "2024-01-02T03:04:05Z heroku[web.1]:Restarting",
			want: headerWant{ts("2024-01-02T03:04:05Z"), "-", "heroku", "web.1", "-", "Restarting"}},
		{name: "empty msg", in: "2024-01-02T03:04:05Z heroku[web.1]:",
			want: headerWant{ts("2024-01-02T03:04:05Z"), "-", "heroku", "web.1", "-", ""}},
		{name: "addon", in: "2024-01-02T03:04:05Z app[heroku-postgres]: source=DATABASE sample#db_size=4567bytes",
			want: headerWant{ts("2024-01-02T03:04:05Z"), "-", "app", "heroku-postgres", "-", "source=DATABASE sample#db_size=4567bytes"}},

		{name: "empty", in: "", err: "empty message"},
		{name: "no timestamp", in: "heroku[router]: at=info", err: "bad timestamp"},
		{name: "bad day", in: "2023-02-29T03:04:05Z heroku[router]: at=info", err: "bad timestamp"},
		{name: "no proc", in: "2024-01-02T03:04:05Z heroku: at=info", err: "bad source[proc]"},
		{name: "no colon", in: "2024-01-02T03:04:05Z heroku[router] at=info", err: "bad source[proc]"},
		{name: "empty proc", in: "2024-01-02T03:04:05Z heroku[]: at=info", err: "bad source[proc]"},
		{name: "empty source", in: "2024-01-02T03:04:05Z [web.1]: at=info", err: "bad source[proc]"},
		{name: "timestamp only", in: "2024-01-02T03:04:05Z", err: "bad timestamp"},
		{name: "syslog line", in: "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - up", err: "bad timestamp"},
	}
	runHeaderCases(t, ParseTail, tests)
}

func TestParseAllocs(t *testing.T) {
	good := []byte(benchLines[0])
	bad := []byte("<40>1 2023-02-29T03:04:05Z h a p - m")
	tail := []byte("2012-10-11T03:47:20.123456+00:00 heroku[router]: " + routerMsg)
	var h Header
	for name, f := range map[string]func(){
		"header":     func() { _ = ParseHeader(good, &h) },
		"header bad": func() { _ = ParseHeader(bad, &h) },
		"tail":       func() { _ = ParseTail(tail, &h) },
	} {
		if a := testing.AllocsPerRun(100, f); a != 0 {
			t.Errorf("%s: %v allocs", name, a)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, l := range benchLines {
		f.Add([]byte(l))
	}
	for _, s := range []string{
		"<190>1 2013-03-27T20:02:24+00:00 shuttle token shuttle - - Hello World\n",
		`<13>1 2013-09-25T01:16:49.371356+00:00 host token web.1 - [meta sequenceId="1"] message 1`,
		"<1>1 2024-02-29T23:59:59.123456789-07:00 h a p - m",
		"<1>1 2016-12-31T23:59:60Z h a p - -",
		"<191>1 1970-01-01T00:00:00z h a p - [x a=\"\\\"\"]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var h Header
		err := ParseHeader(msg, &h)
		if err != nil {
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("error %T is not a *HeaderError", err)
			}
			return
		}
		for _, p := range [][]byte{h.Hostname, h.AppName, h.ProcID, h.MsgID} {
			if len(p) == 0 || bytes.IndexByte(p, ' ') >= 0 {
				t.Fatalf("bad header field %q", p)
			}
		}
		if !bytes.Contains(msg, h.Msg) || (len(h.Msg) > 0 && !bytes.HasSuffix(trimNewline(msg), h.Msg)) {
			t.Fatalf("Msg %q is not the tail of the input", h.Msg)
		}
		// The timestamp field agrees with the time package where both parse.
		tsField := msg[bytes.IndexByte(msg, ' ')+1:]
		tsField = tsField[:bytes.IndexByte(tsField, ' ')]
		if want, err := time.Parse(time.RFC3339Nano, string(tsField)); err == nil {
			if want.UnixNano() != h.Time {
				t.Fatalf("time %q: got %d want %d", tsField, h.Time, want.UnixNano())
			}
		}
		// Re-encoding and re-parsing keeps every field but sub-µs time.
		frame := AppendFrame(nil, &h)
		r := NewReader(frame)
		m, err := r.Next()
		if err != nil {
			t.Fatalf("re-encoded frame %q: %v", frame, err)
		}
		var h2 Header
		if err := ParseHeader(m, &h2); err != nil {
			t.Fatalf("re-encoded message %q: %v", m, err)
		}
		if h2.Time != h.Time/1000*1000 && h.Time >= 0 {
			t.Fatalf("re-encoded time %d, want %d", h2.Time, h.Time)
		}
		// The encoder writes non-printable header bytes as '_'.
		if !bytes.Equal(h2.AppName, appendField(nil, h.AppName)) || !bytes.Equal(h2.ProcID, appendField(nil, h.ProcID)) {
			t.Fatalf("re-encoded %q", m)
		}
	})
}

func BenchmarkParseHeader(b *testing.B) {
	msg := []byte(benchLines[0])
	b.SetBytes(int64(len(msg)))
	var h Header
	m := benchmeter.Start(b)
	for b.Loop() {
		if err := ParseHeader(msg, &h); err != nil {
			b.Fatal(err)
		}
	}
	m.Lines(1)
}

func BenchmarkParseTail(b *testing.B) {
	line := []byte("2012-10-11T03:47:20.123456+00:00 heroku[router]: " + routerMsg)
	b.SetBytes(int64(len(line)))
	var h Header
	m := benchmeter.Start(b)
	for b.Loop() {
		if err := ParseTail(line, &h); err != nil {
			b.Fatal(err)
		}
	}
	m.Lines(1)
}

// FuzzParseTail fuzzes the `heroku logs` line format: it never panics,
// fails only with a *HeaderError, and on success its fields are non-empty
// slices of the line, the message is the line's tail, and the time agrees
// with the time package.
func FuzzParseTail(f *testing.F) {
	for _, s := range []string{
		"2012-10-11T03:47:20+00:00 heroku[router]: at=info method=GET path=/ status=200\n",
		"2012-10-11T03:47:20.123456+00:00 app[web.1]:Started GET \"/\"\r\n",
		"2024-02-29T23:59:59.123456789-07:00 heroku[api]: Deploy 2b9d4d1 by user a@b.c",
		"2016-12-31T23:59:60Z app[worker.2]: ",
		"1970-01-01T00:00:00z a[b]:",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var h Header
		err := ParseTail(line, &h)
		if err != nil {
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("error %T is not a *HeaderError", err)
			}
			return
		}
		for _, p := range [][]byte{h.AppName, h.ProcID} {
			if len(p) == 0 || bytes.ContainsAny(p, " []") || !bytes.Contains(line, p) {
				t.Fatalf("bad source field %q in %q", p, line)
			}
		}
		if string(h.Hostname) != "-" || string(h.MsgID) != "-" {
			t.Fatalf("hostname %q msgid %q, want -", h.Hostname, h.MsgID)
		}
		if len(h.Msg) > 0 && !bytes.HasSuffix(trimNewline(line), h.Msg) {
			t.Fatalf("Msg %q is not the tail of %q", h.Msg, line)
		}
		ts := line[:bytes.IndexByte(line, ' ')]
		if want, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil && want.UnixNano() != h.Time {
			t.Fatalf("time %q: got %d want %d", ts, h.Time, want.UnixNano())
		}
	})
}

// TestDaysSinceEpoch checks the table-driven day count against the
// arithmetic one for every date parseTimestamp accepts.
func TestDaysSinceEpoch(t *testing.T) {
	for y := minYear; y <= maxYear; y++ {
		for m := 1; m <= 12; m++ {
			for d := 1; d <= daysIn(m, y); d++ {
				if got, want := daysSinceEpoch(y, m, d), daysFromCivil(y, m, d); got != want {
					t.Fatalf("%04d-%02d-%02d: %d days, want %d", y, m, d, got, want)
				}
			}
		}
	}
}
