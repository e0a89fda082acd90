package journal_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/drainpipe/drainpipe/journal"
)

// TestImportOfAThousandRecords: an old journal.db holding more records
// than one write can carry as separate buffers (pwritev takes at most
// 1,024; each record is a header and a body) is imported whole.
func TestImportOfAThousandRecords(t *testing.T) {
	ctx := context.Background()
	dir, _, old := openOld(t)
	for i := range 1100 {
		if _, _, err := old.Append(ctx, batch("a", fmt.Sprint("f", i), 1, i)); err != nil {
			t.Fatal(err)
		}
	}
	j := openIn(t, dir, journal.Options{})
	defer j.Close()
	n, err := j.Import(ctx, old)
	old.Close()
	if err != nil || n != 1100 {
		t.Fatalf("imported %d: %v", n, err)
	}
	if recs := readAll(t, j); len(recs) != 1100 || recs[1099].Seq != 1100 {
		t.Fatalf("%d records after the import", len(recs))
	}
}
