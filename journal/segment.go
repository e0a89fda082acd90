package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// segExt ends a segment file's name; the name before it is the segment's
// first sequence number, zero-padded to 20 digits so that names sort in
// order.
const segExt = ".seg"

// segment is one segment file. The writer appends to the last one only.
type segment struct {
	first int64 // from the name: no record in it has a lower seq
	last  int64 // the highest seq in it; first-1 while it holds none
	size  int64 // bytes of committed records (and of damage kept in place)
	path  string
	// base is where its records begin: after the header, or 0 in a
	// segment from before headers. seed is the CRC state its header's
	// seed leaves (0 for one from before headers).
	base int64
	seed uint32
	// writable says that records may be appended to it: it has an
	// intact header. The writer starts a new segment rather than append
	// to one that has not (from before headers, or damaged).
	writable bool
	// slots is nil for an intact segment, which the reader walks record
	// by record. Once damage is found in it, slots lists what it holds,
	// in order: the intact records and markers for damaged ones, of its
	// first scanned bytes; the records appended after those (to a last
	// segment found damaged) are walked record by record.
	slots   []slot
	scanned int64
}

// slot is one record of a damaged segment: where an intact record lies,
// or a marker (off -1) for a damaged record whose sequence number and app
// could still be read (with its arrival time, which the reader counts
// the loss at).
type slot struct {
	seq, off int64
	n        int
	app      string
	at       int64
}

func segmentName(first int64) string { return fmt.Sprintf("%020d%s", first, segExt) }

// listSegments returns dir's segment files in order of their names.
func listSegments(dir string) ([]*segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var segs []*segment
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(name, segExt) {
			continue
		}
		first, err := strconv.ParseInt(strings.TrimSuffix(name, segExt), 10, 64)
		if err != nil || first < 1 {
			return nil, fmt.Errorf("segment %s: the name is not a sequence number", filepath.Join(dir, name))
		}
		segs = append(segs, &segment{first: first, last: first - 1, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return int(min(max(a.first-b.first, -1), 1)) })
	return segs, nil
}

// scan walks the records in data, a segment's bytes, from start (its
// base), checked with the segment's CRC state seed. visit is called for
// each intact record, in order; a record counts as intact only when its
// checksum matches and its seq is above the one before it (after, for the
// first). damaged is called, before the visit of the record that follows
// it, for each run of bytes between two intact records that is not one
// (the reader resynchronises on the next magic that starts an intact
// record). scan returns the offset after the last intact record: any
// bytes after it hold none.
func scan(data []byte, start int, after int64, seed uint32, visit func(e *entry, off, n int), damaged func(off, end int, prev, next int64)) int {
	off, end, prev := start, start, after
	for off < len(data) {
		e, n, err := decodeRecord(data[off:], seed)
		if err == nil && e.Seq > prev {
			visit(&e, off, n)
			prev, off = e.Seq, off+n
			end = off
			continue
		}
		next, ne := resync(data, off+1, prev, seed)
		if next < 0 {
			return end
		}
		damaged(off, next, prev, ne.Seq)
		off = next
	}
	return end
}

// resync returns the offset of the first intact record at or after from
// whose seq is above prev, or -1. A record forged inside a batch body
// does not count: its checksum does not cover the segment's seed.
func resync(data []byte, from int, prev int64, seed uint32) (int, entry) {
	for from < len(data) {
		i := bytes.Index(data[from:], magic[:])
		if i < 0 {
			return -1, entry{}
		}
		from += i
		if e, _, err := decodeRecord(data[from:], seed); err == nil && e.Seq > prev {
			return from, e
		}
		from++
	}
	return -1, entry{}
}

// marker returns a marker slot for the damaged record that starts bad:
// its seq and app, when they can still be read and make sense (seq between its intact
// neighbours', a short printable app name): the reader then reports the
// record as Damaged, so its loss is counted for its app. ok is false when
// nothing can be said of it.
func marker(bad []byte, prev, next int64) (slot, bool) {
	if _, err := recordLen(bad); err != nil || len(bad) < headerSize+fixedSize {
		return slot{}, false
	}
	e, err := decodePayload(bad[headerSize:])
	if err != nil || e.Seq <= prev || e.Seq >= next || e.App == "" || len(e.App) > 100 {
		return slot{}, false
	}
	for _, c := range []byte(e.App) {
		if c <= ' ' || c >= 0x7f {
			return slot{}, false
		}
	}
	return slot{seq: e.Seq, off: -1, app: e.App, at: e.ReceivedAt}, true
}

// claimedLast returns the highest seq above prev that the record headers
// in data claim, walking them by their lengths without checking their
// checksums, or prev.
func claimedLast(data []byte, prev int64) int64 {
	last := prev
	for off := 0; off < len(data); {
		n, err := recordLen(data[off:])
		if err != nil || len(data)-off < headerSize+fixedSize {
			break
		}
		if e, err := decodePayload(data[off+headerSize : off+min(n, len(data)-off)]); err == nil && e.Seq > last {
			last = e.Seq
		}
		off += n
	}
	return last
}

// quarantineCopy writes the damaged bytes of segment seg at off to the
// quarantine directory and reports whether it made a new copy (false when
// this damage was copied before, by an earlier start).
func quarantineCopy(qdir string, seg *segment, off int64, bad []byte) (bool, error) {
	if err := os.MkdirAll(qdir, 0o750); err != nil {
		return false, fmt.Errorf("quarantine: %w", err)
	}
	name := filepath.Join(qdir, fmt.Sprintf("%s-%d.bad", strings.TrimSuffix(filepath.Base(seg.path), segExt), off))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("quarantine: %w", err)
	}
	_, err = f.Write(bad)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return false, fmt.Errorf("quarantine %s: %w", name, err)
	}
	return true, nil
}

// syncDir makes the creation or removal of files in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
