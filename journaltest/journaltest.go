// Package journaltest is the conformance suite of drainpipe's embedded
// journals: the segment-file journal (package journal) and the SQLite
// journal (package sqlite) both run it, so the aggregator and the drain
// endpoint get the same guarantees from either: durable, ordered,
// gap-free sequence numbers; exactly one record per Logplex-Frame-Id
// (concurrently, across a restart, across a trim); every field read back
// as appended, from memory right after the commit or from the file after
// a restart; Trim; the read bound.
package journaltest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/gen"
	"github.com/drainpipe/drainpipe/internal/benchmeter"
	"github.com/drainpipe/drainpipe/logplex"
)

// Journal is what an embedded journal implements.
type Journal interface {
	drainpipe.Journal
	LastSeq() int64
	Notify() <-chan struct{}
}

// Config tells the suite how to open a journal.
type Config struct {
	// Open opens the journal kept in dir (an empty directory the first
	// time), as a restart would. The suite closes it.
	Open func(t *testing.T, dir string) Journal
	// MaxReadBytes is the journal's bound on the bodies of one Read.
	MaxReadBytes int
}

// Run runs the suite as parallel subtests of t, each in a directory of
// its own.
func Run(t *testing.T, cfg Config) {
	tests := []struct {
		name string
		fn   func(*testing.T, Config)
	}{
		{"FieldsRoundTrip", testFieldsRoundTrip},
		{"ConcurrentAppendsAreOrderedAndComplete", testConcurrent},
		{"DuplicateFrameID", testDuplicate},
		{"ConcurrentSameFrameIDKeptOnce", testConcurrentSameFrameID},
		{"DedupSurvivesRestart", testDedupRestart},
		{"DedupSurvivesTrim", testDedupTrim},
		{"RestartKeepsRecordsAndNumbering", testRestart},
		{"TrimForgets", testTrim},
		{"ReadBound", testReadBound},
		{"AppendAfterClose", testAfterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, cfg)
		})
	}
}

// RouterBody returns a drain body of n router lines (over 4 KiB, and so
// packed where a journal packs, for n ≥ 40); salt makes bodies differ.
func RouterBody(n, salt int) []byte {
	var b []byte
	for i := range n {
		b = fmt.Appendf(b, "236 <158>1 2026-11-25T10:00:%02d.%06d+00:00 host heroku router - at=info method=GET path=/p/%d dyno=web.%d connect=1ms service=%dms status=200 bytes=1234\n", i%60, i, salt, i%4+1, 20+i%300)
	}
	return b
}

func open(t *testing.T, cfg Config, dir string) Journal {
	t.Helper()
	j := cfg.Open(t, dir)
	return j
}

func appendOK(t *testing.T, j Journal, b drainpipe.Batch) int64 {
	t.Helper()
	seq, dup, err := j.Append(context.Background(), b)
	if err != nil || dup || seq == 0 {
		t.Fatalf("append %s/%q: seq %d, duplicate %v, err %v", b.App, b.FrameID, seq, dup, err)
	}
	return seq
}

// readAll reads every record after pos, in pages of page records.
func readAll(t *testing.T, j Journal, pos int64, page int) []drainpipe.Record {
	t.Helper()
	var out []drainpipe.Record
	for {
		recs, err := j.Read(context.Background(), pos, page)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			if r.Seq <= pos {
				t.Fatalf("Read(%d) returned seq %d", pos, r.Seq)
			}
			pos = r.Seq
		}
		out = append(out, recs...)
	}
}

// same fails unless got holds want's batches, field by field, times as
// UTC instants.
func same(t *testing.T, got []drainpipe.Record, want []drainpipe.Batch) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.App != w.App || g.FrameID != w.FrameID || !g.ReceivedAt.Equal(w.ReceivedAt) || g.ReceivedAt.Location() != time.UTC ||
			!bytes.Equal(g.Body, w.Body) || g.Dropped != w.Dropped || g.Lost != w.Lost || g.Damaged {
			t.Fatalf("record %d (seq %d): got %s/%q at %v, %d bytes, dropped %d lost %d damaged %v; want %s/%q at %v, %d bytes, dropped %d lost %d",
				i, g.Seq, g.App, g.FrameID, g.ReceivedAt, len(g.Body), g.Dropped, g.Lost, g.Damaged,
				w.App, w.FrameID, w.ReceivedAt, len(w.Body), w.Dropped, w.Lost)
		}
	}
}

func batches(n int) []drainpipe.Batch {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	var out []drainpipe.Batch
	for i := range n {
		b := drainpipe.Batch{App: fmt.Sprint("app-", i%3), FrameID: fmt.Sprintf("frame-%d", i), ReceivedAt: at.Add(time.Duration(i) * time.Second),
			Body: RouterBody(1+i*37%120, i), Dropped: int64(i % 2), Lost: int64(i % 5)}
		if i%4 == 3 {
			b.FrameID = "" // no Frame-Id: never deduplicated
		}
		out = append(out, b)
	}
	return out
}

// testFieldsRoundTrip: what is read is what was appended, from memory
// right after the commit and from the file after a restart, in pages.
func testFieldsRoundTrip(t *testing.T, cfg Config) {
	dir := t.TempDir()
	j := open(t, cfg, dir)
	want := batches(30)
	for i, b := range want {
		if seq := appendOK(t, j, b); seq != int64(i+1) {
			t.Fatalf("append %d got seq %d", i, seq)
		}
	}
	same(t, readAll(t, j, 0, 7), want)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, cfg, dir)
	defer j.Close()
	same(t, readAll(t, j, 0, 4), want)
	same(t, readAll(t, j, 10, 100), want[10:])
}

// testConcurrent: concurrent appends get distinct, gap-free sequence
// numbers, each returned only once durable, and Read gives them in order.
func testConcurrent(t *testing.T, cfg Config) {
	j := open(t, cfg, t.TempDir())
	defer j.Close()
	const n = 300
	var wg sync.WaitGroup
	seqs := make([]int64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq, dup, err := j.Append(context.Background(), drainpipe.Batch{App: "a", FrameID: fmt.Sprint(i), ReceivedAt: time.Now(), Body: []byte(fmt.Sprint("body ", i))})
			if err != nil || dup {
				t.Errorf("append %d: dup %v err %v", i, dup, err)
			}
			seqs[i] = seq
		}()
	}
	wg.Wait()
	recs := readAll(t, j, 0, 64)
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		var k int
		fmt.Sscan(r.FrameID, &k)
		if seqs[k] != r.Seq || string(r.Body) != fmt.Sprint("body ", k) {
			t.Fatalf("record %d: frame %s body %q, its Append got seq %d", r.Seq, r.FrameID, r.Body, seqs[k])
		}
	}
	if j.LastSeq() != n {
		t.Fatalf("LastSeq %d, want %d", j.LastSeq(), n)
	}
}

// testDuplicate: a retry of the same (app, frame id) is a no-op that says
// so; the same id for another app, and batches without an id, are not.
func testDuplicate(t *testing.T, cfg Config) {
	j := open(t, cfg, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	b := drainpipe.Batch{App: "a", FrameID: "f1", ReceivedAt: time.Now(), Body: []byte("x")}
	appendOK(t, j, b)
	if seq, dup, err := j.Append(ctx, b); err != nil || !dup || seq != 0 {
		t.Fatalf("retry: seq %d dup %v err %v", seq, dup, err)
	}
	b.App = "other"
	appendOK(t, j, b)
	b.FrameID = ""
	appendOK(t, j, b)
	appendOK(t, j, b)
	if recs := readAll(t, j, 0, 10); len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
}

// testConcurrentSameFrameID: many concurrent appends of one frame id
// keep exactly one record, and all but one report a duplicate.
func testConcurrentSameFrameID(t *testing.T, cfg Config) {
	j := open(t, cfg, t.TempDir())
	defer j.Close()
	for round := range 20 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		kept := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, dup, err := j.Append(context.Background(), drainpipe.Batch{App: "a", FrameID: fmt.Sprint("same-", round), ReceivedAt: time.Now(), Body: []byte("x")})
				if err != nil {
					t.Error(err)
				}
				if !dup {
					mu.Lock()
					kept++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if kept != 1 {
			t.Fatalf("round %d: %d appends of one frame id kept", round, kept)
		}
	}
	if recs := readAll(t, j, 0, 100); len(recs) != 20 {
		t.Fatalf("%d records, want 20", len(recs))
	}
}

// testDedupRestart: a retry after a restart is still a duplicate.
func testDedupRestart(t *testing.T, cfg Config) {
	dir := t.TempDir()
	j := open(t, cfg, dir)
	b := drainpipe.Batch{App: "a", FrameID: "f1", ReceivedAt: time.Now(), Body: []byte("x")}
	appendOK(t, j, b)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, cfg, dir)
	defer j.Close()
	if _, dup, err := j.Append(context.Background(), b); err != nil || !dup {
		t.Fatalf("retry after restart: dup %v err %v", dup, err)
	}
}

// testDedupTrim: a retry of a batch whose record was trimmed (it is in
// the store) is still a duplicate, before and after a restart.
func testDedupTrim(t *testing.T, cfg Config) {
	dir := t.TempDir()
	ctx := context.Background()
	j := open(t, cfg, dir)
	var last int64
	for i := range 50 {
		last = appendOK(t, j, drainpipe.Batch{App: "a", FrameID: fmt.Sprint("t", i), ReceivedAt: time.Now(), Body: RouterBody(60, i)})
	}
	if err := j.Trim(ctx, last); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, dup, err := j.Append(ctx, drainpipe.Batch{App: "a", FrameID: fmt.Sprint("t", i), ReceivedAt: time.Now(), Body: []byte("x")}); err != nil || !dup {
			t.Fatalf("retry %d after trim: dup %v err %v", i, dup, err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, cfg, dir)
	defer j.Close()
	if _, dup, err := j.Append(ctx, drainpipe.Batch{App: "a", FrameID: "t7", ReceivedAt: time.Now(), Body: []byte("x")}); err != nil || !dup {
		t.Fatalf("retry after trim and restart: dup %v err %v", dup, err)
	}
	if seq := appendOK(t, j, drainpipe.Batch{App: "a", FrameID: "new", ReceivedAt: time.Now(), Body: []byte("x")}); seq != last+1 {
		t.Fatalf("after trim and restart the next record is %d, want %d", seq, last+1)
	}
}

// testRestart: records and numbering survive a restart; the reader is
// woken by Notify after an append.
func testRestart(t *testing.T, cfg Config) {
	dir := t.TempDir()
	j := open(t, cfg, dir)
	want := batches(5)
	for _, b := range want {
		appendOK(t, j, b)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, cfg, dir)
	defer j.Close()
	if j.LastSeq() != 5 {
		t.Fatalf("LastSeq after restart %d, want 5", j.LastSeq())
	}
	select {
	case <-j.Notify():
	default:
	}
	if seq := appendOK(t, j, want[3]); seq != 6 {
		t.Fatalf("next seq %d, want 6", seq)
	}
	select {
	case <-j.Notify():
	case <-time.After(5 * time.Second):
		t.Fatal("no notification after an append")
	}
	same(t, readAll(t, j, 0, 3), append(want, want[3]))
}

// testTrim: records up to the trim are not read again; those after are.
func testTrim(t *testing.T, cfg Config) {
	j := open(t, cfg, t.TempDir())
	defer j.Close()
	want := batches(40)
	for _, b := range want {
		appendOK(t, j, b)
	}
	readAll(t, j, 0, 10)
	if err := j.Trim(context.Background(), 30); err != nil {
		t.Fatal(err)
	}
	same(t, readAll(t, j, 30, 4), want[30:])
	got := readAll(t, j, 0, 100)
	if len(got) == 0 || got[len(got)-1].Seq != 40 {
		t.Fatalf("after trim, reading from 0 gives %d records", len(got))
	}
	for _, r := range got {
		if r.Seq <= 30 {
			t.Fatalf("record %d read after Trim(30)", r.Seq)
		}
	}
}

// testReadBound: one Read returns at most MaxReadBytes of bodies (but at
// least one record).
func testReadBound(t *testing.T, cfg Config) {
	dir := t.TempDir()
	j := open(t, cfg, dir)
	body := bytes.Repeat([]byte("x"), cfg.MaxReadBytes/3+1)
	for i := range 5 {
		body[0] = byte('a' + i)
		appendOK(t, j, drainpipe.Batch{App: "a", ReceivedAt: time.Now(), Body: bytes.Clone(body)})
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, cfg, dir) // from the file
	defer j.Close()
	recs, err := j.Read(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("one Read returned %d records of %d bytes, want 3 (the bound is %d)", len(recs), len(body), cfg.MaxReadBytes)
	}
	if rest := readAll(t, j, recs[2].Seq, 100); len(rest) != 2 || rest[1].Body[0] != 'e' {
		t.Fatalf("%d records after the first read", len(rest))
	}
}

// testAfterClose: Append after Close fails.
func testAfterClose(t *testing.T, cfg Config) {
	j := open(t, cfg, t.TempDir())
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Append(context.Background(), drainpipe.Batch{App: "a", ReceivedAt: time.Now(), Body: []byte("x")}); err == nil {
		t.Fatal("append after close succeeded")
	}
}

// BenchBody is the journal benchmarks' drain body: 500 lines of one busy
// app of the synthetic fleet (the traffic loadgen sends: router lines
// with their varied paths, ids and timings, runtime samples, app output),
// about 120 KB. Real traffic, not one line repeated: how well and how fast
// S2 packs it decides whether packing pays.
func BenchBody() []byte {
	from := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	app := gen.DemoFleet(1, 7)[0]
	var body []byte
	n := 0
	for to := from.Add(10 * time.Second); n < 500; to = to.Add(10 * time.Second) {
		g := gen.NewGenerator(app, 7, from, to)
		body, n = body[:0], 0
		g.Generate(from, to, func(l *gen.Line) {
			if n < 500 {
				body = logplex.AppendMessage(body, l.Time, "host", l.AppName, l.ProcID, string(l.Msg))
				n++
			}
		})
	}
	return body
}

// BenchRoundTrip is a journal's whole part of the end-to-end path: 8
// drain-handler-like appenders (about what loadgen keeps in flight), each
// with a Frame-Id, and one aggregator-like reader that reads every record
// after its position and trims behind it every 64 records. An op is one
// 500-line body appended and read back; the CPU counted is the whole
// process's (benchmeter's lines/cpu-s).
func BenchRoundTrip(b *testing.B, j Journal) {
	ctx := context.Background()
	body := BenchBody()
	b.SetBytes(int64(len(body)))
	read := make(chan error, 1)
	var seq atomic.Int64
	m := benchmeter.Start(b)
	go func() {
		var pos int64
		for n := 0; n < b.N; {
			recs, err := j.Read(ctx, pos, 256)
			if err != nil {
				read <- err
				return
			}
			if len(recs) == 0 {
				<-j.Notify()
				continue
			}
			for _, r := range recs {
				if len(r.Body) != len(body) {
					read <- fmt.Errorf("record %d: %d bytes, want %d", r.Seq, len(r.Body), len(body))
					return
				}
			}
			n += len(recs)
			pos = recs[len(recs)-1].Seq
			if n%64 < len(recs) {
				if err := j.Trim(ctx, pos); err != nil {
					read <- err
					return
				}
			}
		}
		read <- nil
	}()
	b.SetParallelism(4) // 8 appenders on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := seq.Add(1)
			// A body of its own per append, as the drain handler reads one.
			own := append([]byte(nil), body...)
			if _, _, err := j.Append(ctx, drainpipe.Batch{App: "shop", FrameID: strconv.FormatInt(id, 10), ReceivedAt: time.Now(), Body: own}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := <-read; err != nil {
		b.Fatal(err)
	}
	m.Lines(500)
}
