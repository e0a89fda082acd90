package logplex

import (
	"io"
	"strconv"
)

// MaxFrameLen is the largest frame length a Reader accepts. Logplex itself
// never sends messages longer than about 10 KB; anything above 1 MiB is
// treated as garbage in the length prefix.
const MaxFrameLen = 1 << 20

// FrameError reports a body that cannot be framed. After a FrameError the
// framing of the rest of the body is lost, so Reader.Next keeps returning
// the same error.
type FrameError struct {
	Offset int    // byte offset in the body of the frame that could not be read
	Reason string // short, constant description, usable as a metric label
}

func (e *FrameError) Error() string {
	return "logplex: bad frame at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Reasons carried by FrameError.
const (
	ReasonBadLength    = "frame length is not a number"
	ReasonZeroLength   = "zero frame length"
	ReasonLongFrame    = "frame length exceeds MaxFrameLen"
	ReasonMissingSpace = "missing space after frame length"
	ReasonTruncated    = "frame runs past end of body"
)

// Reader splits a Logplex HTTPS drain body (application/logplex-1) into
// RFC 6587 octet-counted frames: `<decimal length> SP <message>`.
//
// It is lenient in the ways real senders need: a trailing "\n" (or "\r\n")
// inside the counted bytes is stripped from the returned message, stray
// "\n" / "\r\n" between frames that are not counted are skipped, and a
// last frame whose count is one more than the bytes left (its counted
// "\n" lost) is read as the bytes left.
//
// The zero Reader is an empty body. A Reader is not safe for concurrent use.
type Reader struct {
	body []byte
	pos  int
	err  error
}

// NewReader returns a Reader over body. The frames it returns alias body.
func NewReader(body []byte) *Reader {
	return &Reader{body: body}
}

// Reset makes r read body from the start, so one Reader can be reused
// without allocating.
func (r *Reader) Reset(body []byte) {
	r.body = body
	r.pos = 0
	r.err = nil
}

// Offset is the number of body bytes consumed so far.
func (r *Reader) Offset() int { return r.pos }

// Next returns the message of the next frame, without its length prefix and
// without a trailing newline. The slice aliases the body. At the clean end
// of the body Next returns io.EOF; when the body cannot be framed it returns
// a *FrameError, and keeps returning it on later calls.
func (r *Reader) Next() (frame []byte, err error) {
	if r.err != nil {
		return nil, r.err
	}
	b := r.body
	i := r.pos
	for i < len(b) && (b[i] == '\n' || b[i] == '\r') {
		i++
	}
	r.pos = i
	if i >= len(b) {
		return nil, io.EOF
	}
	start := i
	n := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + int(b[i]-'0')
		if n > MaxFrameLen {
			return nil, r.fail(start, ReasonLongFrame)
		}
		i++
	}
	switch {
	case i == start:
		return nil, r.fail(start, ReasonBadLength)
	case i >= len(b) || b[i] != ' ':
		return nil, r.fail(start, ReasonMissingSpace)
	case n == 0:
		return nil, r.fail(start, ReasonZeroLength)
	}
	i++ // the space
	if n > len(b)-i {
		// A last frame one byte short is taken as it is: its count
		// includes a trailing "\n" the body lost (SPEC §1.1's example
		// frame copied without it, a shell's $(…) stripping it).
		if n-1 != len(b)-i || n == 1 {
			return nil, r.fail(start, ReasonTruncated)
		}
		n--
	}
	frame = b[i : i+n : i+n]
	r.pos = i + n
	if l := len(frame); frame[l-1] == '\n' {
		frame = frame[:l-1]
		if l > 1 && frame[l-2] == '\r' {
			frame = frame[:l-2]
		}
	}
	return frame, nil
}

func (r *Reader) fail(off int, reason string) error {
	r.err = &FrameError{Offset: off, Reason: reason}
	return r.err
}
