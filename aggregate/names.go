package aggregate

import (
	"hash/maphash"
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
//
// Names are found by a hash index of ids of 4 bytes (open addressing,
// linear probing, at most 3/4 full) rather than a map[string]uint32, and
// the entries grow by a quarter rather than double: a distinct name costs
// about 40 bytes and its string's, as much as one app's copy of it did
// before (BenchmarkFoldDynos: one app with 256 dynos). The index is only
// searched for names new to an app, not for every line.
type nameTable struct {
	seed    maphash.Seed
	index   []uint32 // id+1 of each name at the slot of its hash; 0: empty. A power of two long
	entries []nameEntry
	free    []uint32 // ids to reuse
	held    int      // names in the index
}

// nameEntry is one id's name and holders; refs 0: a free id.
type nameEntry struct {
	name string
	refs uint32
}

// maxNameIDs bounds the ids: they share 32 bits with a limits entry's
// kind.
const maxNameIDs = 1 << 30

func newNameTable() *nameTable {
	t := new(nameTable)
	t.init()
	return t
}

// init makes t an empty table.
func (t *nameTable) init() {
	*t = nameTable{seed: maphash.MakeSeed(), entries: []nameEntry{{refs: 1}}}
}

// str returns the name of id.
func (t *nameTable) str(id uint32) string { return t.entries[id].name }

// slot returns where name is in the index, or the empty slot where it
// would go, and its id+1 there (0 when it is not there).
func (t *nameTable) slot(name []byte) (int, uint32) {
	mask := len(t.index) - 1
	for i := int(maphash.Bytes(t.seed, name)) & mask; ; i = (i + 1) & mask {
		v := t.index[i]
		if v == 0 || t.entries[v-1].name == string(name) {
			return i, v
		}
	}
}

// acquire returns name's id, adding the name when new, and counts one
// more holder of it; false when the table is full (1<<30 names held at
// once). It allocates only for a new name.
func (t *nameTable) acquire(name []byte) (uint32, bool) {
	if len(name) == 0 {
		t.entries[0].refs++
		return 0, true
	}
	if len(t.index) > 0 {
		if _, v := t.slot(name); v != 0 {
			t.entries[v-1].refs++
			return v - 1, true
		}
	}
	var id uint32
	if n := len(t.free); n > 0 {
		id, t.free = t.free[n-1], t.free[:n-1]
	} else {
		if len(t.entries) >= maxNameIDs {
			return 0, false
		}
		id = uint32(len(t.entries))
		t.entries = growQuarter(t.entries)
	}
	t.entries[id] = nameEntry{name: string(name), refs: 1}
	if 4*(t.held+1) > 3*len(t.index) {
		t.rehash(max(8, 2*len(t.index)))
	}
	i, _ := t.slot(name)
	t.index[i] = id + 1
	t.held++
	return id, true
}

// growQuarter appends a zero entry to s, growing it by a quarter (not
// doubling) when it is full.
func growQuarter(s []nameEntry) []nameEntry {
	if len(s) == cap(s) {
		s = slices.Grow(s, len(s)/4+1)
	}
	return append(s, nameEntry{})
}

// rehash rebuilds the index with n slots.
func (t *nameTable) rehash(n int) {
	t.index = make([]uint32, n)
	for id := 1; id < len(t.entries); id++ {
		if t.entries[id].refs > 0 {
			i, _ := t.slot([]byte(t.entries[id].name))
			t.index[i] = uint32(id) + 1
		}
	}
}

// hold counts one more holder of id.
func (t *nameTable) hold(id uint32) { t.entries[id].refs++ }

// release lets go of id, forgetting its name when it was the last
// holder.
func (t *nameTable) release(id uint32) {
	e := &t.entries[id]
	if e.refs--; e.refs > 0 || id == 0 {
		return
	}
	t.remove(id)
	e.name = ""
	t.free = append(t.free, id)
	t.held--
}

// remove takes id out of the index, moving back the names after it that
// would no longer be found (linear probing's deletion).
func (t *nameTable) remove(id uint32) {
	mask := len(t.index) - 1
	i, _ := t.slot([]byte(t.entries[id].name))
	for j := i; ; {
		j = (j + 1) & mask
		v := t.index[j]
		if v == 0 {
			break
		}
		// The name at j may move to i when its home slot k is not
		// cyclically within (i, j].
		k := int(maphash.String(t.seed, t.entries[v-1].name)) & mask
		if (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
			t.index[i] = v
			i = j
		}
	}
	t.index[i] = 0
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
