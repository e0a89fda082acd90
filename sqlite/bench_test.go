package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/storetest"
)

func openBenchStore(b *testing.B) *Store {
	s, err := OpenStore(context.Background(), filepath.Join(b.TempDir(), "m.db"), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkStoreApply measures Apply of storetest.BenchFlush flushes, as
// the PostgreSQL store's BenchmarkApply does.
func BenchmarkStoreApply(b *testing.B) {
	storetest.BenchApply(b, openBenchStore(b).Apply)
}

// BenchmarkStoreBuckets24h measures one app's 24 h at 1m, as the
// PostgreSQL store's BenchmarkBuckets24h does.
func BenchmarkStoreBuckets24h(b *testing.B) {
	s := openBenchStore(b)
	end := time.Now().UTC().Truncate(time.Minute)
	storetest.BenchBuckets(b, s, storetest.FillDay(b, s.Apply, end), end)
}
