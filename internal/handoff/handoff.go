// Package handoff hands committed journal records from a journal's
// single writer to its single reader in memory, so the reader need not
// read back (and decompress) what was just written. Both embedded
// journals (package journal's segment files and package sqlite's table)
// use it.
package handoff

import (
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
)

// Default bounds of a hand-off. The aggregator normally reads each group
// of records within milliseconds of its commit, so a hand-off rarely holds
// more than a few groups; the bounds matter only while the aggregator is
// behind, and then the oldest records are left to be read from the file.
const (
	DefaultMaxBytes   = 16 << 20
	DefaultMaxRecords = 4096
)

// Handoff holds the newest committed records, with the bodies as
// received and their batchcodec.RecordCRC. The file stays the durable
// copy; the hand-off only spares the reader the read of records it was
// going to read right after their commit. A reader that asks for records
// the hand-off does not hold (after a restart, or while behind) reads
// them from the file.
//
// Invariant, while valid: every committed record with a sequence number
// above after is in recs, in order. Only one goroutine adds records, in
// commit order (the SQLite journal's writer; the segment journal's
// syncer, once a group's fdatasync returned), so that holds from the
// moment it is set.
//
// The zero value is invalid (answers nothing) until Reset; MaxBytes and
// MaxRecords must be set before use.
type Handoff struct {
	// MaxBytes and MaxRecords bound what is held.
	MaxBytes, MaxRecords int
	// Release, when set, takes back the body of each Owned record once
	// the reader has passed it: Read drops the records at or below the
	// seq it is asked for, which its single reader has finished with
	// (it asks for the records after those it has). Records dropped any
	// other way (bounds, Forget, Invalidate) are left to the collector.
	Release func([]byte)

	mu    sync.Mutex
	valid bool
	after int64
	recs  []Entry // recs[head:] are held, in ascending Seq
	head  int
	bytes int
}

// Entry is one committed record and the CRC its reader checks it by.
type Entry struct {
	Rec drainpipe.Record
	CRC uint32
	// Owned says nobody but the hand-off holds Rec.Body once the reader
	// has passed the record (see Release).
	Owned bool
}

// New returns a hand-off with the default bounds that holds every
// committed record after seq (none, yet).
func New(seq int64) *Handoff {
	h := &Handoff{MaxBytes: DefaultMaxBytes, MaxRecords: DefaultMaxRecords}
	h.Reset(seq)
	return h
}

// Reset empties the hand-off: it holds every committed record after seq
// (none, yet).
func (h *Handoff) Reset(seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.recs)
	h.recs, h.head, h.bytes = h.recs[:0], 0, 0
	h.after, h.valid = seq, true
}

// Invalidate drops everything: after a failed commit the writer cannot
// tell which records the file holds, so the hand-off starts again after
// the next commit that succeeds.
func (h *Handoff) Invalidate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.recs)
	h.recs, h.head, h.bytes = h.recs[:0], 0, 0
	h.valid = false
}

// Add appends the records of one successful commit, in ascending Seq.
// Records with Seq 0 (duplicates, which got none) are skipped.
func (h *Handoff) Add(group []Entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range group {
		if e.Rec.Seq == 0 {
			continue
		}
		if !h.valid {
			// The first commit after a failure: nothing at or below its
			// first record is known to be here; what is in the file
			// below it is read from there.
			clear(h.recs)
			h.recs, h.head, h.bytes = h.recs[:0], 0, 0
			h.after, h.valid = e.Rec.Seq-1, true
		}
		e.Rec.ReceivedAt = time.Unix(0, e.Rec.ReceivedAt.UnixNano()).UTC() // as read from the file
		h.recs = append(h.recs, e)
		h.bytes += len(e.Rec.Body)
	}
	for h.head < len(h.recs) && (h.bytes > h.MaxBytes || len(h.recs)-h.head > h.MaxRecords) {
		h.dropFirst()
	}
}

// dropFirst forgets the oldest record held; the caller holds mu.
func (h *Handoff) dropFirst() {
	r := &h.recs[h.head]
	h.after = r.Rec.Seq
	h.bytes -= len(r.Rec.Body)
	*r = Entry{}
	h.head++
	if h.head == len(h.recs) {
		h.recs, h.head = h.recs[:0], 0
	} else if h.head >= 1024 && h.head*2 >= len(h.recs) {
		n := copy(h.recs, h.recs[h.head:])
		clear(h.recs[n:])
		h.recs, h.head = h.recs[:n], 0
	}
}

// Forget drops the records up to and including seq (the reader has them,
// or they were trimmed).
func (h *Handoff) Forget(seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.head < len(h.recs) && h.recs[h.head].Rec.Seq <= seq {
		h.dropFirst()
	}
}

// Read returns the records after seq, at most max of them and stopping
// once maxBytes of bodies are taken (at least one record), with their
// checksums, and ok; ok is false when the hand-off does not hold every
// committed record after seq, and the caller must read the file. Records
// at or below seq are forgotten: a journal has one reader, which asks for
// the records after those it has.
func (h *Handoff) Read(seq int64, max, maxBytes int) (recs []drainpipe.Record, crcs []uint32, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.valid || seq < h.after {
		return nil, nil, false
	}
	for h.head < len(h.recs) && h.recs[h.head].Rec.Seq <= seq {
		if e := &h.recs[h.head]; e.Owned && h.Release != nil {
			h.Release(e.Rec.Body)
		}
		h.dropFirst()
	}
	size := 0
	for i := h.head; i < len(h.recs) && len(recs) < max && size < maxBytes; i++ {
		r := &h.recs[i]
		recs = append(recs, r.Rec)
		crcs = append(crcs, r.CRC)
		size += len(r.Rec.Body)
	}
	return recs, crcs, true
}
