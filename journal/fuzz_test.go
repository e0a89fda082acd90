package journal

import (
	"bytes"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes, as a damaged segment file
// holds them (a header with its seed, or records from before headers),
// to the header reader, the record decoder and the segment scanner: none
// may panic or allocate without bound, a record decodes only if it
// re-encodes to the same bytes under the segment's seed, and the scanner
// reports only such records, in ascending order, inside the input.
func FuzzDecodeRecord(f *testing.F) {
	hdr := segmentHeaderOf([seedSize]byte{0x5e, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
	seed := seedState(hdr[8 : 8+seedSize])
	body := []byte("83 <158>1 2026-11-25T10:00:00+00:00 host heroku router - at=info status=200\n")
	for _, seg := range []struct {
		start []byte
		seed  uint32
	}{{nil, 0}, {hdr, seed}} {
		one := appendRecord(bytes.Clone(seg.start), &entry{Seq: 7, ReceivedAt: 1764064800000000000, Dropped: 1, Lost: 2, App: "shop", FrameID: "f1", Stored: body}, seg.seed)
		two := appendRecord(bytes.Clone(one), &entry{Seq: 8, ReceivedAt: 1764064801000000000, App: "shop", Flags: flagDamaged}, seg.seed)
		f.Add(one)
		f.Add(two)
		f.Add(append(bytes.Clone(two), one[len(seg.start):len(seg.start)+20]...))
	}
	f.Add(hdr)
	f.Add(hdr[:10])
	f.Add([]byte("DPJ1\x26\x00\x00\x00\x00\x00\x00\x00"))
	// A segment written ahead: records, then zeroes or another
	// segment's records.
	rec := appendRecord(bytes.Clone(hdr), &entry{Seq: 3, ReceivedAt: 1764064800000000000, App: "shop", FrameID: "f", Stored: body}, seed)
	f.Add(append(bytes.Clone(rec), make([]byte, 200)...))
	f.Add(appendRecord(bytes.Clone(rec), &entry{Seq: 2, App: "shop", Stored: body}, 12345))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, base, seed := segmentHeader(data)
		switch {
		case kind == segLegacy && (base != 0 || seed != 0),
			kind == segEmpty && (base != len(data) || base >= segHeaderSize),
			(kind == segSeeded || kind == segBadHeader) && base != segHeaderSize:
			t.Fatalf("header kind %d base %d seed %x of %d bytes", kind, base, seed, len(data))
		}
		if e, n, err := decodeRecord(data[base:], seed); err == nil {
			if n > len(data)-base {
				t.Fatalf("length %d beyond the %d bytes", n, len(data)-base)
			}
			if again := appendRecord(nil, &e, seed); !bytes.Equal(again, data[base:base+n]) {
				t.Fatalf("decoded record re-encodes differently")
			}
			if _, err := e.record(); err != nil && e.Codec == 0 && e.Flags == 0 {
				t.Fatalf("a raw record does not expand: %v", err)
			}
		}
		prev := int64(0)
		end := scan(data, base, 0, seed, func(e *entry, off, n int) {
			if e.Seq <= prev || off < base || off+n > len(data) {
				t.Fatalf("scan visited seq %d at %d+%d after %d", e.Seq, off, n, prev)
			}
			prev = e.Seq
		}, func(off, end int, p, next int64) {
			if off < base || off >= end || end > len(data) || next <= p {
				t.Fatalf("damage %d..%d between %d and %d", off, end, p, next)
			}
			marker(data[off:end], p, next)
		})
		if end < base || end > len(data) {
			t.Fatalf("scan end %d outside %d..%d", end, base, len(data))
		}
		// What follows the last intact record: a torn append (within
		// the bytes there, starting with a header numbered after the
		// last) or free space written ahead.
		tail := data[end:]
		if n := tornLen(tail, prev); n < 0 || n > len(tail) || (n > 0 && !bytes.HasPrefix(magic[:], tail[:min(len(tail), 4)])) {
			t.Fatalf("torn length %d of a %d-byte tail", n, len(tail))
		}
		claimedLast(data[base:], 0)
	})
}
