package journal_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/journaltest"
	"github.com/drainpipe/drainpipe/sqlite"
)

// BenchmarkRoundTrip compares the embedded journals on their whole part
// of the end-to-end path (journaltest.BenchRoundTrip): the segment-file
// journal appending to its segments (Options{}), writing them ahead
// (file-ahead: the server's default), with bodies S2-packed, and the
// SQLite journal. Compare with `benchstat -col /journal`.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("journal=file", func(b *testing.B) {
		j := openIn(b, b.TempDir(), journal.Options{})
		defer j.Close()
		journaltest.BenchRoundTrip(b, j)
	})
	b.Run("journal=file-ahead", func(b *testing.B) {
		j := openIn(b, b.TempDir(), journal.Options{WriteAhead: true, ZeroFillAfter: -1})
		defer j.Close()
		journal.SpareReady(b, j) // as a server's is by its first roll
		journaltest.BenchRoundTrip(b, j)
	})
	b.Run("journal=file-s2", func(b *testing.B) {
		j := openIn(b, b.TempDir(), journal.Options{Compress: true})
		defer j.Close()
		journaltest.BenchRoundTrip(b, j)
	})
	b.Run("journal=sqlite", func(b *testing.B) {
		j, err := sqlite.OpenJournal(context.Background(), filepath.Join(b.TempDir(), "journal.db"), quiet)
		if err != nil {
			b.Fatal(err)
		}
		defer j.Close()
		journaltest.BenchRoundTrip(b, j)
	})
}
