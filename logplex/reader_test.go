package logplex

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/drainpipe/drainpipe/internal/benchmeter"
)

// specFrame is the one-frame example of SPEC §1.1. Its length (83) counts
// the trailing "\n": the message itself is 82 bytes.
const specFrame = "83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n"

func TestReader(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		frames []string
		reason string // "" means a clean io.EOF at the end
		offset int
	}{
		{name: "spec example", body: specFrame,
			frames: []string{"<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up"}},
		{name: "empty body", body: ""},
		{name: "only newlines", body: "\n\r\n\n"},
		{name: "no trailing newline", body: "5 hello", frames: []string{"hello"}},
		{name: "counted newline stripped", body: "6 hello\n", frames: []string{"hello"}},
		{name: "counted crlf stripped", body: "7 hello\r\n", frames: []string{"hello"}},
		{name: "only one newline stripped", body: "7 hello\n\n", frames: []string{"hello\n"}},
		{name: "inner newline kept", body: "11 hello\nworld", frames: []string{"hello\nworld"}},
		{name: "back to back", body: "5 hello5 world", frames: []string{"hello", "world"}},
		{name: "back to back counted newlines", body: "6 hello\n6 world\n", frames: []string{"hello", "world"}},
		{name: "uncounted newline between frames", body: "5 hello\n5 world\n", frames: []string{"hello", "world"}},
		{name: "uncounted crlf between frames", body: "5 hello\r\n5 world\r\n\r\n", frames: []string{"hello", "world"}},
		{name: "leading newline", body: "\n5 hello", frames: []string{"hello"}},
		{name: "leading zeros in length", body: "005 hello", frames: []string{"hello"}},
		{name: "frame of one newline", body: "1 \n5 hello", frames: []string{"", "hello"}},
		{name: "max frame len", body: strconv.Itoa(MaxFrameLen) + " " + strings.Repeat("x", MaxFrameLen),
			frames: []string{strings.Repeat("x", MaxFrameLen)}},

		{name: "spec example without its newline", body: strings.TrimSuffix(specFrame, "\n"),
			frames: []string{"<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up"}},
		{name: "last frame one byte short", body: "5 hello6 world", frames: []string{"hello", "world"}},
		{name: "truncated body", body: "10 hello", reason: ReasonTruncated},
		{name: "two bytes short", body: "7 hello", reason: ReasonTruncated},
		{name: "inner frame one byte short", body: "6 hello5 world", frames: []string{"hello5"}, reason: ReasonBadLength, offset: 8},
		{name: "truncated second frame", body: "5 hello10 world", frames: []string{"hello"}, reason: ReasonTruncated, offset: 7},
		{name: "garbage prefix", body: "abc hello", reason: ReasonBadLength},
		{name: "garbage after frame", body: "5 hello xx", frames: []string{"hello"}, reason: ReasonBadLength, offset: 7},
		{name: "negative length", body: "-5 hello", reason: ReasonBadLength},
		{name: "missing space", body: "5hello", reason: ReasonMissingSpace},
		{name: "tab instead of space", body: "5\thello", reason: ReasonMissingSpace},
		{name: "digits at end", body: "12", reason: ReasonMissingSpace},
		{name: "length only", body: "5 ", reason: ReasonTruncated},
		{name: "zero length", body: "0 hello", reason: ReasonZeroLength},
		{name: "absurd length", body: "99999999999999999999 x", reason: ReasonLongFrame},
		{name: "just over max", body: strconv.Itoa(MaxFrameLen+1) + " x", reason: ReasonLongFrame},
		{name: "unframed syslog", body: "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - up", reason: ReasonBadLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader([]byte(tt.body))
			var got []string
			var err error
			for {
				var f []byte
				f, err = r.Next()
				if err != nil {
					break
				}
				got = append(got, string(f))
			}
			if strings.Join(got, "|") != strings.Join(tt.frames, "|") || len(got) != len(tt.frames) {
				t.Errorf("frames = %q, want %q", got, tt.frames)
			}
			if tt.reason == "" {
				if err != io.EOF {
					t.Fatalf("err = %v, want io.EOF", err)
				}
				if r.Offset() != len(tt.body) {
					t.Errorf("Offset() = %d at EOF, want %d", r.Offset(), len(tt.body))
				}
				return
			}
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FrameError", err)
			}
			if fe.Reason != tt.reason || fe.Offset != tt.offset {
				t.Errorf("err = %+v, want reason %q offset %d", fe, tt.reason, tt.offset)
			}
			// The error is sticky.
			if f, err2 := r.Next(); err2 != err || f != nil {
				t.Errorf("second Next = %q, %v; want nil, %v", f, err2, err)
			}
		})
	}
}

func TestReaderReset(t *testing.T) {
	r := NewReader([]byte("xx"))
	if _, err := r.Next(); err == nil {
		t.Fatal("want error")
	}
	r.Reset([]byte("5 hello"))
	f, err := r.Next()
	if err != nil || string(f) != "hello" {
		t.Fatalf("after Reset: %q, %v", f, err)
	}
	var zero Reader
	if _, err := zero.Next(); err != io.EOF {
		t.Fatalf("zero Reader: %v, want io.EOF", err)
	}
}

func TestReaderFrameCapacity(t *testing.T) {
	body := []byte("5 hello5 world")
	r := NewReader(body)
	f, _ := r.Next()
	_ = append(f, "XXXXX"...) // must not overwrite the next frame
	f, _ = r.Next()
	if string(f) != "world" {
		t.Fatalf("append to a frame overwrote the body: %q", f)
	}
}

func TestReaderAllocs(t *testing.T) {
	body := benchBody(100)
	var r Reader
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(body)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Reader allocates %v per body", allocs)
	}
}

// checkFrames reads body to the end and checks the invariants every body
// must keep, whatever its content.
func checkFrames(t *testing.T, body []byte) {
	t.Helper()
	r := NewReader(body)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
	prevEnd := 0
	for n := 0; ; n++ {
		if n > len(body) {
			t.Fatalf("more frames than bytes in the body")
		}
		f, err := r.Next()
		if err == io.EOF {
			if r.Offset() != len(body) {
				t.Fatalf("EOF at offset %d of %d", r.Offset(), len(body))
			}
			return
		}
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FrameError", err)
			}
			if fe.Offset < prevEnd || fe.Offset >= len(body) {
				t.Fatalf("error offset %d outside [%d,%d)", fe.Offset, prevEnd, len(body))
			}
			if _, err2 := r.Next(); err2 != err {
				t.Fatalf("error not sticky: %v then %v", err, err2)
			}
			return
		}
		if len(f) == 0 {
			if r.Offset() <= prevEnd {
				t.Fatalf("empty frame without progress")
			}
			prevEnd = r.Offset()
			continue
		}
		start := int(uintptr(unsafe.Pointer(unsafe.SliceData(f))) - base)
		end := start + len(f)
		if start < prevEnd || end > len(body) || end > r.Offset() {
			t.Fatalf("frame [%d,%d) outside body (prev end %d, len %d)", start, end, prevEnd, len(body))
		}
		// The length prefix must count the frame plus the stripped newline.
		sp := start - 1
		if sp < 1 || body[sp] != ' ' {
			t.Fatalf("no space before frame at %d", start)
		}
		d := sp
		for d > prevEnd && isDigit(body[d-1]) {
			d--
		}
		count, err := strconv.Atoi(string(body[d:sp]))
		if err != nil || count > MaxFrameLen {
			t.Fatalf("bad length prefix %q", body[d:sp])
		}
		if start+count == len(body)+1 {
			count-- // a last frame one byte short is read as the bytes left
		}
		if r.Offset() != start+count || count-len(f) < 0 || count-len(f) > 2 {
			t.Fatalf("length %d but frame %d bytes, offset %d", count, len(f), r.Offset())
		}
		prevEnd = r.Offset()
	}
}

func FuzzReader(f *testing.F) {
	seeds := []string{
		specFrame,
		"5 hello5 world",
		"5 hello\n5 world\r\n",
		"7 hello\r\n",
		"10 hello",
		"abc hello",
		"0 x",
		"99999999999 x",
		"1 \n",
		string(benchBody(3)),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFrames(t, body)
	})
}

var benchLines = []string{
	"<158>1 2012-10-11T03:47:20.123456+00:00 host heroku router - at=info method=GET path=/ host=example.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd=\"204.204.204.204\" dyno=web.1 connect=1ms service=18ms status=200 bytes=13 protocol=https\n",
	"<45>1 2012-10-11T03:47:20.123456+00:00 host heroku web.1 - source=web.1 dyno=heroku.2808254.d97d0ea7-cf3d-411b-b453-d2943a50b456 sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99\n",
	"<190>1 2012-10-11T03:47:20.123456+00:00 host app web.1 - Completed 200 OK in 12ms (Views: 3.1ms | ActiveRecord: 2.2ms)\n",
	"<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n",
}

func benchBody(frames int) []byte {
	var b []byte
	for i := 0; i < frames; i++ {
		l := benchLines[i%len(benchLines)]
		b = strconv.AppendInt(b, int64(len(l)), 10)
		b = append(b, ' ')
		b = append(b, l...)
	}
	return b
}

func BenchmarkReader(b *testing.B) {
	body := benchBody(100)
	b.SetBytes(int64(len(body)))
	var r Reader
	m := benchmeter.Start(b)
	for b.Loop() {
		r.Reset(body)
		n := 0
		for {
			if _, err := r.Next(); err != nil {
				break
			}
			n++
		}
		if n != 100 {
			b.Fatalf("%d frames", n)
		}
	}
	m.Lines(100)
}
