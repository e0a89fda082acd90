package metrics

import "github.com/drainpipe/drainpipe"

// Flush is what the aggregator hands the store in one transaction: the
// minute buckets folded since the last flush (partial minutes included),
// the discrete events seen, and the journal position they cover. A store
// applies all of it or none of it, which is what makes a replay after a
// crash neither lose nor double-count.
type Flush struct {
	// Rows are 1-minute deltas, to be merged into what is stored.
	Rows     []Row
	Events   []drainpipe.Event
	Position int64
}
