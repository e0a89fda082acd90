package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/batchcodec"
)

// TestJournalCompressesLargeBodies: a drain-sized body is stored as an S2
// block, smaller than it came, and read back byte for byte; a small one
// stays raw.
func TestJournalCompressesLargeBodies(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	var big []byte
	for i := range 500 {
		big = fmt.Appendf(big, "236 <158>1 2026-11-25T10:00:%02d.%06d+00:00 host heroku router - at=info method=GET path=/products/%d dyno=web.%d connect=1ms service=%dms status=200 bytes=1234\n", i%60, i, i, i%4+1, 20+i%300)
	}
	for _, body := range [][]byte{big, []byte("small body")} {
		if _, _, err := j.Append(ctx, drainpipe.Batch{App: "a", ReceivedAt: time.Now(), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	var codec, size int64
	if err := j.db.QueryRow(`SELECT codec, length(body) FROM journal WHERE seq = 1`).Scan(&codec, &size); err != nil {
		t.Fatal(err)
	}
	if codec != batchcodec.S2 || size >= int64(len(big))/2 {
		t.Fatalf("codec %d, %d bytes stored for a %d-byte body", codec, size, len(big))
	}
	if err := j.db.QueryRow(`SELECT codec FROM journal WHERE seq = 2`).Scan(&codec); err != nil || codec != batchcodec.Raw {
		t.Fatalf("small body codec %d (%v), want raw", codec, err)
	}
	j.handoff.Invalidate() // read the file, not the in-memory hand-off
	recs, err := j.Read(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !bytes.Equal(recs[0].Body, big) || string(recs[1].Body) != "small body" || recs[0].Damaged {
		t.Fatalf("read back %d records, first intact: %v", len(recs), len(recs) > 0 && bytes.Equal(recs[0].Body, big))
	}
}

// TestJournalDamagedCompressedBodyIsQuarantined: a flipped byte inside a
// stored S2 block is caught (by the decoder or the checksum over the
// expanded body) and the record is quarantined, never served.
func TestJournalDamagedCompressedBodyIsQuarantined(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t)
	body := bytes.Repeat([]byte("89 <158>1 2026-11-25T10:00:00+00:00 host heroku router - at=info status=200 service=5ms\n"), 100)
	if _, _, err := j.Append(ctx, drainpipe.Batch{App: "a", ReceivedAt: time.Now(), Body: body}); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	var codec int64
	if err := j.db.QueryRow(`SELECT body, codec FROM journal WHERE seq = 1`).Scan(&stored, &codec); err != nil {
		t.Fatal(err)
	}
	if codec != batchcodec.S2 {
		t.Fatalf("codec %d, want S2", codec)
	}
	j.handoff.Invalidate()               // read the file, not the in-memory hand-off
	for _, at := range []int{0, 3, 40} { // the length header, the first tag, deeper in
		if at >= len(stored) {
			t.Fatalf("stored body only %d bytes", len(stored))
		}
		bad := bytes.Clone(stored)
		bad[at] ^= 0x5a
		if _, err := j.db.Exec(`UPDATE journal SET body = ?, damaged = 0, codec = ? WHERE seq = 1`, bad, batchcodec.S2); err != nil {
			t.Fatal(err)
		}
		recs, err := j.Read(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || !recs[0].Damaged || len(recs[0].Body) != 0 {
			t.Fatalf("byte %d flipped: record served as %+v", at, recs)
		}
		if _, err := j.db.Exec(`DELETE FROM journal_quarantine`); err != nil {
			t.Fatal(err)
		}
		if _, err := j.db.Exec(`UPDATE journal SET body = ?, damaged = 0, codec = ? WHERE seq = 1`, stored, batchcodec.S2); err != nil {
			t.Fatal(err)
		}
		if recs, err := j.Read(ctx, 0, 10); err != nil || len(recs) != 1 || recs[0].Damaged || !bytes.Equal(recs[0].Body, body) {
			t.Fatalf("restored record not read back intact (%v)", err)
		}
	}
}

// openJournal opens a fresh journal closed at the test's end.
func openJournal(tb testing.TB) *Journal {
	tb.Helper()
	j, err := OpenJournal(context.Background(), filepath.Join(tb.TempDir(), "journal.db"), quiet)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { j.Close() })
	return j
}
