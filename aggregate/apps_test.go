package aggregate

import (
	"fmt"
	"testing"
)

// TestAppTable: the table finds every app added, through its growths,
// and no other; all yields each app once; it stays at most 3/4 full.
func TestAppTable(t *testing.T) {
	var tab appTable
	if tab.get("a") != nil {
		t.Fatal("an empty table found an app")
	}
	added := map[string]*appState{}
	for i := range 5000 {
		name := fmt.Sprintf("app-%d", i)
		if i%7 == 0 {
			name = fmt.Sprint(i) // names of other lengths
		}
		as := tab.add(name)
		added[name] = as
		if i%97 == 0 || i == 4999 {
			for n, want := range added {
				if got := tab.get(n); got != want || got.name != n {
					t.Fatalf("after %d apps: get(%q) = %p, want %p", i+1, n, got, want)
				}
			}
			if tab.get(name+"x") != nil || tab.get("") != nil {
				t.Fatalf("after %d apps: found an app not added", i+1)
			}
			if 4*tab.n > 3*len(tab.slots) {
				t.Fatalf("%d apps in %d slots", tab.n, len(tab.slots))
			}
		}
	}
	seen := map[string]bool{}
	for as := range tab.all {
		if seen[as.name] || added[as.name] != as {
			t.Fatalf("all yielded %q twice or not as added", as.name)
		}
		seen[as.name] = true
	}
	if len(seen) != len(added) || tab.n != len(added) {
		t.Fatalf("all yielded %d apps, n = %d, want %d", len(seen), tab.n, len(added))
	}
}
