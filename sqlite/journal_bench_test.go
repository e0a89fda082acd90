package sqlite

import (
	"testing"

	"github.com/drainpipe/drainpipe/journaltest"
)

// journalBenchBody is the journal benchmarks' drain body: 500 router lines.
func journalBenchBody() []byte { return journaltest.BenchBody() }

// BenchmarkJournalRoundTrip is journaltest.BenchRoundTrip on the SQLite
// journal (package journal's BenchmarkRoundTrip runs it on both journals
// side by side).
func BenchmarkJournalRoundTrip(b *testing.B) {
	journaltest.BenchRoundTrip(b, openJournal(b))
}
