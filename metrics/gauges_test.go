package metrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/drainpipe/drainpipe/logline"
)

const (
	loadGauges   = 1<<logline.GaugeLoad1m | 1<<logline.GaugeLoad5m | 1<<logline.GaugeLoad15m
	memoryGauges = 1<<logline.GaugeMemTotal | 1<<logline.GaugeMemRSS | 1<<logline.GaugeMemCache | 1<<logline.GaugeMemSwap | 1<<logline.GaugeMemQuota
)

// gaugesRef is the reference: a Stat per gauge, added to one by one.
type gaugesRef [logline.NumGauges]Stat

func (r *gaugesRef) addLine(has uint16, values *[logline.NumGauges]float64, t int64) {
	for i := range r {
		if has&(1<<i) != 0 {
			r[i].Add(values[i], t)
		}
	}
}

func checkGauges(t *testing.T, what string, gs *Gauges, ref *gaugesRef) {
	t.Helper()
	for i := range ref {
		got, want := gs.Stat(logline.Gauge(i)), ref[i]
		if got.Count != want.Count || !sameFloat(got.Sum, want.Sum) || !sameFloat(got.Max, want.Max) ||
			!sameFloat(got.Last, want.Last) || got.LastT != want.LastT {
			t.Fatalf("%s: gauge %d = %+v, reference %+v", what, i, got, want)
		}
	}
}

// TestGaugesMatchStats drives the shared-clock gauge record and eight
// Stats through the same random runtime lines (whole memory and load
// lines, partial lines, NaN values, times out of order and equal),
// merges and encode/decode round trips, and compares every gauge after
// every step.
func TestGaugesMatchStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	type pair struct {
		gs  Gauges
		ref gaugesRef
	}
	pool := make([]*pair, 6)
	for i := range pool {
		pool[i] = new(pair)
	}
	for step := range 5000 {
		p := pool[rng.IntN(len(pool))]
		what := fmt.Sprintf("step %d", step)
		switch op := rng.IntN(20); {
		case op < 14:
			var has uint16
			switch rng.IntN(8) {
			case 0:
				has = uint16(rng.IntN(1 << logline.NumGauges)) // any combination
			case 1, 2, 3:
				has = loadGauges
			default:
				has = memoryGauges
			}
			var values [logline.NumGauges]float64
			for i := range values {
				values[i] = float64(rng.IntN(1000)) / 8
				if rng.IntN(50) == 0 {
					values[i] = math.NaN()
				}
			}
			at := int64(rng.IntN(20)) * 1e9 // repeats, and out of order
			p.gs.AddLine(has, &values, at)
			p.ref.addLine(has, &values, at)
		case op < 17:
			o := pool[rng.IntN(len(pool))]
			if o == p {
				continue
			}
			p.gs.Merge(&o.gs)
			for i := range p.ref {
				p.ref[i].Merge(&o.ref[i])
			}
			checkGauges(t, what+" merge source", &o.gs, &o.ref)
		case op < 19:
			b := Bucket{Dynos: []DynoGauges{{Name: "web.1", Gauges: &p.gs}}}
			dec, err := Decode(b.Encode(nil))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			p.gs = *dec.Dynos[0].Gauges
		default:
			*p = pair{}
		}
		checkGauges(t, what, &p.gs, &p.ref)
	}
}

// TestGaugesShareClocks: a dyno's memory and load lines, added, merged
// and decoded, keep two clocks (the 240-byte record), not a clock per
// gauge.
func TestGaugesShareClocks(t *testing.T) {
	var minute, other Gauges
	values := [logline.NumGauges]float64{0.5, 0.4, 0.3, 200, 180, 10, 0, 512}
	for s := range 3 {
		at := int64(s) * 20e9
		minute.AddLine(memoryGauges, &values, at)
		minute.AddLine(loadGauges, &values, at+1)
		other.AddLine(loadGauges, &values, at+60e9)
		other.AddLine(memoryGauges, &values, at+60e9)
	}
	minute.Merge(&other)
	b := Bucket{Dynos: []DynoGauges{{Name: "web.1", Gauges: &minute}}}
	dec, err := Decode(b.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Gauges{&minute, &other, dec.Dynos[0].Gauges} {
		if g.wide != nil {
			t.Fatalf("a clock per gauge: %+v", g)
		}
	}
	if st := minute.Stat(logline.GaugeMemTotal); st.Count != 6 || st.LastT != 100e9 || st.Sum != 1200 {
		t.Fatalf("memory total = %+v", st)
	}
}
