package journal

import (
	"bytes"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes, as a damaged segment holds
// them, to the record decoder and the segment scanner: neither may panic
// or allocate without bound, a record decodes only if it re-encodes to
// the same bytes, and the scanner reports only such records, in
// ascending order, inside the input.
func FuzzDecodeRecord(f *testing.F) {
	one := appendRecord(nil, &entry{Seq: 7, ReceivedAt: 1764064800000000000, Dropped: 1, Lost: 2, App: "shop", FrameID: "f1", Stored: []byte("83 <158>1 2026-11-25T10:00:00+00:00 host heroku router - at=info status=200\n")})
	two := appendRecord(bytes.Clone(one), &entry{Seq: 8, ReceivedAt: 1764064801000000000, App: "shop", Flags: flagDamaged})
	f.Add(one)
	f.Add(two)
	f.Add(append(bytes.Clone(two), one[:20]...))
	f.Add([]byte("DPJ1\x26\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, n, err := decodeRecord(data); err == nil {
			if n > len(data) {
				t.Fatalf("length %d beyond the %d bytes", n, len(data))
			}
			if again := appendRecord(nil, &e); !bytes.Equal(again, data[:n]) {
				t.Fatalf("decoded record re-encodes differently")
			}
			if _, err := e.record(); err != nil && e.Codec == 0 && e.Flags == 0 {
				t.Fatalf("a raw record does not expand: %v", err)
			}
		}
		prev := int64(0)
		end := scan(data, 0, func(e *entry, off, n int) {
			if e.Seq <= prev || off+n > len(data) {
				t.Fatalf("scan visited seq %d at %d+%d after %d", e.Seq, off, n, prev)
			}
			prev = e.Seq
		}, func(off, end int, p, next int64) {
			if off >= end || end > len(data) || next <= p {
				t.Fatalf("damage %d..%d between %d and %d", off, end, p, next)
			}
			marker(data[off:end], p, next)
		})
		if end > len(data) {
			t.Fatalf("scan end %d beyond %d", end, len(data))
		}
	})
}
