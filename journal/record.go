package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/batchcodec"
)

// A record in a segment file, all integers little-endian:
//
//	off  size  field
//	  0     4  magic "DPJ1"
//	  4     4  length: bytes after the checksum (payload, 38 + app + frame id + body)
//	  8     4  CRC-32C (Castagnoli) of the payload
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
// so a record is either read exactly as written or not at all.
const (
	headerSize  = 12
	fixedSize   = 38 // payload bytes before app, frame id and body
	flagDamaged = 1

	// maxPayload bounds the length field: nothing larger is ever
	// written, so a larger length is damage.
	maxPayload = batchcodec.MaxExpanded + fixedSize + 2*0xffff
)

var magic = [4]byte{'D', 'P', 'J', '1'}

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

// size returns the bytes the record takes in a segment.
func (e *entry) size() int {
	return headerSize + fixedSize + len(e.App) + len(e.FrameID) + len(e.Stored)
}

// appendRecord appends e, encoded, to buf.
func appendRecord(buf []byte, e *entry) []byte {
	start := len(buf)
	buf = appendHeader(buf, e)
	buf = append(buf, e.Stored...)
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Checksum(buf[start+headerSize:], batchcodec.Castagnoli))
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
// appendHeader) is hdr and whose stored body is body.
func payloadCRC(hdr, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(hdr[headerSize:], batchcodec.Castagnoli), batchcodec.Castagnoli, body)
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

// decodeRecord decodes the record at the start of b and returns it and
// its length. The entry's strings are copies; Stored aliases b. Any
// error wraps errDamaged: the bytes are not a record exactly as written.
func decodeRecord(b []byte) (entry, int, error) {
	n, err := recordLen(b)
	if err != nil {
		return entry{}, 0, err
	}
	if len(b) < n {
		return entry{}, 0, errShort
	}
	p := b[headerSize:n]
	if crc32.Checksum(p, batchcodec.Castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
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
