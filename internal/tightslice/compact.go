package tightslice

import (
	"math"
	"unsafe"
)

// Compact holds a slice in 16 bytes instead of a slice header's 24: a
// pointer to its first element and its length and capacity as uint32s.
// It suits slices held long and in great numbers that rarely reach
// 2^32 elements: a bucket's custom metric lists and sketch bins, the
// aggregator's per-app lists (BenchmarkStateMemory). The zero value is
// an empty (nil) slice. Get it with S and change it with Set.
type Compact[E any] struct {
	p    *E
	n, c uint32
}

// S returns the slice c holds; nil when it holds none.
func (c Compact[E]) S() []E {
	if c.p == nil {
		return nil
	}
	return unsafe.Slice(c.p, c.c)[:c.n]
}

// Len returns the slice's length.
func (c Compact[E]) Len() int { return int(c.n) }

// Set makes c hold s, which must have fewer than 2^32 elements of
// capacity (it panics otherwise).
func (c *Compact[E]) Set(s []E) {
	if uint64(cap(s)) > math.MaxUint32 {
		panic("tightslice: a Compact slice of 2^32 elements or more")
	}
	*c = Compact[E]{p: unsafe.SliceData(s), n: uint32(len(s)), c: uint32(cap(s))}
}

// Of returns s as a Compact.
func Of[E any](s []E) Compact[E] {
	var c Compact[E]
	c.Set(s)
	return c
}
