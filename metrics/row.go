package metrics

import "time"

// Row is one stored bucket: an app's process type over one tier-aligned
// time bucket.
type Row struct {
	App         string
	ProcessType string
	Time        time.Time
	Bucket      *Bucket
}

// RequestCount is the cheap per-bucket request tally the store keeps in
// plain columns, so fleet summaries need not decode whole buckets.
type RequestCount struct {
	App       string
	Time      time.Time
	Requests  int64
	Errors5xx int64
}
