package sqlite

import (
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
)

// Bounds of the in-memory hand-off (see handoff). The aggregator normally
// reads each group of records within milliseconds of its commit, so the
// hand-off rarely holds more than a few groups; the bounds matter only
// while the aggregator is behind, and then the oldest records are left to
// be read from the file.
const (
	handoffMaxBytes   = 16 << 20
	handoffMaxRecords = 4096
)

// handoff hands committed records from the journal's writer to its reader
// without a round trip through SQLite: the newest committed records, with
// the bodies as received (before S2 packing) and their CRC-32C. The file
// stays the durable copy; the hand-off only spares the reader the SQL read
// and the decompression of records it was going to read right after their
// commit. A reader that asks for records the hand-off does not hold (after
// a restart, or while behind) reads them from the file.
//
// Invariant, while valid: every committed record with a sequence number
// above after is in recs, in order. Only the journal's single writer
// adds records, so that holds from the moment it is set.
type handoff struct {
	// maxBytes and maxRecords bound what is held (handoffMaxBytes and
	// handoffMaxRecords; tests lower them).
	maxBytes, maxRecords int

	mu    sync.Mutex
	valid bool
	after int64
	recs  []handoffRec // recs[head:] are held, in ascending Seq
	head  int
	bytes int
}

type handoffRec struct {
	rec drainpipe.Record
	crc uint32
}

// reset empties the hand-off: it holds every committed record after seq
// (none, yet).
func (h *handoff) reset(seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.recs)
	h.recs, h.head, h.bytes = h.recs[:0], 0, 0
	h.after, h.valid = seq, true
}

// invalidate drops everything: after a failed commit the writer cannot
// tell which records the file holds, so the hand-off starts again after
// the next commit that succeeds.
func (h *handoff) invalidate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.recs)
	h.recs, h.head, h.bytes = h.recs[:0], 0, 0
	h.valid = false
}

// add appends the records of one successful commit (in ascending seq;
// duplicates, which got no seq, are skipped).
func (h *handoff) add(group []*appendReq) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range group {
		if r.dup || r.seq == 0 {
			continue
		}
		if !h.valid {
			// The first commit after a failure: nothing at or below its
			// first record is known to be here; what is in the file
			// below it is read from there.
			clear(h.recs)
			h.recs, h.head, h.bytes = h.recs[:0], 0, 0
			h.after, h.valid = r.seq-1, true
		}
		b := r.b
		b.ReceivedAt = time.Unix(0, b.ReceivedAt.UnixNano()).UTC() // as read from the file
		h.recs = append(h.recs, handoffRec{rec: drainpipe.Record{Seq: r.seq, Batch: b}, crc: r.crc})
		h.bytes += len(b.Body)
	}
	for h.head < len(h.recs) && (h.bytes > h.maxBytes || len(h.recs)-h.head > h.maxRecords) {
		h.dropFirst()
	}
}

// dropFirst forgets the oldest record held; the caller holds mu.
func (h *handoff) dropFirst() {
	r := &h.recs[h.head]
	h.after = r.rec.Seq
	h.bytes -= len(r.rec.Body)
	*r = handoffRec{}
	h.head++
	if h.head == len(h.recs) {
		h.recs, h.head = h.recs[:0], 0
	} else if h.head >= 1024 && h.head*2 >= len(h.recs) {
		n := copy(h.recs, h.recs[h.head:])
		clear(h.recs[n:])
		h.recs, h.head = h.recs[:n], 0
	}
}

// forget drops the records up to and including seq (the reader has them,
// or they were trimmed).
func (h *handoff) forget(seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.head < len(h.recs) && h.recs[h.head].rec.Seq <= seq {
		h.dropFirst()
	}
}

// read returns the records after seq, at most max of them and stopping
// once maxBytes of bodies are taken (at least one record), with their
// checksums, and ok; ok is false when the hand-off does not hold every
// committed record after seq, and the caller must read the file. Records
// at or below seq are forgotten: the journal has one reader, which asks
// for the records after those it has.
func (h *handoff) read(seq int64, max, maxBytes int) (recs []drainpipe.Record, crcs []uint32, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.valid || seq < h.after {
		return nil, nil, false
	}
	for h.head < len(h.recs) && h.recs[h.head].rec.Seq <= seq {
		h.dropFirst()
	}
	size := 0
	for i := h.head; i < len(h.recs) && len(recs) < max && size < maxBytes; i++ {
		r := &h.recs[i]
		recs = append(recs, r.rec)
		crcs = append(crcs, r.crc)
		size += len(r.rec.Body)
	}
	return recs, crcs, true
}
