package journal

import (
	"context"
	"fmt"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/batchcodec"
)

// Source is a journal whose records Import moves into the segment files:
// the SQLite journal of an older data directory.
type Source interface {
	Read(ctx context.Context, after int64, max int) ([]drainpipe.Record, error)
	Trim(ctx context.Context, upTo int64) error
	LastSeq() int64
}

// Import moves src's records above this journal's last into the
// segments, with their sequence numbers (the store's journal position is
// one), damaged markers kept as such; then numbering continues after
// src's last, and src is trimmed of everything. Each group is durable
// before the next is read, and src is trimmed only once all are: an
// Import interrupted anywhere is completed by the next, which copies only
// what is not here yet. It returns how many records it copied. Call it
// before serving appends.
func (j *Journal) Import(ctx context.Context, src Source) (int, error) {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	n := 0
	after := j.lastSeq.Load()
	for {
		recs, err := src.Read(ctx, after, 1024)
		if err != nil {
			return n, fmt.Errorf("journal: import: %w", err)
		}
		if len(recs) == 0 {
			break
		}
		g := &group{reqs: make([]*appendReq, 0, len(recs))}
		for _, r := range recs {
			req := &appendReq{b: r.Batch, stored: r.Body, seq: r.Seq, fixed: true, damaged: r.Damaged}
			if r.Damaged {
				req.b.Body = nil
			} else if j.opt.Compress {
				codec, stored := batchcodec.Pack(nil, r.Body)
				req.codec, req.stored = uint8(codec), stored
				req.crc = batchcodec.RecordCRC(r.App, r.FrameID, r.ReceivedAt.UnixNano(), r.Dropped, r.Lost, r.Body)
			}
			g.reqs = append(g.reqs, req)
		}
		err = j.commit(g)
		if err == nil {
			err = j.enqueue(g)
		}
		if err == nil {
			// Synced (or failed, and cut off) before the next is read.
			err = j.settle(true)
			if g.err != nil {
				err = g.err
			}
		}
		if err != nil {
			return n, fmt.Errorf("journal: import: %w", err)
		}
		n += len(recs)
		after = recs[len(recs)-1].Seq
	}
	if l := src.LastSeq(); l > j.lastSeq.Load() {
		j.lastSeq.Store(l)
		j.wlast = l
	}
	if err := src.Trim(ctx, j.lastSeq.Load()); err != nil {
		return n, fmt.Errorf("journal: import: delete what was copied: %w", err)
	}
	if n > 0 {
		j.log.Info("journal: records moved from the SQLite journal into the segment files", "records", n, "last_seq", j.lastSeq.Load())
	}
	return n, nil
}
