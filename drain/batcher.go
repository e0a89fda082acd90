package drain

import (
	"context"
	"time"

	"github.com/drainpipe/drainpipe/logplex"
)

// Logplex's batch limits, the Batcher's defaults.
const (
	DefaultBatchMessages = 500
	DefaultBatchBytes    = 1 << 20
)

// FlushFunc receives a full batch: body holds n frames. body is only valid
// during the call (the Batcher reuses its buffer); a FlushFunc that hands
// the body to another goroutine must copy it.
type FlushFunc func(body []byte, n int) error

// Batcher accumulates lines into a logplex-1 body and flushes it when it
// holds MaxMessages frames, or before a frame would take it past MaxBytes.
// A single frame larger than MaxBytes is sent alone. A Batcher is not safe
// for concurrent use.
type Batcher struct {
	// MaxMessages and MaxBytes bound one batch (defaults 500 and 1 MiB).
	MaxMessages int
	MaxBytes    int
	// Hostname is the syslog HOSTNAME written into every frame ("host",
	// like Heroku, when empty).
	Hostname string

	flush FlushFunc
	buf   []byte
	n     int
}

// NewBatcher returns a Batcher that calls flush with every full batch.
// Zero or negative limits take the defaults.
func NewBatcher(maxMessages, maxBytes int, flush FlushFunc) *Batcher {
	if maxMessages <= 0 {
		maxMessages = DefaultBatchMessages
	}
	if maxBytes <= 0 {
		maxBytes = DefaultBatchBytes
	}
	return &Batcher{MaxMessages: maxMessages, MaxBytes: maxBytes, Hostname: "host", flush: flush}
}

// SenderBatcher returns a Batcher that sends every full batch with c.Send
// and ctx, synchronously.
func SenderBatcher(ctx context.Context, c *Client, maxMessages, maxBytes int) *Batcher {
	return NewBatcher(maxMessages, maxBytes, func(body []byte, n int) error {
		return c.Send(ctx, body, n)
	})
}

// Add appends one line as a frame written by logplex.AppendMessage (syslog
// APP-NAME appName, e.g. "heroku" or "app"; PROCID procID, e.g. "router" or
// "web.1"; PRI 190; one trailing newline of msg is dropped and the frame
// ends in its own), flushing first if the
// frame would not fit and afterwards if the batch is full. It returns the
// flush error, if any; the line is kept either way.
func (b *Batcher) Add(t time.Time, appName, procID, msg string) error {
	host := b.Hostname
	if host == "" {
		host = "host"
	}
	var err error
	size := 64 + len(host) + len(appName) + len(procID) + len(msg)
	if b.n > 0 && len(b.buf)+size > b.MaxBytes {
		err = b.Flush()
	}
	start := len(b.buf)
	b.buf = logplex.AppendMessage(b.buf, t, host, appName, procID, msg)
	if b.n > 0 && len(b.buf) > b.MaxBytes {
		// The estimate was short: move the frame into the next batch.
		frame := append([]byte(nil), b.buf[start:]...)
		b.buf = b.buf[:start]
		if ferr := b.Flush(); err == nil {
			err = ferr
		}
		b.buf = append(b.buf, frame...)
	}
	b.n++
	if b.n >= b.MaxMessages || len(b.buf) >= b.MaxBytes {
		if ferr := b.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// AddBytes is Add for a message held in a byte slice; msg is copied.
func (b *Batcher) AddBytes(t time.Time, appName, procID string, msg []byte) error {
	return b.Add(t, appName, procID, unsafeString(msg))
}

// Flush hands the pending frames, if any, to the flush function and empties
// the batch.
func (b *Batcher) Flush() error {
	if b.n == 0 {
		return nil
	}
	body, n := b.buf, b.n
	b.buf, b.n = b.buf[:0], 0
	return b.flush(body, n)
}

// Len returns the number of frames waiting.
func (b *Batcher) Len() int { return b.n }

// Size returns the byte size of the frames waiting.
func (b *Batcher) Size() int { return len(b.buf) }
