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

// TestAppendsAfterDamageInTheLastSegmentAreRead: records appended into
// a last segment that holds damage (found at the start, or by a read)
// are read from the file when the reader is behind the in-memory
// hand-off, also once the segment was rolled: none is skipped.
func TestAppendsAfterDamageInTheLastSegmentAreRead(t *testing.T) {
	for _, found := range []string{"at-open", "on-read"} {
		t.Run(found, func(t *testing.T) {
			dir := t.TempDir()
			_, start, end := threeRecords(t, dir)
			seg := segments(t, dir)[0]
			if found == "at-open" {
				corrupt(t, seg, (start+end)/2)
			}
			j := openIn(t, dir, journal.Options{SegmentSize: size(t, seg) + 1})
			defer j.Close()
			if found == "on-read" {
				corrupt(t, seg, (start+end)/2)
				if recs := readAll(t, j); len(recs) != 3 || !recs[1].Damaged {
					t.Fatalf("%d records before the appends", len(recs))
				}
			}
			for i := range 3 {
				mustAppend(t, j, batch("shop", fmt.Sprint("n", i), 30, 10+i))
			}
			if n := len(segments(t, dir)); n != 2 {
				t.Fatalf("%d segments, want the damaged one and one rolled after it", n)
			}
			recs := readAll(t, j) // from 0: below the hand-off, so from the files
			if len(recs) != 6 {
				t.Fatalf("read %d records, want 6", len(recs))
			}
			for i, r := range recs {
				if r.Seq != int64(i+1) || r.Damaged != (i == 1) {
					t.Fatalf("record %d: seq %d damaged %v", i, r.Seq, r.Damaged)
				}
			}
		})
	}
}
