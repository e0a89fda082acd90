package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logplex"
)

// maxFrameIDLen bounds the Logplex-Frame-Id kept in the journal. Logplex
// sends 32 hex digits; longer ids are replaced by their SHA-256, which
// keeps deduplication exact while bounding what a client can make us store.
const maxFrameIDLen = 128

// handleDrain is POST /drains/{app}: SPEC §1.1 and §4.
//
// The checks run in this order, each answering at once:
//  1. more than MaxConcurrentDrains in flight → 503 + Retry-After (Logplex retries);
//  2. unknown app → 404 (before credentials, as SPEC §4 asks; app names are
//     not secret, the drain URL's credentials are);
//  3. missing or wrong basic auth → 401; credentials that cannot be
//     checked because the store is unavailable → 503 + Retry-After;
//  4. Content-Length above MaxBodyBytes, or a body that turns out larger → 413;
//  5. the body cannot be read in time (ReadTimeout) or the connection
//     drops → 503 + Retry-After;
//  6. a body in which not even one frame can be read → 400 with the reason;
//  7. journal append fails or takes longer than 10 s (a full disk, a
//     journal that cannot keep up) → 503 + Retry-After (Logplex retries
//     with the same Frame-Id).
//
// Otherwise 200 with an empty body, also for a duplicate Frame-Id. A body
// whose tail cannot be framed is accepted: the aggregator counts the tail
// as rejected lines.
func (s *Server) handleDrain(w http.ResponseWriter, r *http.Request) {
	status := http.StatusOK
	defer func() { s.m.drainRequests.WithLabelValues(strconv.Itoa(status)).Inc() }()
	fail := func(code int, msg string) {
		status = code
		writeError(w, code, msg)
	}

	select {
	case s.drainSem <- struct{}{}:
		defer func() { <-s.drainSem }()
	default:
		s.m.drainShed.WithLabelValues("concurrency").Inc()
		w.Header().Set("Retry-After", "1")
		fail(http.StatusServiceUnavailable, "too many concurrent drain requests; retry")
		return
	}
	s.m.drainInFlight.Inc()
	defer s.m.drainInFlight.Dec()

	ctx := r.Context()
	app := r.PathValue("app")
	if !ValidAppName(app) {
		fail(http.StatusNotFound, "unknown app "+strconv.Quote(app))
		return
	}
	user, secret, _ := r.BasicAuth()
	if err := s.store.VerifyDrain(ctx, app, user, secret); err != nil {
		switch {
		case errors.Is(err, drainpipe.ErrNotFound):
			fail(http.StatusNotFound, "unknown app "+strconv.Quote(app))
		case errors.Is(err, drainpipe.ErrUnauthorized):
			w.Header().Set("WWW-Authenticate", `Basic realm="drainpipe"`)
			fail(http.StatusUnauthorized, "wrong or missing drain credentials")
		case errors.Is(err, drainpipe.ErrUnavailable):
			// The scale-out ingest role while PostgreSQL is down: it
			// takes the drains whose credentials it verified before.
			s.log.Warn("drain: store unavailable to verify credentials", "app", app, "err", err)
			w.Header().Set("Retry-After", unavailableRetryAfter)
			fail(http.StatusServiceUnavailable, "the metrics store is unavailable and this drain's credentials were not verified before; retry shortly")
		default:
			s.log.Error("drain: verifying credentials failed", "app", app, "err", err)
			w.Header().Set("Retry-After", "1")
			fail(http.StatusServiceUnavailable, "cannot verify credentials right now; retry")
		}
		return
	}

	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		discardExcess(r)
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit))
		return
	}
	owned, _ := s.journal.(OwnedAppender)
	body, err := readBody(w, r, limit, owned)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			discardExcess(r)
			fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", limit))
			return
		}
		// The transfer failed (a timeout, a dropped connection), not the
		// batch: 503 so that a sender that is still there retries it.
		s.log.Debug("drain: reading body failed", "app", app, "err", err)
		s.m.drainShed.WithLabelValues("read").Inc()
		w.Header().Set("Retry-After", "1")
		fail(http.StatusServiceUnavailable, "cannot read body: "+err.Error())
		return
	}

	frames, ferr := countFrames(body)
	if ferr != nil {
		s.m.drainBadFrames.WithLabelValues(ferr.Reason).Inc()
	}
	if frames == 0 {
		reason := "empty body"
		if ferr != nil {
			reason = ferr.Error()
		}
		s.log.Debug("drain: body cannot be framed", "app", app, "reason", reason)
		fail(http.StatusBadRequest, "cannot frame body: "+reason)
		return
	}

	b := drainpipe.Batch{
		App:        app,
		FrameID:    batchID(r.Header),
		ReceivedAt: s.now().UTC(),
		Body:       body,
		Dropped:    headerCount(r.Header.Get("Logplex-Drop-Count")),
		Lost:       headerCount(r.Header.Get("Logplex-Lost-Count")),
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendTimeout)
	start := time.Now()
	var dup bool
	if owned != nil && r.ContentLength >= 0 {
		// The body is the journal's buffer from here on: only its
		// length is used below.
		_, dup, err = owned.AppendOwned(actx, b)
	} else {
		_, dup, err = s.journal.Append(actx, b)
	}
	s.m.journalAppend.Observe(time.Since(start).Seconds())
	cancel()
	if err != nil {
		s.log.Error("drain: journal append failed", "app", app, "frame_id", b.FrameID, "bytes", len(body), "err", err)
		s.m.drainShed.WithLabelValues("journal").Inc()
		w.Header().Set("Retry-After", "1")
		fail(http.StatusServiceUnavailable, "cannot store batch right now; retry")
		return
	}
	if dup {
		s.m.drainDuplicates.Inc()
	} else {
		s.m.drainLines.Add(float64(frames))
		s.m.drainBytes.Add(float64(len(body)))
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// maxDiscard bounds how much of an oversized body is read and thrown away
// before answering 413.
const maxDiscard = 32 << 20

// discardExcess reads (up to maxDiscard of) the rest of an oversized body
// before the 413 is written. Clients that send the whole body before
// reading the answer (Python's urllib, many simple senders) would
// otherwise see a connection reset instead of the 413. Only authenticated
// drains get here, and the server's read timeout still bounds the time.
func discardExcess(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxDiscard))
}

// readBody reads the whole request body, at most limit bytes. With a
// Content-Length (every Logplex POST has one; the caller has checked it
// against limit) the body is read into one buffer of exactly that size
// (from bufs, the journal's, when it lends them; see OwnedAppender):
// net/http ends the body there, and one that ends sooner is an error. A
// chunked body grows its buffer as it comes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, bufs OwnedAppender) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 && n <= limit {
		var body []byte
		if bufs != nil {
			body = bufs.BodyBuffer(int(n))
		} else {
			body = make([]byte, n)
		}
		if _, err := io.ReadFull(rd, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rd); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// countFrames returns how many frames can be read from body and the
// framing error that stopped the reader, if any.
func countFrames(body []byte) (int, *logplex.FrameError) {
	rd := logplex.NewReader(body)
	n := 0
	for {
		_, err := rd.Next()
		if err == nil {
			n++
			continue
		}
		if err == io.EOF {
			return n, nil
		}
		var fe *logplex.FrameError
		if errors.As(err, &fe) {
			return n, fe
		}
		return n, &logplex.FrameError{Offset: rd.Offset(), Reason: err.Error()}
	}
}

// batchID returns the id that makes a retried POST a no-op: the
// Logplex-Frame-Id, or, for log-shuttle (which sends none), its
// X-Request-Id, which it keeps across the retries of one batch. The
// X-Request-Id is namespaced so it can never collide with a Frame-Id.
func batchID(h http.Header) string {
	if id := frameID(h.Get("Logplex-Frame-Id")); id != "" {
		return id
	}
	if id := frameID(h.Get("X-Request-Id")); id != "" {
		return "x-request-id:" + id
	}
	return ""
}

// frameID normalizes a Logplex-Frame-Id header value.
func frameID(h string) string {
	h = strings.TrimSpace(h)
	if len(h) <= maxFrameIDLen {
		return h
	}
	sum := sha256.Sum256([]byte(h))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// headerCount parses a Logplex-Drop-Count style header; anything that is
// not a non-negative integer is ignored (0).
func headerCount(h string) int64 {
	if h == "" {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
