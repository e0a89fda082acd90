package aggregate

import (
	"context"
	"errors"

	"github.com/drainpipe/drainpipe/metrics"
)

// ErrFenced is returned by PartitionSink.ApplyPartition when the stored
// offset of the partition is not the flush's From: another aggregator has
// applied records of that partition since (it owns the partition after a
// rebalance). The caller must drop its unflushed state for the partition
// and resume from PartitionOffset.
var ErrFenced = errors.New("partition offset moved: another aggregator owns the partition")

// FrameKey names one drain POST for deduplication across ingest processes.
type FrameKey struct {
	App     string
	FrameID string
}

// PartitionFlush is one flush of a partitioned journal (Kafka): the rows and
// events folded from one partition's records at offsets [From, To), and the
// frame IDs those records carried.
type PartitionFlush struct {
	Group     string // consumer group; offsets are kept per group
	Topic     string
	Partition int32
	From, To  int64
	Flush     *metrics.Flush // Flush.Position is unused here
	Frames    []FrameKey
}

// PartitionSink is the store side of a partitioned journal. It is what
// makes the scale-out mode exactly-once: aggregates, frame IDs and the
// consumed offset are written in one transaction, and a flush from an
// aggregator that lost its partition is refused.
type PartitionSink interface {
	// ApplyPartition merges p.Flush into the store, records p.Frames as
	// seen and moves the partition's stored offset from p.From to p.To, all
	// in one transaction. It returns ErrFenced (and changes nothing) when
	// the stored offset is not p.From; a partition with no stored offset
	// accepts any From.
	ApplyPartition(ctx context.Context, p *PartitionFlush) error
	// PartitionOffset returns the next offset to consume, or -1 when
	// nothing of the partition was ever applied.
	PartitionOffset(ctx context.Context, group, topic string, partition int32) (int64, error)
	// SeenFrames reports which of keys an earlier flush recorded.
	SeenFrames(ctx context.Context, keys []FrameKey) (map[FrameKey]bool, error)
}
