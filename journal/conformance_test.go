package journal_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/journaltest"
	"github.com/drainpipe/drainpipe/sqlite"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openIn opens the segment journal of data directory dir as the embedded
// server does: segments in dir/journal, frame ids in dir/journal.db.
func openIn(t testing.TB, dir string, opt journal.Options) *journal.Journal {
	t.Helper()
	ctx := context.Background()
	idx, err := sqlite.OpenFrameIndex(ctx, filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	opt.Frames = idx
	if opt.Log == nil {
		opt.Log = quiet
	}
	j, err := journal.Open(ctx, filepath.Join(dir, "journal"), opt)
	if err != nil {
		idx.Close()
		t.Fatal(err)
	}
	return j
}

// TestConformance runs the journal suite shared with the SQLite journal,
// with bodies stored raw and packed, and with segments small enough that
// the suite's records span many.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  journal.Options
	}{
		{"raw", journal.Options{}},
		{"s2", journal.Options{Compress: true}},
		{"small-segments", journal.Options{SegmentSize: 8 << 10}},
		{"serial-commit", journal.Options{SerialCommit: true, SegmentSize: 64 << 10}},
		{"write-ahead", journal.Options{WriteAhead: true, ZeroFillAfter: -1, SegmentSize: 8 << 10}},
		{"write-ahead-1MiB", journal.Options{WriteAhead: true, ZeroFillAfter: -1, SegmentSize: 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			journaltest.Run(t, journaltest.Config{
				Open: func(t *testing.T, dir string) journaltest.Journal {
					return openIn(t, dir, tc.opt)
				},
				MaxReadBytes: journal.MaxReadBytes,
			})
		})
	}
}
