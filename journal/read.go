package journal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/drainpipe/drainpipe"
)

// readFiles is Read from the segment files.
func (j *Journal) readFiles(ctx context.Context, after int64, max int) ([]drainpipe.Record, error) {
	j.rmu.Lock()
	defer j.rmu.Unlock()
	j.smu.RLock()
	var segs []segment
	for _, s := range j.segs {
		if s.last > after {
			segs = append(segs, *s)
		}
	}
	j.smu.RUnlock()
	var out []drainpipe.Record
	size := 0
	for i := range segs {
		if len(out) >= max || size >= MaxReadBytes {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		recs, err := j.readSegment(&segs[i], after, max-len(out), MaxReadBytes-size)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			size += len(r.Body)
		}
		if len(recs) > 0 {
			after = recs[len(recs)-1].Seq
		}
		out = append(out, recs...)
	}
	return out, nil
}

// readSegment reads the records after after from s (a copy of the
// segment as it was committed), at most max of them and maxBytes of
// bodies (at least one). An intact segment is read record by record from
// where the last read ended, or from its start; damage found on the way
// has the segment scanned whole (rescan), and its slots read instead,
// then the records appended after the scan record by record.
func (j *Journal) readSegment(s *segment, after int64, max, maxBytes int) ([]drainpipe.Record, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // trimmed meanwhile: nothing in it is wanted
	}
	if err != nil {
		return nil, fmt.Errorf("journal: read: %w", err)
	}
	defer f.Close()
	var out []drainpipe.Record
	size := 0
	off := s.base
	if c := j.cur; c.seg == s.first && c.after == after && c.off <= s.size && c.off >= s.scanned {
		off = c.off
	} else if s.slots != nil {
		// The scanned part from its slots, then the records appended
		// after the scan (the segment is the last, still written).
		if out, err = j.readSlots(f, s, after, max, maxBytes, true); err != nil || s.scanned >= s.size {
			return out, err
		}
		for _, r := range out {
			size += len(r.Body)
		}
		off = s.scanned
	}
	var hdr [headerSize]byte
	for off < s.size && len(out) < max && size < maxBytes {
		var e entry
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return j.rescanAndRead(f, s, after, max, maxBytes)
		}
		n, err := recordLen(hdr[:])
		if err != nil || off+int64(n) > s.size {
			return j.rescanAndRead(f, s, after, max, maxBytes)
		}
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			return j.rescanAndRead(f, s, after, max, maxBytes)
		}
		if e, _, err = decodeRecord(buf, s.seed); err != nil {
			return j.rescanAndRead(f, s, after, max, maxBytes)
		}
		if e.Seq > after {
			r, err := e.record()
			if err != nil {
				return j.rescanAndRead(f, s, after, max, maxBytes)
			}
			out = append(out, r)
			size += len(r.Body)
		}
		off += int64(n)
	}
	if len(out) > 0 {
		j.cur = cursor{seg: s.first, after: out[len(out)-1].Seq, off: off}
	}
	return out, nil
}

func (j *Journal) rescanAndRead(f *os.File, s *segment, after int64, max, maxBytes int) ([]drainpipe.Record, error) {
	if err := j.rescan(f, s); err != nil {
		return nil, err
	}
	return j.readSlots(f, s, after, max, maxBytes, false)
}

// rescan scans segment s whole after damage was found in it: the damage
// is copied to quarantine and counted, and s.slots (in the copy and in
// the journal's segment) lists what can be read.
func (j *Journal) rescan(f *os.File, s *segment) error {
	data := make([]byte, s.size)
	if _, err := f.ReadAt(data, 0); err != nil {
		return fmt.Errorf("journal: read %s: %w", s.path, err)
	}
	slots := []slot{}
	end := scan(data, int(s.base), s.first-1, s.seed, func(e *entry, off, n int) {
		slots = append(slots, slot{seq: e.Seq, off: int64(off), n: n})
	}, func(off, end int, prev, next int64) {
		if m, ok := marker(data[off:end], prev, next); ok {
			slots = append(slots, m)
		}
		j.quarantine(s, int64(off), data[off:end], "checksum mismatch on read")
	})
	if end < len(data) {
		// Committed bytes with no intact record after them: damage.
		prev := s.first - 1
		if len(slots) > 0 {
			prev = slots[len(slots)-1].seq
		}
		if m, ok := marker(data[end:], prev, s.last+1); ok {
			slots = append(slots, m)
		}
		j.quarantine(s, int64(end), data[end:], "checksum mismatch on read")
	}
	s.slots, s.scanned = slots, s.size
	j.smu.Lock()
	for _, js := range j.segs {
		if js.first == s.first {
			js.slots, js.scanned = slots, s.size
		}
	}
	j.smu.Unlock()
	return nil
}

// readSlots reads the records after after from a scanned segment.
func (j *Journal) readSlots(f *os.File, s *segment, after int64, max, maxBytes int, retry bool) ([]drainpipe.Record, error) {
	var out []drainpipe.Record
	size := 0
	for _, sl := range s.slots {
		if len(out) >= max || size >= maxBytes {
			break
		}
		if sl.seq <= after {
			continue
		}
		if sl.off < 0 {
			out = append(out, drainpipe.Record{Seq: sl.seq, Damaged: true,
				Batch: drainpipe.Batch{App: sl.app, ReceivedAt: time.Unix(0, sl.at).UTC()}})
			continue
		}
		buf := make([]byte, sl.n)
		_, err := f.ReadAt(buf, sl.off)
		var e entry
		if err == nil {
			e, _, err = decodeRecord(buf, s.seed)
		}
		var r drainpipe.Record
		if err == nil {
			if r, err = e.record(); err != nil {
				// The checksum matched but the body does not expand:
				// not bytes the journal wrote (a batch body can hold a
				// whole record, which resync may take for one). Damage,
				// not a reason to fail every read from here on.
				j.quarantine(s, sl.off, buf, "stored body does not expand")
				r = drainpipe.Record{Seq: e.Seq, Damaged: true, Batch: drainpipe.Batch{App: e.App, ReceivedAt: r.ReceivedAt}}
				err = nil
			}
		}
		if err != nil {
			if !retry {
				return nil, fmt.Errorf("journal: %s changes under the reader: %w", s.path, err)
			}
			return j.rescanAndRead(f, s, after, max, maxBytes)
		}
		out = append(out, r)
		size += len(r.Body)
	}
	return out, nil
}
