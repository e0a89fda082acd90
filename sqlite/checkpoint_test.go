package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// TestJournalWALStaysBounded: with checkpoints off the commit path, the
// WAL file still stays near its cap while appenders keep the writer busy
// and the aggregator-like reader trims behind them; every record is kept.
func TestJournalWALStaysBounded(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	j.ckptEvery = 128 << 10
	j.walCap = 256 // 1 MiB of pages
	var autockpt int
	if err := j.db.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&autockpt); err != nil || autockpt != 0 {
		t.Fatalf("wal_autocheckpoint = %d (%v), want 0: checkpoints run off the commit path", autockpt, err)
	}
	const appenders, each, size = 8, 40, 32 << 10 // 10 MiB of incompressible bodies
	var maxWAL int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if st, err := os.Stat(j.path + "-wal"); err == nil {
				maxWAL = max(maxWAL, st.Size())
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(a), 1))
			for i := range each {
				body := make([]byte, size)
				for k := range body {
					body[k] = byte(rng.Uint32())
				}
				if _, _, err := j.Append(ctx, drainpipe.Batch{App: "a", FrameID: fmt.Sprint(a, "-", i), ReceivedAt: time.Now(), Body: body}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// The reader: read, and trim every so often, as the aggregator does.
	var pos int64
	for n := 0; n < appenders*each; {
		recs, err := j.Read(ctx, pos, 64)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		n += len(recs)
		pos = recs[len(recs)-1].Seq
		if err := j.Trim(ctx, pos); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(stop)
	<-watched
	// The cap, plus what commits add while a RESTART checkpoint waits for
	// the writer (a group of 8 bodies), plus slack.
	if limit := int64(j.walCap)*4096 + 4<<20; maxWAL > limit {
		t.Fatalf("the WAL grew to %d bytes, over %d", maxWAL, limit)
	}
	t.Logf("largest WAL: %d bytes for %d MiB appended", maxWAL, appenders*each*size>>20)
}

// TestJournalTrimRunsInTheWriter: trims interleave with appends (the
// writer runs both, so neither waits on SQLite's lock), delete what they
// should, and a trim after Close fails with ErrClosed.
func TestJournalTrimRunsInTheWriter(t *testing.T) {
	ctx := context.Background()
	j, err := OpenJournal(ctx, t.TempDir()+"/journal.db", quiet)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for a := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, _, err := j.Append(ctx, drainpipe.Batch{App: "a", FrameID: fmt.Sprint(a, "-", i), ReceivedAt: time.Now(), Body: []byte("body")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for upTo := int64(10); upTo <= 100; upTo += 10 {
		if err := j.Trim(ctx, upTo); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := j.Trim(ctx, 100); err != nil { // the trims above ran while records were still coming
		t.Fatal(err)
	}
	var n, low int64
	if err := j.db.QueryRow(`SELECT COUNT(*), COALESCE(MIN(seq), 0) FROM journal`).Scan(&n, &low); err != nil {
		t.Fatal(err)
	}
	if n != 100 || low != 101 {
		t.Fatalf("%d records left from seq %d, want 100 from 101", n, low)
	}
	j.Close()
	if err := j.Trim(ctx, 150); err != ErrClosed {
		t.Fatalf("Trim after Close: %v, want ErrClosed", err)
	}
}

// TestStoreWALBoundedUnderQueries: queries that never stop (each a read
// snapshot, a coarser tier's one across partitions) overlap every flush,
// so SQLite never starts the store's WAL again and it grew by every
// flush's pages (130-145 MiB in 30 s of 1,000 busy apps' flushes under
// four query loops). Past its cap (lowered here) a flush checkpoints it
// with TRUNCATE behind the read gate, which must succeed under the same
// queries every time.
func TestStoreWALBoundedUnderQueries(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	s.walCap = 512 << 10
	now := time.Now().UTC().Truncate(time.Minute)
	f := quietFlush(150, now)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.RequestCounts(ctx, drainpipe.Tier10m, now.Add(-24*time.Hour), now.Add(time.Hour)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var most int64
	for range 30 {
		f.Position++
		if err := s.Apply(ctx, f); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(s.walPath); err == nil {
			most = max(most, fi.Size())
		}
	}
	close(stop)
	wg.Wait()
	// Over the cap by at most one flush's pages (0.1 MiB here). Without
	// the checkpoint the WAL grew to 3.4 MiB in these 30 flushes (and on
	// past SQLite's automatic checkpoint, as in the 1,000-app run).
	if most > 1<<20 {
		t.Fatalf("the store's WAL grew to %.1f MiB under queries, its cap is 0.5 MiB", float64(most)/(1<<20))
	}
	t.Logf("WAL at most %.1f MiB", float64(most)/(1<<20))
}

// TestStoreWALCheckpointOutlastedByAReader: a read snapshot that outlasts
// the checkpoint's wait keeps the WAL over its cap; the flushes of the
// next walRetryAfter leave it alone (writers do not wait for every one),
// and once the reader is gone the next attempt empties it.
func TestStoreWALCheckpointOutlastedByAReader(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	s.walCap = 16 << 10
	f := quietFlush(50, time.Now().UTC().Truncate(time.Minute))
	apply := func() int64 {
		t.Helper()
		f.Position++
		if err := s.Apply(ctx, f); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(s.walPath)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	apply()
	// A reader whose snapshot predates the next flush, open throughout.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readCursor(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if size := apply(); size <= s.walCap {
		t.Fatalf("WAL of %d bytes with a reader on it; want it over the cap", size)
	}
	s.ckptMu.Lock()
	retry := s.ckptRetry
	s.ckptMu.Unlock()
	if !retry.After(time.Now()) {
		t.Fatal("no retry time set after a checkpoint the reader outlasted")
	}
	tx.Rollback()
	if size := apply(); size <= s.walCap {
		t.Fatalf("WAL of %d bytes: checkpointed within walRetryAfter", size)
	}
	s.ckptMu.Lock()
	s.ckptRetry = time.Time{} // walRetryAfter has passed
	s.ckptMu.Unlock()
	if size := apply(); size != 0 {
		t.Fatalf("WAL of %d bytes after the reader left; want it emptied", size)
	}
}

// quietFlush is a flush of minute at of apps quiet apps' web rows.
func quietFlush(apps int, at time.Time) *metrics.Flush {
	rng := rand.New(rand.NewPCG(1, 2))
	f := &metrics.Flush{}
	for a := range apps {
		f.Rows = append(f.Rows, metrics.Row{App: fmt.Sprintf("app%05d", a), ProcessType: "web", Time: at, Bucket: quietBucket(rng)})
	}
	return f
}
