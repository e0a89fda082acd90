package journal

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/batchcodec"
)

// A segment file begins with a header, written and fdatasynced when the
// segment is created, before any record goes into it:
//
//	off  size  field
//	  0     4  magic "DPJS"
//	  4     4  format version (1)
//	  8    16  seed: random bytes (crypto/rand), this segment's own
//	 24     4  CRC-32C of bytes 0 to 23
//
// Records follow it, one after the other. A record, all integers
// little-endian:
//
//	off  size  field
//	  0     4  magic "DPJ1"
//	  4     4  length: bytes after the checksum (payload, 38 + app + frame id + body)
//	  8     4  CRC-32C (Castagnoli) of the segment's seed, then the payload
//	 12     8  seq
//	 20     8  received_at, Unix nanoseconds
//	 28     8  dropped (Logplex-Drop-Count)
//	 36     8  lost (Logplex-Lost-Count)
//	 44     1  codec (batchcodec.Raw or batchcodec.S2)
//	 45     1  flags (flagDamaged: a marker for a record lost before it got here)
//	 46     2  length of app
//	 48     2  length of frame id
//	 50        app, frame id, stored body
//
// The checksum covers every payload byte, the sequence number included,
// so a record is either read exactly as written or not at all. It covers
// the seed first so that bytes a client sent cannot pass for a record: a
// batch body may hold a whole record with any app and seq, and a reader
// resynchronising after damage looks for the next record at every magic.
// The seed is never shown to a client, so a record forged in a body
// matches its segment's checksum with probability 2^-32 at most. The
// seed costs nothing per record: the CRC starts from the state the seed
// leaves (seg.seed), computed once per segment.
//
// Segments written before the header existed (the first builds of
// session 4) begin with a record: they are read as seed-less (the CRC
// starts from 0, the payload's plain CRC-32C), and no record is appended
// to one; the next append starts a new segment.
const (
	headerSize  = 12
	fixedSize   = 38 // payload bytes before app, frame id and body
	flagDamaged = 1

	// maxPayload bounds the length field: nothing larger is ever
	// written, so a larger length is damage.
	maxPayload = batchcodec.MaxExpanded + fixedSize + 2*0xffff

	segHeaderSize = 28
	segVersion    = 1
	seedSize      = 16
)

var (
	magic    = [4]byte{'D', 'P', 'J', '1'}
	segMagic = [4]byte{'D', 'P', 'J', 'S'}
)

// newSegmentHeader returns a new segment's header, with a fresh random
// seed, and the CRC state the seed leaves (never 0, the seed-less state).
func newSegmentHeader() ([]byte, uint32, error) {
	var seed [seedSize]byte
	for {
		if _, err := rand.Read(seed[:]); err != nil {
			return nil, 0, fmt.Errorf("segment seed: %w", err)
		}
		if st := seedState(seed[:]); st != 0 {
			return segmentHeaderOf(seed), st, nil
		}
	}
}

// segmentHeaderOf returns the header of a segment whose seed is seed.
func segmentHeaderOf(seed [seedSize]byte) []byte {
	hdr := make([]byte, 0, segHeaderSize)
	hdr = append(hdr, segMagic[:]...)
	hdr = binary.LittleEndian.AppendUint32(hdr, segVersion)
	hdr = append(hdr, seed[:]...)
	return binary.LittleEndian.AppendUint32(hdr, crc32.Checksum(hdr, batchcodec.Castagnoli))
}

// seedState is the CRC-32C state after seed: a record's checksum is
// crc32.Update(seedState(seed), Castagnoli, payload).
func seedState(seed []byte) uint32 { return crc32.Checksum(seed, batchcodec.Castagnoli) }

// segKind says what a segment file begins with.
type segKind int

const (
	segSeeded    segKind = iota // an intact header
	segLegacy                   // a record: written before headers, seed-less
	segEmpty                    // fewer bytes than a header and no record: a creation cut short
	segBadHeader                // a header that fails its checksum or version
)

// segmentHeader reads the start of a segment file's bytes: what they
// are, where its records begin, and the CRC state they are checked from.
// A damaged header's seed is used as found: if the damage spared it, the
// records still check; if not, they are damage.
func segmentHeader(data []byte) (kind segKind, base int, seed uint32) {
	switch {
	case len(data) >= len(magic) && [4]byte(data[:4]) == magic:
		return segLegacy, 0, 0
	case len(data) < segHeaderSize:
		return segEmpty, len(data), 0
	}
	seed = seedState(data[8 : 8+seedSize])
	if [4]byte(data[:4]) != segMagic || binary.LittleEndian.Uint32(data[4:]) != segVersion ||
		crc32.Checksum(data[:24], batchcodec.Castagnoli) != binary.LittleEndian.Uint32(data[24:]) {
		return segBadHeader, segHeaderSize, seed
	}
	return segSeeded, segHeaderSize, seed
}

// errDamaged reports bytes that are not a whole, intact record.
var errDamaged = errors.New("not an intact record")

// errShort reports bytes that end before the record they begin does.
var errShort = fmt.Errorf("%w: cut short", errDamaged)

// entry is what a record holds, as written and as decoded (Body is the
// stored body, S2-packed when Codec says so).
type entry struct {
	Seq        int64
	ReceivedAt int64
	Dropped    int64
	Lost       int64
	Codec      uint8
	Flags      uint8
	App        string
	FrameID    string
	Stored     []byte
}

// appendRecord appends e, encoded for a segment whose seed leaves CRC
// state seed, to buf.
func appendRecord(buf []byte, e *entry, seed uint32) []byte {
	start := len(buf)
	buf = appendHeader(buf, e)
	buf = append(buf, e.Stored...)
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Update(seed, batchcodec.Castagnoli, buf[start+headerSize:]))
	return buf
}

// appendHeader appends e's record up to its stored body, which the
// caller writes after it (the writer hands both to one pwritev), with a
// zero checksum: the checksum is that of the payload, which
// payloadCRC computes from the two.
func appendHeader(buf []byte, e *entry) []byte {
	payload := fixedSize + len(e.App) + len(e.FrameID) + len(e.Stored)
	buf = append(buf, magic[:]...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(payload))
	buf = binary.LittleEndian.AppendUint32(buf, 0) // the checksum, below
	buf = binary.LittleEndian.AppendUint64(buf, uint64(e.Seq))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(e.ReceivedAt))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(e.Dropped))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(e.Lost))
	buf = append(buf, e.Codec, e.Flags)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(e.App)))
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(e.FrameID)))
	buf = append(buf, e.App...)
	return append(buf, e.FrameID...)
}

// payloadCRC is the checksum of a record whose header (from
// appendHeader) is hdr and whose stored body is body, in a segment whose
// seed leaves CRC state seed.
func payloadCRC(hdr, body []byte, seed uint32) uint32 {
	return crc32.Update(crc32.Update(seed, batchcodec.Castagnoli, hdr[headerSize:]), batchcodec.Castagnoli, body)
}

// recordLen returns the length of the record whose header starts b
// (headerSize bytes at least), or errDamaged when the header cannot begin
// one.
func recordLen(b []byte) (int, error) {
	if len(b) < headerSize {
		return 0, errShort
	}
	if [4]byte(b[:4]) != magic {
		return 0, fmt.Errorf("%w: no magic", errDamaged)
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n < fixedSize || n > maxPayload {
		return 0, fmt.Errorf("%w: payload length %d", errDamaged, n)
	}
	return headerSize + int(n), nil
}

// decodeRecord decodes the record at the start of b, in a segment whose
// seed leaves CRC state seed, and returns it and its length. The entry's strings are copies; Stored aliases b. Any
// error wraps errDamaged: the bytes are not a record exactly as written.
func decodeRecord(b []byte, seed uint32) (entry, int, error) {
	n, err := recordLen(b)
	if err != nil {
		return entry{}, 0, err
	}
	if len(b) < n {
		return entry{}, 0, errShort
	}
	p := b[headerSize:n]
	if crc32.Update(seed, batchcodec.Castagnoli, p) != binary.LittleEndian.Uint32(b[8:]) {
		return entry{}, 0, fmt.Errorf("%w: checksum mismatch", errDamaged)
	}
	e, err := decodePayload(p)
	return e, n, err
}

// decodePayload splits a payload whose checksum matched (or, for a
// damaged record, may not have) into its fields.
func decodePayload(p []byte) (entry, error) {
	if len(p) < fixedSize {
		return entry{}, errShort
	}
	e := entry{
		Seq:        int64(binary.LittleEndian.Uint64(p[0:])),
		ReceivedAt: int64(binary.LittleEndian.Uint64(p[8:])),
		Dropped:    int64(binary.LittleEndian.Uint64(p[16:])),
		Lost:       int64(binary.LittleEndian.Uint64(p[24:])),
		Codec:      p[32],
		Flags:      p[33],
	}
	al, fl := int(binary.LittleEndian.Uint16(p[34:])), int(binary.LittleEndian.Uint16(p[36:]))
	if fixedSize+al+fl > len(p) {
		return entry{}, fmt.Errorf("%w: names longer than the record", errDamaged)
	}
	if e.Seq <= 0 || e.Codec > batchcodec.S2 || e.Flags&^flagDamaged != 0 {
		return entry{}, fmt.Errorf("%w: impossible field", errDamaged)
	}
	e.App = string(p[fixedSize : fixedSize+al])
	e.FrameID = string(p[fixedSize+al : fixedSize+al+fl])
	e.Stored = p[fixedSize+al+fl:]
	return e, nil
}

// record returns the journal record e holds, its body expanded. A
// damaged marker, or a body that does not expand, is a Damaged record.
func (e *entry) record() (drainpipe.Record, error) {
	r := drainpipe.Record{Seq: e.Seq, Batch: drainpipe.Batch{
		App: e.App, FrameID: e.FrameID, ReceivedAt: time.Unix(0, e.ReceivedAt).UTC(),
		Dropped: e.Dropped, Lost: e.Lost,
	}}
	if e.Flags&flagDamaged != 0 {
		r.Dropped, r.Lost, r.Damaged = 0, 0, true
		return r, nil
	}
	body, err := batchcodec.Expand(int64(e.Codec), e.Stored)
	if err != nil {
		return r, err
	}
	r.Body = body
	return r, nil
}

// tornLen says what the bytes after the last intact record of a segment
// (tail; last is that record's seq) are. It returns how many of them
// belong to a record that was being written after it, when they begin
// with one's header: the magic (or as much of it as there is) and a
// possible length, and a seq above last where there are enough bytes to
// hold one. It returns 0 when they do not: free space written ahead
// (Options.WriteAhead), which holds zeroes or the records of the segment
// the file was before it was retired, all numbered before this one's.
func tornLen(tail []byte, last int64) int {
	if len(tail) == 0 || !bytes.HasPrefix(magic[:], tail[:min(len(tail), len(magic))]) {
		return 0
	}
	if len(tail) < headerSize {
		return len(tail)
	}
	n, err := recordLen(tail)
	if err != nil {
		return 0
	}
	if len(tail) >= headerSize+8 && int64(binary.LittleEndian.Uint64(tail[headerSize:])) <= last {
		return 0
	}
	return min(n, len(tail))
}

// damagedNext says whether the bytes after the last intact record of the
// last segment (tail; last is that record's seq), which tornLen did not
// take for a torn append, are the next record with its magic or length
// damaged: they are when its seq field reads last+1, which free space
// never holds (zeroes, or a retired segment's lower seqs). It returns how
// many bytes to cut: the record's length when that reads as one, else
// the whole tail; 0 when they are not.
func damagedNext(tail []byte, last int64) int {
	if len(tail) < headerSize+8 || int64(binary.LittleEndian.Uint64(tail[headerSize:])) != last+1 {
		return 0
	}
	if n := binary.LittleEndian.Uint32(tail[4:]); n >= fixedSize && n <= maxPayload {
		return min(headerSize+int(n), len(tail))
	}
	return len(tail)
}
