// Package batchcodec holds what both embedded journals (the segment-file
// journal in package journal and the SQLite journal) store with a drain
// batch: the record checksum and the body codecs.
package batchcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/s2"
)

// Body codecs, as stored with each record.
const (
	Raw = 0 // the body as received
	S2  = 1 // an S2 block (github.com/klauspost/compress/s2)
)

// MinPacked is the smallest body Pack compresses: below a page,
// compression saves no WAL frame.
const MinPacked = 4 << 10

// MaxExpanded bounds what a stored body may claim to expand to, so a
// damaged length can never make the reader allocate without bound. Drain
// bodies are limited far below it (server.DefaultMaxBodyBytes).
const MaxExpanded = 256 << 20

// Pack returns how to store body: S2-compressed when it is at least
// MinPacked bytes and compresses, else as it is. Logplex bodies are text
// that S2 compresses about 3× at over 1 GB/s (docs/BENCHMARKS.md).
//
// The packed bytes go into buf when it is large enough.
func Pack(buf, body []byte) (codec int64, stored []byte) {
	if len(body) < MinPacked {
		return Raw, body
	}
	if n := s2.MaxEncodedLen(len(body)); n > 0 && cap(buf) < n {
		buf = make([]byte, n)
	}
	packed := s2.Encode(buf[:cap(buf)], body)
	if len(packed) >= len(body) {
		return Raw, body
	}
	return S2, packed
}

// ErrBadBody reports a stored body that does not expand: the record is
// damaged and is quarantined like one whose checksum fails.
var ErrBadBody = errors.New("journal: stored body does not decode")

// Expand returns the body a record was appended with. The record's CRC
// covers that body, so damage to the stored bytes is found either here or
// by the checksum.
func Expand(codec int64, stored []byte) ([]byte, error) {
	switch codec {
	case Raw:
		return stored, nil
	case S2:
		n, err := s2.DecodedLen(stored)
		if err != nil || n > MaxExpanded {
			return nil, ErrBadBody
		}
		body, err := s2.Decode(make([]byte, n), stored)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadBody, err)
		}
		return body, nil
	}
	return nil, fmt.Errorf("%w: unknown codec %d", ErrBadBody, codec)
}

// Castagnoli is the CRC-32C table of every journal checksum.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// RecordCRC is the CRC-32C of a batch: over its app, frame id, arrival
// time (Unix nanoseconds), drop and lost counts and body as received. The
// SQLite journal stores it with each record; both journals keep it with
// the records they hand to the reader from memory, which checks it again.
func RecordCRC(app, frameID string, receivedAt, dropped, lost int64, body []byte) uint32 {
	var hdr [3 * binary.MaxVarintLen64]byte
	c := crc32.Update(0, Castagnoli, binary.AppendUvarint(hdr[:0], uint64(len(app))))
	c = crc32.Update(c, Castagnoli, []byte(app))
	c = crc32.Update(c, Castagnoli, binary.AppendUvarint(hdr[:0], uint64(len(frameID))))
	c = crc32.Update(c, Castagnoli, []byte(frameID))
	h := binary.AppendVarint(hdr[:0], receivedAt)
	h = binary.AppendVarint(h, dropped)
	h = binary.AppendVarint(h, lost)
	c = crc32.Update(c, Castagnoli, h)
	return crc32.Update(c, Castagnoli, body)
}
