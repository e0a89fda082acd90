package journal

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
)

// listIndex is a FrameLister over a slice, for the filter's load.
type listIndex []Frame

func (l listIndex) EachFrame(_ context.Context, fn func(app, id string, seenAt int64) error) error {
	for _, f := range l {
		if err := fn(f.App, f.ID, f.SeenAt.UnixNano()); err != nil {
			return err
		}
	}
	return nil
}

// TestIDFilterNeverSaysNoToAnAddedID: every id added or loaded is a
// "maybe"; ids never added are mostly a "no" (false positives well under
// 2% at 100,000 ids).
func TestIDFilterNeverSaysNoToAnAddedID(t *testing.T) {
	now := time.Now()
	f := newIDFilter(now)
	var loaded listIndex
	for i := range 50_000 {
		loaded = append(loaded, Frame{App: fmt.Sprintf("app-%d", i%7), ID: fmt.Sprintf("old-%032x", i), SeenAt: now})
	}
	if err := f.load(context.Background(), loaded, now); err != nil {
		t.Fatal(err)
	}
	var added []Frame
	for i := range 50_000 {
		added = append(added, Frame{App: fmt.Sprintf("app-%d", i%7), ID: fmt.Sprintf("new-%032x", i), SeenAt: now})
	}
	f.add(now, added[:25_000])
	f.add(now, added[25_000:])
	for _, fr := range append(loaded, added...) {
		if !f.mayHave(fr.App, fr.ID) {
			t.Fatalf("filter says no to %s/%s, which is in the index", fr.App, fr.ID)
		}
	}
	// The same id under another app is another key.
	fp := 0
	const probes = 100_000
	for i := range probes {
		if f.mayHave("app-0", fmt.Sprintf("absent-%032x", i)) {
			fp++
		}
	}
	if rate := float64(fp) / probes; rate > 0.02 {
		t.Fatalf("false positive rate %.4f at 100,000 ids, want < 0.02", rate)
	}
	t.Logf("false positives: %d of %d", fp, probes)
}

// TestIDFilterKeepsIDsForTheRetention: a generation is dropped only once
// every id in it is older than drainpipe.FrameIDRetention and the margin, both by
// when it was added and by its seen-at time; until then its ids stay
// "maybe".
func TestIDFilterKeepsIDsForTheRetention(t *testing.T) {
	t0 := time.Now()
	keep := drainpipe.FrameIDRetention + filterMargin
	f := newIDFilter(t0)
	f.add(t0, []Frame{{App: "a", ID: "first", SeenAt: t0}})
	// Later, but within the generation: still the current one. Its
	// seen-at time is ahead of this clock (another clock set it).
	t1 := t0.Add(keep - time.Second)
	ahead := t1.Add(3 * keep)
	f.add(t1, []Frame{{App: "a", ID: "second", SeenAt: ahead}})
	// The first rotation: the current generation becomes previous.
	t2 := t0.Add(keep)
	f.add(t2, []Frame{{App: "a", ID: "third", SeenAt: t2}})
	for _, id := range []string{"first", "second", "third"} {
		if !f.mayHave("a", id) {
			t.Fatalf("%s dropped at the first rotation", id)
		}
	}
	if f.prev == nil || f.cur.start != t2 {
		t.Fatal("did not rotate once the current generation was old")
	}
	// The previous generation holds "second", seen at ahead: the index
	// keeps it until ahead+drainpipe.FrameIDRetention, so the generation stays
	// although it was added long enough ago.
	t3 := t2.Add(2 * keep)
	f.add(t3, nil)
	if !f.mayHave("a", "second") || f.cur.start != t2 {
		t.Fatal("dropped a generation holding an id the index still keeps")
	}
	t4 := ahead.Add(keep + time.Second)
	f.add(t4, nil)
	if f.prev == nil || f.prev.start != t2 || f.cur.start != t4 {
		t.Fatal("did not rotate once every id of the previous generation was old")
	}
	if !f.mayHave("a", "third") {
		t.Fatal("third (now in the previous generation) dropped")
	}
}

// TestIDFilterFullIndexAnswersMaybe: an index holding more ids than a
// generation holds well is not read whole; every answer is then "maybe".
func TestIDFilterFullIndexAnswersMaybe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an index of filterCapacity ids")
	}
	now := time.Now()
	idx := make(listIndex, filterCapacity+1)
	for i := range idx {
		idx[i] = Frame{App: "a", ID: fmt.Sprint(i), SeenAt: now}
	}
	f := newIDFilter(now)
	if err := f.load(context.Background(), idx, now); err != nil {
		t.Fatal(err)
	}
	if !f.mayHave("a", fmt.Sprint(len(idx)-1)) || !f.mayHave("b", "never") {
		t.Fatal("a filter loaded from a too large index says no")
	}
}

func BenchmarkIDFilterMayHave(b *testing.B) {
	f := newIDFilter(time.Now())
	id := "0123456789abcdef0123456789abcdef"
	b.ReportAllocs()
	for b.Loop() {
		f.mayHave("storefront", id)
	}
}
