package tightslice

import (
	"slices"
	"testing"
)

// TestInsert: Insert gives what slices.Insert gives, at every position,
// and grows a full slice to its size class only.
func TestInsert(t *testing.T) {
	var s, want []int
	for n := range 200 {
		i := (n * 7919) % (len(s) + 1)
		s = Insert(s, i, n)
		want = slices.Insert(want, i, n)
		if !slices.Equal(s, want) {
			t.Fatalf("after %d inserts: %v, want %v", n+1, s, want)
		}
		if c := cap(s); c > len(s)*5/4+4 { // a size class, not a doubling
			t.Fatalf("%d elements with capacity %d", len(s), c)
		}
	}
	// 24-byte elements: three fit the 80-byte size class, not four.
	type e struct{ _, _, _ int64 }
	es := Insert(Insert(Insert([]e(nil), 0, e{}), 0, e{}), 0, e{})
	if len(es) != 3 || cap(es) != 3 {
		t.Fatalf("3 elements of 24 bytes: capacity %d", cap(es))
	}
}
