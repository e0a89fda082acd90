// Package tightslice grows slices that are held for long by exactly what
// they need rather than by doubling.
package tightslice

import "slices"

// Insert inserts v at index i of s, as slices.Insert does, but when s is
// full it grows s to exactly its new length (rounded up to the
// allocator's size class, which the spare capacity then uses) rather than
// doubling it. It suits slices that grow one element at a time, rarely,
// and are held long, where spare room would be held too: a bucket's
// dynos and custom metrics, the aggregator's names and minutes. Each
// growth copies the slice, so n insertions into an empty slice copy
// O(n²) elements.
func Insert[S ~[]E, E any](s S, i int, v E) S {
	if len(s) < cap(s) {
		return slices.Insert(s, i, v)
	}
	out := slices.Grow(S(nil), len(s)+1)[:len(s)+1]
	copy(out, s[:i])
	out[i] = v
	copy(out[i+1:], s[i:])
	return out
}
