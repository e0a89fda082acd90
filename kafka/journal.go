package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/drainpipe/drainpipe"
)

// Record header names. The record's key is the app, its value the raw
// logplex-1 body.
const (
	HeaderFrameID    = "frame-id"
	HeaderReceivedAt = "received-at" // Unix nanoseconds, decimal
	HeaderDropped    = "dropped"
	HeaderLost       = "lost"
)

// EnsureTopic creates the topic when it is missing, with c.Partitions,
// c.Replication and a max.message.bytes that fits c.MaxBatchBytes. An
// existing topic is left as it is.
func EnsureTopic(ctx context.Context, c Config, log *slog.Logger) error {
	opts, err := c.clientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := c.TopicName()
	maxMsg := strconv.Itoa(int(c.MaxBatchBytes) + 64<<10)
	resp, err := adm.CreateTopic(ctx, c.Partitions, c.Replication, map[string]*string{"max.message.bytes": &maxMsg}, topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		log.Info("kafka: created topic", "topic", topic, "partitions", c.Partitions, "replication", c.Replication)
		return nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return nil
	default:
		return fmt.Errorf("kafka: create topic %s: %w", topic, err)
	}
}

// Journal is the ingest side: Append produces a drain batch to the topic
// and returns once every in-sync replica has it (acks=all, idempotent
// producer). Duplicate Frame-Ids are not detected here but by the
// aggregators, which see all of an app's batches in one partition.
//
// An Append that gave up at its deadline does not take its record back:
// an idempotent producer cannot fail a record it may already have sent,
// so the record may still reach the topic once the brokers answer, after
// ingest answered 503. Logplex's retry of that POST carries the same
// Frame-Id, which the aggregator drops; the journal logs each such late
// record so that an operator can tell.
type Journal struct {
	cl    *kgo.Client
	topic string
	log   *slog.Logger
}

// OpenJournal connects a producer that logs to log. It does not wait for
// the brokers: an unreachable cluster shows as failing Appends (and 503s
// to Logplex).
func OpenJournal(c Config, log *slog.Logger) (*Journal, error) {
	opts, err := c.clientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.DefaultProduceTopic(c.TopicName()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(c.MaxBatchBytes),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.SnappyCompression(), kgo.NoCompression()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(8*time.Second),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as the Java client
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: producer: %w", err)
	}
	return &Journal{cl: cl, topic: c.TopicName(), log: log}, nil
}

// Append produces b and waits for the acknowledgement, or until ctx ends.
// The returned sequence is the record's offset within its partition;
// duplicate is always false (see Journal).
func (j *Journal) Append(ctx context.Context, b drainpipe.Batch) (int64, bool, error) {
	rec := &kgo.Record{
		Key:   []byte(b.App),
		Value: b.Body,
		Headers: []kgo.RecordHeader{
			{Key: HeaderFrameID, Value: []byte(b.FrameID)},
			{Key: HeaderReceivedAt, Value: strconv.AppendInt(nil, b.ReceivedAt.UnixNano(), 10)},
		},
	}
	if b.Dropped > 0 {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderDropped, Value: strconv.AppendInt(nil, b.Dropped, 10)})
	}
	if b.Lost > 0 {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderLost, Value: strconv.AppendInt(nil, b.Lost, 10)})
	}
	// Not ProduceSync: an idempotent producer fails a record that may
	// have reached a broker only once it knows its fate, which can be
	// long after ctx ended while the cluster is unreachable. The caller
	// answers 503 at ctx's deadline instead; should the record land after
	// all, Logplex's retry carries the same Frame-Id and the aggregator
	// drops the second copy.
	type result struct {
		off int64
		err error
	}
	done := make(chan result, 1)
	// state settles the race between the acknowledgement and ctx's end:
	// whichever moves it from waiting first decides what Append returns.
	const (
		waiting int32 = iota
		acked
		gaveUp
	)
	var state atomic.Int32
	j.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		if err == nil && !state.CompareAndSwap(waiting, acked) {
			j.log.Warn("kafka: a batch whose append gave up (its POST was answered 503) reached the topic after all; a retry with its Frame-Id will be dropped as a duplicate",
				"app", b.App, "frame_id", b.FrameID, "partition", r.Partition, "offset", r.Offset)
		}
		done <- result{r.Offset, err}
	})
	select {
	case res := <-done:
		if res.err != nil {
			return 0, false, fmt.Errorf("kafka: produce to %s: %w", j.topic, res.err)
		}
		return res.off, false, nil
	case <-ctx.Done():
		if !state.CompareAndSwap(waiting, gaveUp) {
			// Acknowledged in the same instant: the promise is sending.
			res := <-done
			return res.off, false, nil
		}
		return 0, false, fmt.Errorf("kafka: produce to %s: not acknowledged in time: %w", j.topic, ctx.Err())
	}
}

// Ping checks that a broker answers.
func (j *Journal) Ping(ctx context.Context) error { return j.cl.Ping(ctx) }

// Close flushes nothing (Append is synchronous) and disconnects.
func (j *Journal) Close() error {
	j.cl.Close()
	return nil
}

// batchOf decodes a consumed record into the batch ingest produced.
func batchOf(r *kgo.Record) drainpipe.Batch {
	b := drainpipe.Batch{App: string(r.Key), Body: r.Value, ReceivedAt: r.Timestamp}
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderFrameID:
			b.FrameID = string(h.Value)
		case HeaderReceivedAt:
			if ns, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				b.ReceivedAt = time.Unix(0, ns).UTC()
			}
		case HeaderDropped:
			b.Dropped, _ = strconv.ParseInt(string(h.Value), 10, 64)
		case HeaderLost:
			b.Lost, _ = strconv.ParseInt(string(h.Value), 10, 64)
		}
	}
	return b
}
