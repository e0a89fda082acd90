package aggregate

import "hash/maphash"

// appTable holds a State's apps, by name: an open-addressing hash table
// of appState pointers (linear probing, at most 3/4 full, a power of two
// long), each appState holding its app's name. A map[string]*appState
// keeps a 16-byte key and an 8-byte value in every slot, and its tables
// of up to 1,024 slots are half full after they split: about 54 bytes an
// app with 1,000 apps, against 8 bytes a slot here (16 an app) and the
// name in the appState's size class (BenchmarkStateMemory). It is looked
// up once per journal record, not per line. Apps are never removed: an
// app's limits outlive flushes, as they did in the map.
type appTable struct {
	seed  maphash.Seed
	slots []*appState
	n     int // apps held
}

// slot returns where app is in t.slots, or the empty slot where it
// would go; t.slots must not be empty.
func (t *appTable) slot(app string) int {
	mask := len(t.slots) - 1
	for i := int(maphash.String(t.seed, app)) & mask; ; i = (i + 1) & mask {
		if as := t.slots[i]; as == nil || as.name == app {
			return i
		}
	}
}

// get returns app's state, nil when the table has none.
func (t *appTable) get(app string) *appState {
	if len(t.slots) == 0 {
		return nil
	}
	return t.slots[t.slot(app)]
}

// add adds a new, empty state for app, which must not be in the table,
// and returns it.
func (t *appTable) add(app string) *appState {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.grow(max(8, 2*len(t.slots)))
	}
	as := &appState{name: app}
	t.slots[t.slot(app)] = as
	t.n++
	return as
}

// grow rebuilds the table with n slots.
func (t *appTable) grow(n int) {
	if len(t.slots) == 0 {
		t.seed = maphash.MakeSeed()
	}
	old := t.slots
	t.slots = make([]*appState, n)
	for _, as := range old {
		if as != nil {
			t.slots[t.slot(as.name)] = as
		}
	}
}

// all yields every app's state.
func (t *appTable) all(yield func(*appState) bool) {
	for _, as := range t.slots {
		if as != nil && !yield(as) {
			return
		}
	}
}
