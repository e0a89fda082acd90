package tightslice

import (
	"slices"
	"testing"
	"unsafe"
)

// TestCompact: a Compact gives back the slice it was set to (elements,
// length, capacity, the same array), in 16 bytes; the zero value and nil
// give nil, an empty slice an empty one.
func TestCompact(t *testing.T) {
	if n := unsafe.Sizeof(Compact[int64]{}); n != 16 {
		t.Fatalf("Compact is %d bytes, want 16", n)
	}
	var c Compact[int]
	if c.S() != nil || c.Len() != 0 {
		t.Fatalf("zero Compact: %v", c.S())
	}
	var want []int
	for n := range 100 {
		s := Insert(c.S(), n/2, n)
		want = slices.Insert(want, n/2, n)
		c.Set(s)
		got := c.S()
		if !slices.Equal(got, want) || c.Len() != len(s) || cap(got) != cap(s) || &got[0] != &s[0] {
			t.Fatalf("after %d inserts: %v (cap %d), want %v (cap %d)", n+1, got, cap(got), want, cap(s))
		}
	}
	c.Set(c.S()[:0])
	if got := c.S(); got == nil || len(got) != 0 || cap(got) == 0 {
		t.Fatalf("emptied slice: %v, cap %d", got, cap(got))
	}
	c.Set(nil)
	if c.S() != nil {
		t.Fatal("Set(nil) does not give nil")
	}
	if got := Of([]string{"a", "b"}).S(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Of: %v", got)
	}
}
