package handoff

import (
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
)

// TestAfterAFailedCommit: after a commit fails the hand-off holds
// nothing, and the first commit that succeeds starts it again just below
// its own first record, so records the failed commit may have left in the
// file are read from there.
func TestAfterAFailedCommit(t *testing.T) {
	h := &Handoff{MaxBytes: 1 << 20, MaxRecords: 100}
	h.Reset(4)
	e := func(seq int64) Entry {
		return Entry{Rec: drainpipe.Record{Seq: seq, Batch: drainpipe.Batch{App: "a", ReceivedAt: time.Now(), Body: []byte("x")}}}
	}
	h.Add([]Entry{e(5), e(0), e(6)}) // the 0 is a duplicate
	if recs, _, ok := h.Read(4, 10, 1<<20); !ok || len(recs) != 2 || recs[1].Seq != 6 {
		t.Fatalf("before the failure: %d records, ok %v", len(recs), ok)
	}
	h.Invalidate()
	if _, _, ok := h.Read(6, 10, 1<<20); ok {
		t.Fatal("the hand-off answers after a failed commit")
	}
	h.Add([]Entry{e(9), e(10)})
	if _, _, ok := h.Read(6, 10, 1<<20); ok {
		t.Fatal("the hand-off answers for records 7 and 8, which only the file can hold")
	}
	if recs, _, ok := h.Read(8, 10, 1<<20); !ok || len(recs) != 2 || recs[0].Seq != 9 {
		t.Fatalf("after the next commit: %d records, ok %v", len(recs), ok)
	}
	// The byte bound: at least one record, then stop.
	if recs, _, ok := h.Read(8, 10, 1); !ok || len(recs) != 1 {
		t.Fatalf("byte bound: %d records, ok %v", len(recs), ok)
	}
}

// TestBounds: the oldest records are dropped once the record bound is
// passed, and the hand-off then answers only for what it still holds.
func TestBounds(t *testing.T) {
	h := &Handoff{MaxBytes: 1 << 20, MaxRecords: 3}
	h.Reset(0)
	for seq := int64(1); seq <= 5; seq++ {
		h.Add([]Entry{{Rec: drainpipe.Record{Seq: seq, Batch: drainpipe.Batch{Body: []byte("x")}}}})
	}
	if _, _, ok := h.Read(1, 10, 1<<20); ok {
		t.Fatal("answers for record 2, which was dropped")
	}
	if recs, _, ok := h.Read(2, 10, 1<<20); !ok || len(recs) != 3 || recs[0].Seq != 3 {
		t.Fatalf("after 2: %d records, ok %v", len(recs), ok)
	}
	h.Forget(4)
	if recs, _, ok := h.Read(4, 10, 1<<20); !ok || len(recs) != 1 || recs[0].Seq != 5 {
		t.Fatalf("after forget: %d records, ok %v", len(recs), ok)
	}
}
