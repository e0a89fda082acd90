package aggregate

import (
	"math"
	"slices"
	"time"

	"github.com/drainpipe/drainpipe/internal/tightslice"
)

// nameTable interns the names a State keeps: process types, dynos and
// custom metric names. Each distinct name is held once per State, under
// a small id, however many apps use it (a fleet's apps mostly share
// "web", "web.1" and their metrics' names), and the apps' limits and
// bucket indexes keep ids of 4 bytes instead of strings of 16 bytes and
// more (BenchmarkStateMemory). A name is counted by its holders (an
// app's limits entry, a bucket of the app's index) and forgotten, its id
// reused, when the last one lets go, so the table holds no more names
// than the apps' limits do. Id 0 is the empty name, held for good.
type nameTable struct {
	ids  map[string]uint32
	strs []string // by id; "" for a free id (and id 0)
	refs []uint32 // holders of each id
	free []uint32 // ids to reuse
}

// maxNameIDs bounds the ids: they share 32 bits with a limits entry's
// kind.
const maxNameIDs = 1 << 30

func newNameTable() *nameTable {
	return &nameTable{ids: map[string]uint32{"": 0}, strs: []string{""}, refs: []uint32{1}}
}

// str returns the name of id.
func (t *nameTable) str(id uint32) string { return t.strs[id] }

// acquire returns name's id, adding the name when new, and counts one
// more holder of it; false when the table is full (1<<30 names held at
// once). It allocates only for a new name.
func (t *nameTable) acquire(name []byte) (uint32, bool) {
	if id, ok := t.ids[string(name)]; ok {
		t.refs[id]++
		return id, true
	}
	var id uint32
	if n := len(t.free); n > 0 {
		id, t.free = t.free[n-1], t.free[:n-1]
	} else {
		if len(t.strs) >= maxNameIDs {
			return 0, false
		}
		id = uint32(len(t.strs))
		t.strs = append(t.strs, "")
		t.refs = append(t.refs, 0)
	}
	s := string(name)
	t.ids[s] = id
	t.strs[id], t.refs[id] = s, 1
	return id, true
}

// hold counts one more holder of id.
func (t *nameTable) hold(id uint32) { t.refs[id]++ }

// release lets go of id, forgetting its name when it was the last
// holder.
func (t *nameTable) release(id uint32) {
	t.refs[id]--
	if t.refs[id] == 0 {
		delete(t.ids, t.strs[id])
		t.strs[id] = ""
		t.free = append(t.free, id)
	}
}

// Per-app limits on what hostile or runaway input can make drainpipe keep.
// A name counts against its limit while it was seen within limitWindow;
// one-off dynos (run.1234) and old process types age out.
const (
	MaxProcessTypes = 32
	MaxDynos        = 256
	MaxCustomNames  = 500
	limitWindow     = int64(time.Hour)
)

// The kinds of names an app's limits count, in the top two bits of a
// seenName's ref.
const (
	seenPtype byte = iota
	seenDyno
	seenCustom
)

// lastSeen holds an app's names with the last time they were seen,
// sorted by kind and name: a slice, not a map, as most apps have a
// handful of process types, dynos and custom metric names, and one slice
// for the three kinds. 8 bytes a name: the name is an id in the State's
// nameTable.
type lastSeen []seenName

type seenName struct {
	ref uint32 // the kind in the top two bits, the name's id below
	t   uint32 // when last seen, in ticks (see tick)
}

func (e seenName) kind() byte { return byte(e.ref >> 30) }
func (e seenName) id() uint32 { return e.ref & (maxNameIDs - 1) }

// tickShift makes a limits time a tick of 2^30 ns (about 1.07 s): a
// shift rather than a division on the line's path, and 32 bits hold
// until 2106. Times before 1970 are tick 0.
const tickShift = 30

// tick returns the tick of t (Unix ns).
func tick(t int64) uint32 {
	if t <= 0 {
		return 0
	}
	return uint32(min(uint64(t)>>tickShift, math.MaxUint32))
}

// windowTicks is limitWindow in ticks, rounded up: a name ages out once
// it was last seen more than that many ticks before the line at hand.
const windowTicks = (limitWindow + 1<<tickShift - 1) >> tickShift

// find returns the position of the name of kind in m and whether it is
// there.
func (m lastSeen) find(names *nameTable, kind byte, name []byte) (int, bool) {
	if kind == seenPtype {
		// Every router line looks its process type up, and an app has a
		// few, first in m: a scan that mostly compares lengths is
		// quicker than a binary search over all of the app's names.
		i := 0
		for ; i < len(m) && m[i].kind() == seenPtype; i++ {
			if names.str(m[i].id()) == string(name) {
				return i, true
			}
		}
		for j := range i { // not there: where it goes
			if names.str(m[j].id()) > string(name) {
				return j, false
			}
		}
		return i, false
	}
	lo, hi := 0, len(m)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if k := m[h].kind(); k < kind || k == kind && names.str(m[h].id()) < string(name) {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo, lo < len(m) && m[lo].kind() == kind && names.str(m[lo].id()) == string(name)
}

// count returns how many names of kind m holds.
func (m lastSeen) count(kind byte) int {
	lo, _ := slices.BinarySearchFunc(m, kind, func(e seenName, k byte) int { return int(e.kind()) - int(k) })
	hi, _ := slices.BinarySearchFunc(m, kind+1, func(e seenName, k byte) int { return int(e.kind()) - int(k) })
	return hi - lo
}

// admit reports whether the name of kind may be kept under a limit of
// max names of its kind, and records it as seen at t (Unix ns); it
// returns the name's id in names. It allocates only for a name new to
// the app.
func (m *lastSeen) admit(names *nameTable, kind byte, name []byte, t int64, max int) (uint32, bool) {
	now := tick(t)
	i, ok := m.find(names, kind, name)
	if ok {
		(*m)[i].t = now
		return (*m)[i].id(), true
	}
	if m.count(kind) >= max {
		*m = slices.DeleteFunc(*m, func(e seenName) bool {
			if e.kind() == kind && int64(e.t) < int64(now)-windowTicks {
				names.release(e.id())
				return true
			}
			return false
		})
		if m.count(kind) >= max {
			return 0, false
		}
		i, _ = m.find(names, kind, name)
	}
	id, ok := names.acquire(name)
	if !ok {
		return 0, false
	}
	*m = tightslice.Insert(*m, i, seenName{ref: uint32(kind)<<30 | id, t: now})
	return id, true
}
