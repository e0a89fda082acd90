package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/drainpipe/drainpipe/journaltest"
)

// TestJournalConformance runs the journal suite shared with the
// segment-file journal (package journal).
func TestJournalConformance(t *testing.T) {
	journaltest.Run(t, journaltest.Config{
		Open: func(t *testing.T, dir string) journaltest.Journal {
			j, err := OpenJournal(context.Background(), filepath.Join(dir, "journal.db"), quiet)
			if err != nil {
				t.Fatal(err)
			}
			return j
		},
		MaxReadBytes: MaxReadBytes,
	})
}
