package sqlite

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
)

// Journal body codecs (the journal's codec column).
const (
	codecRaw = 0 // the body as received
	codecS2  = 1 // an S2 block (github.com/klauspost/compress/s2)
)

// minPackedBody is the smallest body the journal compresses: below a
// page, compression saves no WAL frame.
const minPackedBody = 4 << 10

// maxExpandedBody bounds what a stored body may claim to expand to, so a
// damaged length can never make the reader allocate without bound. Drain
// bodies are limited far below it (server.DefaultMaxBodyBytes).
const maxExpandedBody = 256 << 20

// packBody returns how to store body. Logplex bodies are text that S2
// compresses about 3× at over 1 GB/s (docs/BENCHMARKS.md): the journal's
// cost is writing and syncing its WAL, so fewer bytes is less time before
// a drain POST's 200. Small or incompressible bodies stay raw.
//
// The packed bytes go into buf when it is large enough (the journal's
// single writer reuses one buffer: each insert has run before the next
// body is packed).
func packBody(buf, body []byte) (codec int64, stored []byte) {
	if len(body) < minPackedBody {
		return codecRaw, body
	}
	if n := s2.MaxEncodedLen(len(body)); n > 0 && cap(buf) < n {
		buf = make([]byte, n)
	}
	packed := s2.Encode(buf[:cap(buf)], body)
	if len(packed) >= len(body) {
		return codecRaw, body
	}
	return codecS2, packed
}

// errBadBody reports a stored body that does not expand: the record is
// damaged and is quarantined like one whose checksum fails.
var errBadBody = errors.New("journal: stored body does not decode")

// expandBody returns the body a record was appended with. The record's
// CRC covers that body, so damage to the stored bytes is found either
// here or by the checksum.
func expandBody(codec int64, stored []byte) ([]byte, error) {
	switch codec {
	case codecRaw:
		return stored, nil
	case codecS2:
		n, err := s2.DecodedLen(stored)
		if err != nil || n > maxExpandedBody {
			return nil, errBadBody
		}
		body, err := s2.Decode(make([]byte, n), stored)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadBody, err)
		}
		return body, nil
	}
	return nil, fmt.Errorf("%w: unknown codec %d", errBadBody, codec)
}
