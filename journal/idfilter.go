package journal

import (
	"context"
	"errors"
	"hash/maphash"
	"math/bits"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
)

// FrameLister is a FrameIndex that can list what it holds. When the
// index is one, the Journal keeps a negative filter of the ids in it
// (idFilter) and asks the index only about the ids the filter cannot
// rule out.
type FrameLister interface {
	// EachFrame calls fn with every (app, id) in the index and the time
	// it was seen (Unix nanoseconds), stopping at the first error.
	EachFrame(ctx context.Context, fn func(app, id string, seenAt int64) error) error
}

// The filter's shape: two generations of filterBits bits each, in blocks
// of one 64-byte cache line, filterProbes bits set per id in its block.
// At about 10 bits per id a generation holds filterCapacity ids with about
// 1% false positives; past that the rate grows (every false positive is a
// point SELECT, as without the filter), so memory stays 2 × 2 MiB.
const (
	filterBits     = 1 << 24
	filterBlocks   = filterBits / 512
	filterProbes   = 7
	filterCapacity = filterBits / 10
	// filterMargin is added to drainpipe.FrameIDRetention before a generation may be
	// dropped: the index forgets ids only at Trim, at most once a minute.
	filterMargin = time.Hour
)

// idFilter is a Bloom filter over the (app, id) pairs in the FrameIndex:
// "no" is exact (the id is not in the index), "maybe" is asked of the
// index. Ids are only ever added: an id goes in before the index is
// written (persist), so the index never holds an id the filter says "no"
// to.
//
// The index forgets ids older than drainpipe.FrameIDRetention, the filter
// generation by generation: ids go into the current generation; once it
// is older than drainpipe.FrameIDRetention+filterMargin (by this process's clock)
// and so is every seen-at time in the previous generation, the previous
// one is dropped and the current one becomes previous. A generation is
// thus dropped only after every id in it is older than the retention and
// the margin, both by the time it was added and by the seen-at time the
// index forgets it by.
type idFilter struct {
	seed maphash.Seed
	mu   sync.RWMutex
	cur  *filterGen
	prev *filterGen
}

type filterGen struct {
	blocks []filterBlock
	start  time.Time // when it became the current generation
	// maxSeen is the latest seen-at time of an id in it (Unix ns).
	maxSeen int64
	n       int
}

type filterBlock [8]uint64

func newIDFilter(now time.Time) *idFilter {
	return &idFilter{seed: maphash.MakeSeed(), cur: newFilterGen(now)}
}

func newFilterGen(now time.Time) *filterGen {
	return &filterGen{blocks: make([]filterBlock, filterBlocks), start: now}
}

// hash returns the block and the bit positions' source for (app, id).
func (f *idFilter) hash(app, id string) (uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(app)
	h.WriteByte(0)
	h.WriteString(id)
	s := h.Sum64()
	// A second, independent-enough word for the positions in the block.
	hi, lo := bits.Mul64(s, 0x9e3779b97f4a7c15)
	return s, hi ^ lo
}

func (g *filterGen) add(b, p uint64, seenAt int64) {
	blk := &g.blocks[b%filterBlocks]
	for i := 0; i < filterProbes; i++ {
		bit := p & 511
		blk[bit>>6] |= 1 << (bit & 63)
		p = p>>9 | p<<55
	}
	g.n++
	g.maxSeen = max(g.maxSeen, seenAt)
}

func (g *filterGen) has(b, p uint64) bool {
	blk := &g.blocks[b%filterBlocks]
	for i := 0; i < filterProbes; i++ {
		bit := p & 511
		if blk[bit>>6]&(1<<(bit&63)) == 0 {
			return false
		}
		p = p>>9 | p<<55
	}
	return true
}

// fill sets every bit: the generation answers "maybe" to every id.
func (g *filterGen) fill() {
	for i := range g.blocks {
		for w := range g.blocks[i] {
			g.blocks[i][w] = ^uint64(0)
		}
	}
}

// mayHave reports whether (app, id) may be in the index; false is exact.
func (f *idFilter) mayHave(app, id string) bool {
	b, p := f.hash(app, id)
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.cur.has(b, p) || (f.prev != nil && f.prev.has(b, p))
}

// add records frames as (about to be) in the index, after rotating the
// generations if the previous one may go.
func (f *idFilter) add(now time.Time, frames []Frame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rotate(now)
	for _, fr := range frames {
		b, p := f.hash(fr.App, fr.ID)
		f.cur.add(b, p, fr.SeenAt.UnixNano())
	}
}

// rotate drops the previous generation when every id in it is older than
// the retention and the margin, by when it was added and by its seen-at
// time; the current one then becomes previous.
func (f *idFilter) rotate(now time.Time) {
	keep := drainpipe.FrameIDRetention + filterMargin
	if now.Sub(f.cur.start) < keep {
		return
	}
	if f.prev != nil && f.prev.maxSeen >= now.Add(-keep).UnixNano() {
		return
	}
	f.prev, f.cur = f.cur, newFilterGen(now)
	// The generation dropped: its ids were added before the new previous
	// one started, so more than keep ago.
}

var errFilterFull = errors.New("journal: frame id filter full")

// load adds every id in the index. An index of more ids than a
// generation holds well is not read further: the generation is filled
// (every answer "maybe") and so stays until it is dropped.
func (f *idFilter) load(ctx context.Context, x FrameLister, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	full := false
	err := x.EachFrame(ctx, func(app, id string, seenAt int64) error {
		if f.cur.n >= filterCapacity {
			full = true
			return errFilterFull
		}
		b, p := f.hash(app, id)
		f.cur.add(b, p, seenAt)
		return nil
	})
	if full {
		// The ids not read are taken as seen now (the index's ids
		// are seen at or before now, by the server's clock).
		f.cur.fill()
		f.cur.maxSeen = max(f.cur.maxSeen, now.UnixNano())
		return nil
	}
	return err
}
