package metrics

import (
	"math"

	"github.com/drainpipe/drainpipe/logline"
)

// Gauges holds one dyno's runtime samples in a bucket: for every
// logline.Gauge, what a Stat holds (Stat returns it).
//
// A runtime line sets several gauges at one time (Heroku sends a memory
// line and a load line), so the gauges a line sets share their sample
// count and latest time, a clock: two clocks cover a dyno's lines, and
// the record is 240 bytes instead of the 320 of eight Stats. When lines
// set gauges in other combinations, the record falls back to a clock
// per gauge (wide). Either way every Stat is exactly what adding the
// samples one by one to a Stat gives.
type Gauges struct {
	sum, max, last [logline.NumGauges]float64
	clock          [2]gaugeClock
	member         [2]uint16 // the gauges on each clock (bit per gauge); 0: free
	wide           *[logline.NumGauges]gaugeClock
}

// gaugeClock is the sample count and latest sample time of one or more
// gauges.
type gaugeClock struct {
	count int64
	t     int64 // Unix nanoseconds of the latest sample
}

// clockOf returns gauge g's clock, nil when it has no samples.
func (gs *Gauges) clockOf(g logline.Gauge) *gaugeClock {
	if gs.wide != nil {
		return &gs.wide[g]
	}
	bit := uint16(1) << g
	for k := range gs.member {
		if gs.member[k]&bit != 0 {
			return &gs.clock[k]
		}
	}
	return nil
}

// Stat returns gauge g's samples.
func (gs *Gauges) Stat(g logline.Gauge) Stat {
	c := gs.clockOf(g)
	if c == nil || c.count == 0 {
		return Stat{}
	}
	return Stat{Count: c.count, Sum: gs.sum[g], Max: gs.max[g], Last: gs.last[g], LastT: c.t}
}

// Add records one sample of gauge g taken at t (Unix nanoseconds). NaN
// and infinite values are ignored.
func (gs *Gauges) Add(g logline.Gauge, v float64, t int64) {
	var values [logline.NumGauges]float64
	values[g] = v
	gs.AddLine(1<<g, &values, t)
}

// AddLine records the samples of one runtime line taken at t: values[i]
// for every gauge i whose bit is set in has. NaN and infinite values are
// ignored.
func (gs *Gauges) AddLine(has uint16, values *[logline.NumGauges]float64, t int64) {
	var set uint16
	for i, v := range values {
		if has&(1<<i) != 0 && !math.IsNaN(v) && !math.IsInf(v, 0) {
			set |= 1 << i
		}
	}
	if set == 0 {
		return
	}
	if gs.wide == nil {
		if k := gs.clockFor(set); k >= 0 {
			c := &gs.clock[k]
			gs.addValues(set, values, c.count, c.t, t)
			c.add(1, t)
			return
		}
		gs.widen()
	}
	for i := range values {
		if set&(1<<i) != 0 {
			c := &gs.wide[i]
			gs.addValues(1<<i, values, c.count, c.t, t)
			c.add(1, t)
		}
	}
}

// clockFor returns the clock for the gauges in set: the one they share
// alone, or a free one when none of them has samples yet; -1 when there
// is none.
func (gs *Gauges) clockFor(set uint16) int {
	for k, m := range gs.member {
		if m == set {
			return k
		}
	}
	if set&(gs.member[0]|gs.member[1]) != 0 {
		return -1
	}
	for k, m := range gs.member {
		if m == 0 {
			gs.member[k], gs.clock[k] = set, gaugeClock{}
			return k
		}
	}
	return -1
}

// addValues adds samples of the gauges in set, as Stat.Add would to
// Stats that have count samples, the latest at last, with a sample
// (values[i]) at t.
func (gs *Gauges) addValues(set uint16, values *[logline.NumGauges]float64, count, last, t int64) {
	for i, v := range values {
		if set&(1<<i) == 0 {
			continue
		}
		if count == 0 || v > gs.max[i] {
			gs.max[i] = v
		}
		if count == 0 || t >= last {
			gs.last[i] = v
		}
		gs.sum[i] += v
	}
}

// add counts n samples whose latest was at t, as Stat.Add and Stat.Merge
// keep LastT.
func (c *gaugeClock) add(n, t int64) {
	if c.count == 0 || t >= c.t {
		c.t = t
	}
	c.count += n
}

// widen gives every gauge a clock of its own.
func (gs *Gauges) widen() {
	w := new([logline.NumGauges]gaugeClock)
	for i := range w {
		if c := gs.clockOf(logline.Gauge(i)); c != nil {
			w[i] = *c
		}
	}
	gs.wide, gs.member = w, [2]uint16{}
}

// Merge adds o's samples to gs.
func (gs *Gauges) Merge(o *Gauges) {
	if gs.wide == nil && o.wide == nil && gs.mergeClocks(o) {
		return
	}
	if gs.wide == nil {
		gs.widen()
	}
	for i := range gs.wide {
		st := o.Stat(logline.Gauge(i))
		if st.Count == 0 {
			continue
		}
		c := &gs.wide[i]
		gs.mergeStat(i, c, &st)
		c.add(st.Count, st.LastT)
	}
}

// mergeStat merges st into gauge i, whose clock is c, as Stat.Merge does.
func (gs *Gauges) mergeStat(i int, c *gaugeClock, st *Stat) {
	if c.count == 0 || st.Max > gs.max[i] {
		gs.max[i] = st.Max
	}
	if c.count == 0 || st.LastT >= c.t {
		gs.last[i] = st.Last
	}
	gs.sum[i] += st.Sum
}

// mergeClocks merges o clock by clock when each of o's clocks has a clock
// of gs with the same gauges, or a free one for gauges gs has no samples
// of; it reports false, changing nothing, otherwise.
func (gs *Gauges) mergeClocks(o *Gauges) bool {
	var to [2]int
	claimed := gs.member
	for k, m := range o.member {
		to[k] = -1
		if m == 0 {
			continue
		}
		for j, mine := range claimed {
			if mine == m {
				to[k] = j
				break
			}
		}
		if to[k] < 0 && m&(gs.member[0]|gs.member[1]) == 0 {
			for j, mine := range claimed {
				if mine == 0 {
					to[k], claimed[j] = j, m
					break
				}
			}
		}
		if to[k] < 0 {
			return false
		}
	}
	for k, m := range o.member {
		if m == 0 {
			continue
		}
		j := to[k]
		if gs.member[j] == 0 {
			gs.member[j], gs.clock[j] = m, gaugeClock{}
		}
		oc, c := o.clock[k], &gs.clock[j]
		for i := range gs.sum {
			if m&(1<<i) != 0 {
				st := o.Stat(logline.Gauge(i))
				gs.mergeStat(i, c, &st)
			}
		}
		c.add(oc.count, oc.t)
	}
	return true
}

// set makes gs hold the Stats in st (a decoded record): on shared clocks
// when the gauges with samples have at most two distinct counts and
// times, else wide.
func (gs *Gauges) set(st *[logline.NumGauges]Stat) {
	*gs = Gauges{}
	for i := range st {
		s := &st[i]
		if s.Count == 0 {
			continue
		}
		gs.sum[i], gs.max[i], gs.last[i] = s.Sum, s.Max, s.Last
		c := gaugeClock{count: s.Count, t: s.LastT}
		if gs.wide == nil {
			k := -1
			for j := range gs.clock {
				if gs.member[j] != 0 && gs.clock[j] == c {
					k = j
					break
				}
			}
			if k < 0 {
				for j := range gs.clock {
					if gs.member[j] == 0 {
						k = j
						gs.clock[j] = c
						break
					}
				}
			}
			if k >= 0 {
				gs.member[k] |= 1 << i
				continue
			}
			gs.widen()
		}
		gs.wide[i] = c
	}
}
