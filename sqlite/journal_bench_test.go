package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/benchmeter"
	"github.com/drainpipe/drainpipe/logplex"
)

// journalBenchBody is the journal benchmarks' drain body: 500 router lines.
func journalBenchBody() []byte {
	var body []byte
	for i := range 500 {
		body = logplex.AppendMessage(body, historyEnd.Add(time.Duration(i)*time.Millisecond), "host", "heroku", "router",
			fmt.Sprintf(`at=info method=GET path=/products/%d host=shop.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.3 connect=1ms service=87ms status=200 bytes=1234 protocol=https`, i))
	}
	return body
}

// BenchmarkJournalRoundTrip is the journal's whole part of the end-to-end
// path: 8 drain-handler-like appenders (about what loadgen keeps in
// flight) and one aggregator-like reader that reads every record after
// its position and trims behind it every 64 records. An op is one 500-line
// body appended and read back; the CPU counted is the whole process's.
func BenchmarkJournalRoundTrip(b *testing.B) {
	ctx := context.Background()
	j := openJournal(b)
	body := journalBenchBody()
	b.SetBytes(int64(len(body)))
	read := make(chan error, 1)
	var seq atomic.Int64
	m := benchmeter.Start(b)
	go func() {
		var pos int64
		for n := 0; n < b.N; {
			recs, err := j.Read(ctx, pos, 256)
			if err != nil {
				read <- err
				return
			}
			if len(recs) == 0 {
				<-j.Notify()
				continue
			}
			for _, r := range recs {
				if len(r.Body) != len(body) {
					read <- fmt.Errorf("record %d: %d bytes, want %d", r.Seq, len(r.Body), len(body))
					return
				}
			}
			n += len(recs)
			pos = recs[len(recs)-1].Seq
			if n%64 < len(recs) {
				if err := j.Trim(ctx, pos); err != nil {
					read <- err
					return
				}
			}
		}
		read <- nil
	}()
	b.SetParallelism(4) // 8 appenders on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := seq.Add(1)
			// A body of its own per append, as the drain handler reads one.
			own := append([]byte(nil), body...)
			if _, _, err := j.Append(ctx, drainpipe.Batch{App: "shop", FrameID: strconv.FormatInt(id, 10), ReceivedAt: time.Now(), Body: own}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := <-read; err != nil {
		b.Fatal(err)
	}
	m.Lines(500)
}
