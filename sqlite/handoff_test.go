package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/journaltest"
)

// sameRecords fails unless got and want hold the same records field by
// field (times compared as instants and by location).
func sameRecords(t *testing.T, got, want []drainpipe.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.App != w.App || g.FrameID != w.FrameID || !g.ReceivedAt.Equal(w.ReceivedAt) ||
			g.ReceivedAt.Location() != w.ReceivedAt.Location() || !bytes.Equal(g.Body, w.Body) ||
			g.Dropped != w.Dropped || g.Lost != w.Lost || g.Damaged != w.Damaged {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestJournalHandoffServesWhatTheFileHolds: records read right after
// their commit come from memory and are exactly what the file holds
// (packed and raw bodies, drop and lost counts, a duplicate left out).
func TestJournalHandoffServesWhatTheFileHolds(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	batches := []drainpipe.Batch{
		{App: "a", FrameID: "f1", ReceivedAt: time.Now(), Body: journaltest.RouterBody(500, 1)},
		{App: "b", ReceivedAt: time.Now().In(time.FixedZone("x", 3600)), Body: []byte("small"), Dropped: 3, Lost: 4},
		{App: "a", FrameID: "f1", ReceivedAt: time.Now(), Body: journaltest.RouterBody(500, 2)}, // a retry
		{App: "a", FrameID: "f2", ReceivedAt: time.Now(), Body: journaltest.RouterBody(100, 3)},
	}
	for _, b := range batches {
		if _, _, err := j.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	fromMemory, crcs, ok := j.handoff.Read(0, 10, MaxReadBytes)
	if !ok || len(crcs) != 3 {
		t.Fatalf("hand-off holds %d records (ok %v), want 3", len(fromMemory), ok)
	}
	fromFile, bad, err := j.read(ctx, 0, 10)
	if err != nil || len(bad) != 0 {
		t.Fatalf("file read: %v, damaged %v", err, bad)
	}
	sameRecords(t, fromMemory, fromFile)
	recs, err := j.Read(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, recs, fromFile)
	// Paged reads, as the aggregator does them.
	first, _ := j.Read(ctx, 0, 2)
	rest, _ := j.Read(ctx, first[len(first)-1].Seq, 2)
	sameRecords(t, append(first, rest...), fromFile)
	if more, _ := j.Read(ctx, fromFile[2].Seq, 10); len(more) != 0 {
		t.Fatalf("%d records after the last one", len(more))
	}
}

// TestJournalHandoffFallsBackToTheFile: a reader that is behind what the
// hand-off holds (it evicted the oldest records), or that starts again
// from an earlier position (an aggregator restarted after a panic),
// reads the file, and still gets every record once, in order.
func TestJournalHandoffFallsBackToTheFile(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	j.handoff.MaxRecords = 5
	var want []drainpipe.Batch
	for i := range 20 {
		b := drainpipe.Batch{App: "a", FrameID: fmt.Sprint(i), ReceivedAt: time.Now(), Body: journaltest.RouterBody(50, i)}
		if _, _, err := j.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	if _, _, ok := j.handoff.Read(0, 10, MaxReadBytes); ok {
		t.Fatal("the hand-off claims records it evicted")
	}
	readAll := func() []drainpipe.Record {
		var got []drainpipe.Record
		for pos := int64(0); ; {
			recs, err := j.Read(ctx, pos, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				return got
			}
			got = append(got, recs...)
			pos = recs[len(recs)-1].Seq
		}
	}
	for round := range 2 {
		got := readAll()
		if len(got) != len(want) {
			t.Fatalf("round %d: %d records, want %d", round, len(got), len(want))
		}
		for i, r := range got {
			if r.Seq != int64(i+1) || r.FrameID != want[i].FrameID || !bytes.Equal(r.Body, want[i].Body) {
				t.Fatalf("round %d: record %d is seq %d frame %q", round, i, r.Seq, r.FrameID)
			}
		}
	}
	// A trim forgets what it deletes; what is left is still served.
	if err := j.Trim(ctx, 18); err != nil {
		t.Fatal(err)
	}
	if recs, err := j.Read(ctx, 18, 10); err != nil || len(recs) != 2 || recs[0].Seq != 19 {
		t.Fatalf("after trim: %d records (%v)", len(recs), err)
	}
	if recs, err := j.Read(ctx, 0, 10); err != nil || len(recs) != 2 || recs[0].Seq != 19 {
		t.Fatalf("after trim, from the start: %d records (%v)", len(recs), err)
	}
}

// TestJournalHandoffCatchesAChangedBody: a caller that changes a body
// after Append returned (reusing its buffer) does not change what is
// counted: Read checks the in-memory copy against the record's checksum,
// says so, and reads the file.
func TestJournalHandoffCatchesAChangedBody(t *testing.T) {
	ctx := context.Background()
	var logs logBuffer
	j, err := OpenJournal(ctx, filepath.Join(t.TempDir(), "journal.db"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for _, size := range []int{500, 2} { // packed, then raw
		body := journaltest.RouterBody(size, size)
		orig := bytes.Clone(body)
		seq, _, err := j.Append(ctx, drainpipe.Batch{App: "a", ReceivedAt: time.Now(), Body: body})
		if err != nil {
			t.Fatal(err)
		}
		copy(body, "XXXX")
		recs, err := j.Read(ctx, seq-1, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Damaged || !bytes.Equal(recs[0].Body, orig) {
			t.Fatalf("%d lines: read %d records, body intact: %v", size, len(recs), len(recs) == 1 && bytes.Equal(recs[0].Body, orig))
		}
	}
	if n := strings.Count(logs.String(), "changed in memory after Append"); n != 2 {
		t.Fatalf("%d reports of a changed body, want 2:\n%s", n, logs.String())
	}
}
