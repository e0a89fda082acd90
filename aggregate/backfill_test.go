package aggregate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/metrics"
)

// encodeFlush returns f as bytes: every row's key and encoded bucket,
// by app, process type and time (a Take's order of apps depends on its
// State's hash seed), then the events and the position. Two flushes with
// the same bytes store the same bytes.
func encodeFlush(f *metrics.Flush) []byte {
	rows := make([][]byte, len(f.Rows))
	for i, r := range f.Rows {
		rows[i] = fmt.Appendf(nil, "%s|%s|%d|", r.App, r.ProcessType, r.Time.Unix())
		rows[i] = append(r.Bucket.Encode(rows[i]), '\n')
	}
	slices.SortFunc(rows, bytes.Compare)
	out := bytes.Join(rows, nil)
	for _, e := range f.Events {
		out = fmt.Appendf(out, "%+v\n", e)
	}
	return fmt.Appendf(out, "position %d\n", f.Position)
}

// takenBucket is a bucket a Take handed off, and its bytes then.
type takenBucket struct {
	b   *metrics.Bucket
	enc []byte
}

// foldTaking folds recs into s with a Take after every `every` records
// and at the end, as the aggregator does during a backfill, and returns
// the flushes' bytes and every bucket the Takes handed off.
func foldTaking(s *State, recs []drainpipe.Record, every int) ([]byte, []takenBucket) {
	var out []byte
	var taken []takenBucket
	take := func(pos int64) {
		f := s.Take(pos)
		out = append(out, encodeFlush(f)...)
		for _, r := range f.Rows {
			taken = append(taken, takenBucket{r.Bucket, r.Bucket.Encode(nil)})
		}
	}
	for i := range recs {
		s.Fold(&recs[i])
		if (i+1)%every == 0 {
			take(recs[i].Seq)
		}
	}
	take(recs[len(recs)-1].Seq)
	return out, taken
}

// foldLineByLine is foldTaking without the State's memory of its last
// lookups: it frames the bodies itself and folds every line through
// FoldLine with State.recent forgotten before it, the way every line was
// folded before the State remembered anything. The bodies must be well
// framed.
func foldLineByLine(t *testing.T, s *State, recs []drainpipe.Record, every int) []byte {
	t.Helper()
	var out []byte
	var rd logplex.Reader
	var h logplex.Header
	for i := range recs {
		rec := &recs[i]
		rd.Reset(rec.Body)
		for {
			frame, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("record %d: %v", rec.Seq, err)
			}
			if err := logplex.ParseHeader(frame, &h); err != nil {
				t.Fatalf("record %d: %v", rec.Seq, err)
			}
			s.recent = [len(s.recent)]bucketHint{}
			s.FoldLine(rec.App, rec.ReceivedAt.UnixNano(), &h)
		}
		if (i+1)%every == 0 {
			out = append(out, encodeFlush(s.Take(rec.Seq))...)
		}
	}
	return append(out, encodeFlush(s.Take(recs[len(recs)-1].Seq))...)
}

// TestFoldBackfillKeepsResults folds an hour of the demo fleet's backfill
// with a Take every 50 bodies (a flush falls within a minute's lines, and
// the next body goes on with that minute) and checks what the State's
// shortcuts must not change: the flushes are the bytes that folding
// every line on its own gives, and no bucket changes after a Take
// handed it off (the store and the monitor hold it then).
func TestFoldBackfillKeepsResults(t *testing.T) {
	recs, lines := backfillBodies(t, 1)
	const every = 50
	if len(recs) < 3*every {
		t.Fatalf("only %d bodies of %d lines", len(recs), lines)
	}
	got, taken := foldTaking(NewState(3*24*time.Hour, 5*time.Minute), recs, every)
	want := foldLineByLine(t, NewState(3*24*time.Hour, 5*time.Minute), recs, every)
	if !bytes.Equal(got, want) {
		t.Errorf("the flushes differ from folding line by line (%d and %d bytes)", len(got), len(want))
	}
	changed := 0
	for _, tb := range taken {
		if !bytes.Equal(tb.b.Encode(nil), tb.enc) {
			changed++
		}
	}
	if changed > 0 {
		t.Errorf("%d of %d buckets changed after a Take handed them off", changed, len(taken))
	}
	t.Logf("%d lines in %d bodies, %d buckets handed off", lines, len(recs), len(taken))
}
