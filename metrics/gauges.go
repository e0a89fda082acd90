package metrics

import (
	"math"

	"github.com/drainpipe/drainpipe/logline"
)

// Gauges holds one dyno's runtime samples in a bucket: for every
// logline.Gauge, what a Stat holds (Stat returns it). Every Stat is
// exactly, to the bit, what adding the samples one by one to a Stat
// (Stat.Add, Stat.Merge) gives; the record only stores it smaller.
//
// A runtime line sets several gauges at one time (Heroku sends a memory
// line and a load line), so the gauges a line sets share their sample
// count and latest time, a clock: two clocks cover a dyno's lines.
//
// The values are stored in fixed point: Heroku prints load averages with
// two decimals and memory in MB with two decimals, so a sample is
// h/100 (load) or h/100 MB (memory) for an integer h, and the record
// keeps sum, maximum and last value of each gauge as int32 hundredths
// (the sum also keeps how many float64 ulps the float sum, added in the
// samples' order, is away from h/100). The two clocks' times are kept as
// one time, in whole microseconds (syslog times have microseconds), and
// the other's distance from it in microseconds (a dyno prints its memory
// and load lines together). The maximum is kept as its distance above
// the last value (16 bits), and the sum as its distance from the clock's
// count times the last value (16 bits): within a minute a dyno's gauges
// move little. The last load averages are kept in 16 bits (up to
// 327.67), the last memory values in 24 (up to 83,886.07 MB), and each
// clock counts up to 255 samples (an hour of samples every 20 s is 180).
// That is 80 bytes a dyno instead of 240 of float64s and int64s, 96
// with its name. Each value is stored that way only when it reads back
// as the very float64 it stands for (see fixed), and each count and time
// only when it fits; when one does not (values with more decimals, byte
// counts, sums beyond int32 or more than 7 ulps from their fixed point,
// clocks more than 35 minutes or not a whole number of µs apart, a time
// with nanoseconds, more than 255 samples, lines that set gauges in
// other combinations than two clocks hold, a maximum more than 65,535
// hundredths above the last value or a sum more than 32,767 from the
// count times it, a load average beyond ±327.67, memory beyond
// ±83,886.07 MB), the record turns into a Stat per gauge (stats) and
// stays so.
type Gauges struct {
	// stats, when not nil, holds the samples instead of all the below.
	stats *[logline.NumGauges]Stat
	// lastLoad and lastMem hold each gauge's last value in fixed point
	// (see fixed), the load averages' in 16 bits, the others' in 24
	// (lastOf reads both); maxD its maximum less the last value, sumD
	// its sum less the count of its clock times the last value.
	lastLoad [numLoad]int16
	maxD     [logline.NumGauges]uint16
	sumD     [logline.NumGauges]int16
	// The rest are bytes, little-endian signed integers of the sizes
	// given, so that no field pads the record.
	t       [7]uint8                                 // clock 0's latest sample time, Unix µs: an int56
	dt      [4]uint8                                 // clock 1's latest sample time less clock 0's, in µs: an int32
	lastMem [3 * (logline.NumGauges - numLoad)]uint8 // int24s
	count   [2]uint8                                 // the samples of each clock
	member  [2]uint8                                 // the gauges on each clock (bit per gauge); 0: free
	// sumUlp holds, a signed nibble per gauge, how many ulps each float64
	// sum is above fixed(sum).
	sumUlp [logline.NumGauges / 2]uint8
}

// Bounds of the packed record's narrow fields: the memory gauges' last
// values in 24 bits (hundredths of MB, up to about 81.9 GB), clock 0's
// time in 56 bits of µs, and up to 255 samples a clock.
const (
	maxInt24         = 1<<23 - 1
	maxInt56         = 1<<55 - 1
	maxPackedSamples = math.MaxUint8
)

// getInt returns the signed little-endian integer of len(p) bytes at p.
func getInt(p []uint8) int64 {
	var u uint64
	for i, c := range p {
		u |= uint64(c) << (8 * i)
	}
	sh := 64 - 8*len(p)
	return int64(u<<sh) >> sh
}

// putInt writes v at p as a little-endian integer of len(p) bytes; v
// must fit.
func putInt(p []uint8, v int64) {
	for i := range p {
		p[i] = uint8(v >> (8 * i))
	}
}

// packedClocks returns the packed record's clock 0 time (ns), clock
// distance (µs) and counts, as fixedForm holds them.
func (gs *Gauges) packedClocks() (t int64, dt int32, count [2]uint16) {
	return getInt(gs.t[:]) * 1000, int32(getInt(gs.dt[:])), [2]uint16{uint16(gs.count[0]), uint16(gs.count[1])}
}

// fixedForm is the fixed-point form of Gauges unpacked, with each
// gauge's sum, maximum and last value as int32 hundredths: the fold's
// arithmetic works on it, and pack stores it as Gauges.
type fixedForm struct {
	t              int64
	dt             int32
	count          [2]uint16
	member         [2]uint8
	sumUlp         [logline.NumGauges / 2]uint8
	sum, max, last [logline.NumGauges]int32
}

// unpack returns gs's fixed-point form; gs.stats must be nil.
func (gs *Gauges) unpack() fixedForm {
	f := fixedForm{member: gs.member, sumUlp: gs.sumUlp}
	f.t, f.dt, f.count = gs.packedClocks()
	n := clockCounts(gs.member, f.count)
	for i := range f.sum {
		f.last[i] = gs.lastOf(i)
		last := int64(f.last[i])
		f.sum[i], f.max[i] = int32(n[i]*last+int64(gs.sumD[i])), int32(last+int64(gs.maxD[i]))
	}
	return f
}

// clockCounts returns each gauge's sample count: its clock's.
func clockCounts(member [2]uint8, count [2]uint16) [logline.NumGauges]int64 {
	var n [logline.NumGauges]int64
	for k, m := range member {
		for i := range n {
			if m&(1<<i) != 0 {
				n[i] = int64(count[k])
			}
		}
	}
	return n
}

// sumMax returns gauge i's sum and maximum in fixed point.
func (gs *Gauges) sumMax(i int) (sum, max int32) {
	var n int64
	if k := gs.clockOf(i); k >= 0 {
		n = int64(gs.count[k])
	}
	last := int64(gs.lastOf(i))
	return int32(n*last + int64(gs.sumD[i])), int32(last + int64(gs.maxD[i]))
}

// numLoad is the number of load average gauges, the first ones.
const numLoad = logline.GaugeMemTotal

// lastOf returns gauge i's last value in fixed point.
func (gs *Gauges) lastOf(i int) int32 {
	if i < int(numLoad) {
		return int32(gs.lastLoad[i])
	}
	j := 3 * (i - int(numLoad))
	return int32(getInt(gs.lastMem[j : j+3]))
}

// clockOf returns the clock of gauge g, -1 when it has no samples.
func (gs *Gauges) clockOf(g int) int { return clockIn(&gs.member, g) }

// clockIn returns the clock whose member set holds gauge g, -1 when none
// does.
func clockIn(member *[2]uint8, g int) int {
	bit := uint8(1) << g
	for k, m := range member {
		if m&bit != 0 {
			return k
		}
	}
	return -1
}

// pack stores f in gs; it reports false, changing nothing, when a
// maximum or sum is too far from its last value to be stored.
func (gs *Gauges) pack(f *fixedForm) bool {
	var maxD [logline.NumGauges]uint16
	var sumD [logline.NumGauges]int16
	var lastLoad [numLoad]int16
	n := clockCounts(f.member, f.count)
	for i := range f.sum {
		last := int64(f.last[i])
		if i < int(numLoad) {
			if last < math.MinInt16 || last > math.MaxInt16 {
				return false
			}
			lastLoad[i] = int16(last)
		}
		dm, ds := int64(f.max[i])-last, int64(f.sum[i])-n[i]*last
		if dm < 0 || dm > math.MaxUint16 || ds < math.MinInt16 || ds > math.MaxInt16 {
			return false
		}
		maxD[i], sumD[i] = uint16(dm), int16(ds)
	}
	if f.t%1000 != 0 || f.t/1000 < -maxInt56-1 || f.t/1000 > maxInt56 || f.count[0] > maxPackedSamples || f.count[1] > maxPackedSamples {
		return false
	}
	for _, v := range f.last[numLoad:] {
		if v < -maxInt24-1 || v > maxInt24 {
			return false
		}
	}
	*gs = Gauges{count: [2]uint8{uint8(f.count[0]), uint8(f.count[1])}, member: f.member, sumUlp: f.sumUlp, lastLoad: lastLoad, maxD: maxD, sumD: sumD}
	putInt(gs.t[:], f.t/1000)
	putInt(gs.dt[:], int64(f.dt))
	for i, v := range f.last[numLoad:] {
		putInt(gs.lastMem[3*i:3*i+3], int64(v))
	}
	return true
}

// maxUlp bounds the ulps a sum may be from its fixed point: a nibble.
const maxUlp = 7

// ulp returns gauge g's sum's ulps.
func (gs *fixedForm) ulp(g int) int64 {
	n := gs.sumUlp[g>>1] >> (4 * (g & 1)) & 0xf
	return int64(int8(n<<4) >> 4)
}

// clockT returns clock k's latest sample time.
func (gs *fixedForm) clockT(k int) int64 {
	if k == 0 {
		return gs.t
	}
	return gs.t + int64(gs.dt)*1000
}

// setClockT sets clock k's latest sample time to t; it reports false,
// changing nothing, when the clocks would be too far apart. Clock 1 is
// used only while clock 0 is (clockFor takes the first free one).
func (gs *fixedForm) setClockT(k int, t int64) bool {
	var d int64
	switch {
	case k == 1:
		d = t - gs.t
	case gs.member[1] != 0:
		d = gs.clockT(1) - t
	}
	if d%1000 != 0 || d/1000 < math.MinInt32 || d/1000 > math.MaxInt32 {
		return false
	}
	if k == 0 {
		gs.t = t
	}
	gs.dt = int32(d / 1000)
	return true
}

// gaugeUnit is what one unit of gauge g's fixed point stands for, times
// 100: load averages are hundredths, memory (in bytes) hundredths of MB.
func gaugeUnit(g int) float64 {
	switch logline.Gauge(g) {
	case logline.GaugeLoad1m, logline.GaugeLoad5m, logline.GaugeLoad15m:
		return 1
	}
	return 1 << 20
}

// fixed returns the float64 that the fixed-point value h of gauge g
// stands for: h/100 (correctly rounded) times the gauge's unit, a power
// of two, so exactly the float64 that the parser makes of the decimal
// text of h/100 in that unit ("200.22MB").
func fixed(g int, h int32) float64 { return float64(h) / 100 * gaugeUnit(g) }

// nearestFixed returns the fixed-point value of gauge g nearest to v;
// false when it is beyond int32 (or v is not finite).
func nearestFixed(g int, v float64) (int32, bool) {
	x := math.Round(v / gaugeUnit(g) * 100)
	if !(x >= math.MinInt32 && x <= math.MaxInt32) {
		return 0, false
	}
	return int32(x), true
}

// toFixed returns the fixed-point form of v for gauge g; false when there
// is none that reads back as v to the bit.
func toFixed(g int, v float64) (int32, bool) {
	h, ok := nearestFixed(g, v)
	return h, ok && math.Float64bits(fixed(g, h)) == math.Float64bits(v)
}

// sumOf returns gauge g's sum as a float64.
func (gs *fixedForm) sumOf(g int) float64 {
	base := math.Float64bits(fixed(g, gs.sum[g]))
	return math.Float64frombits(uint64(int64(base) + gs.ulp(g)))
}

// setSum stores v as gauge g's sum: the nearest fixed-point value and
// the ulps between them. It reports false, storing nothing, when they
// are more than maxUlp ulps apart.
func (gs *fixedForm) setSum(g int, v float64) bool {
	h, ok := nearestFixed(g, v)
	if !ok {
		return false
	}
	d := int64(math.Float64bits(v)) - int64(math.Float64bits(fixed(g, h)))
	if d < -maxUlp || d > maxUlp {
		return false
	}
	gs.sum[g] = h
	sh := 4 * (g & 1)
	gs.sumUlp[g>>1] = gs.sumUlp[g>>1]&^(0xf<<sh) | uint8(d)&0xf<<sh
	return true
}

// Stat returns gauge g's samples.
func (gs *Gauges) Stat(g logline.Gauge) Stat {
	if gs.stats != nil {
		return gs.stats[g]
	}
	i := int(g)
	k := gs.clockOf(i)
	if k < 0 || gs.count[k] == 0 {
		return Stat{}
	}
	// One gauge of the unpacked form, without unpacking the others.
	f := fixedForm{sumUlp: gs.sumUlp}
	f.t, f.dt, f.count = gs.packedClocks()
	f.sum[i], f.max[i] = gs.sumMax(i)
	f.last[i] = gs.lastOf(i)
	return f.stat(i, k)
}

// stat returns gauge i's samples, on clock k.
func (gs *fixedForm) stat(i, k int) Stat {
	return Stat{Count: int64(gs.count[k]), Sum: gs.sumOf(i), Max: fixed(i, gs.max[i]), Last: fixed(i, gs.last[i]), LastT: gs.clockT(k)}
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
	if gs.stats == nil {
		f := gs.unpack()
		if f.addFixed(set, values, t) && gs.pack(&f) {
			return
		}
		gs.toStats()
	}
	for i, v := range values {
		if set&(1<<i) != 0 {
			gs.stats[i].Add(v, t)
		}
	}
}

// addFixed adds the line to the fixed-point form, as Stat.Add would to
// each gauge in set; it reports false, leaving gs partly changed (a
// scratch copy, unpacked), when the gauges in set do not fit a clock or
// a value has no fixed-point form.
func (gs *fixedForm) addFixed(set uint16, values *[logline.NumGauges]float64, t int64) bool {
	k := gs.clockFor(uint8(set))
	if k < 0 || set > math.MaxUint8 || gs.count[k] == math.MaxUint16 {
		return false
	}
	n := gs
	first, latest := n.count[k] == 0, n.count[k] == 0 || t >= n.clockT(k)
	for i, v := range values {
		if set&(1<<i) == 0 {
			continue
		}
		h, ok := toFixed(i, v)
		if !ok || !n.setSum(i, n.sumOf(i)+v) {
			return false
		}
		if first || v > fixed(i, n.max[i]) {
			n.max[i] = h
		}
		if latest {
			n.last[i] = h
		}
	}
	if latest && !n.setClockT(k, t) {
		return false
	}
	n.member[k] = uint8(set)
	n.count[k]++
	return true
}

// clockFor returns the clock for the gauges in set: the one they share
// alone, or a free one when none of them has samples yet; -1 when there
// is none. It changes nothing.
func (gs *fixedForm) clockFor(set uint8) int {
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
			return k
		}
	}
	return -1
}

// toStats turns gs into a Stat per gauge.
func (gs *Gauges) toStats() {
	st := new([logline.NumGauges]Stat)
	for i := range st {
		st[i] = gs.Stat(logline.Gauge(i))
	}
	*gs = Gauges{stats: st}
}

// Merge adds o's samples to gs.
func (gs *Gauges) Merge(o *Gauges) {
	if gs.stats == nil && o.stats == nil {
		f, of := gs.unpack(), o.unpack()
		if f.mergeFixed(&of) && gs.pack(&f) {
			return
		}
	}
	if gs.stats == nil {
		gs.toStats()
	}
	if o.stats != nil {
		for i := range gs.stats {
			gs.stats[i].Merge(&o.stats[i])
		}
		return
	}
	for i := range gs.stats { // only the gauges o has samples of
		if o.clockOf(i) >= 0 {
			st := o.Stat(logline.Gauge(i))
			gs.stats[i].Merge(&st)
		}
	}
}

// mergeFixed merges o clock by clock, as Stat.Merge would gauge by
// gauge, when each of o's clocks has a clock of gs with the same gauges,
// or a free one for gauges gs has no samples of, and every sum has a
// fixed-point form; it reports false otherwise, leaving gs (a scratch
// copy, unpacked) partly changed.
func (gs *fixedForm) mergeFixed(o *fixedForm) bool {
	n := gs
	for k, m := range o.member {
		if m == 0 || o.count[k] == 0 {
			continue
		}
		j := n.clockFor(m)
		if j < 0 || int(n.count[j])+int(o.count[k]) > math.MaxUint16 {
			return false
		}
		ot := o.clockT(k)
		empty, later := n.count[j] == 0, n.count[j] == 0 || ot >= n.clockT(j)
		for i := range n.sum {
			if m&(1<<i) == 0 {
				continue
			}
			if !n.setSum(i, n.sumOf(i)+o.sumOf(i)) {
				return false
			}
			if empty || fixed(i, o.max[i]) > fixed(i, n.max[i]) {
				n.max[i] = o.max[i]
			}
			if later {
				n.last[i] = o.last[i]
			}
		}
		if later && !n.setClockT(j, ot) {
			return false
		}
		n.member[j] = m
		n.count[j] += o.count[k]
	}
	return true
}

// set makes gs hold the Stats in st (a decoded record): in fixed point
// on shared clocks when the gauges with samples have at most two
// distinct counts and times and every value has a fixed-point form,
// else as Stats.
func (gs *Gauges) set(st *[logline.NumGauges]Stat) {
	var f fixedForm
	if !f.setFixed(st) || !gs.pack(&f) {
		*gs = Gauges{stats: new([logline.NumGauges]Stat)}
		*gs.stats = *st
	}
}

// setFixed is set's fixed-point form; it reports false when st has none.
func (gs *fixedForm) setFixed(st *[logline.NumGauges]Stat) bool {
	for i := range st {
		s := &st[i]
		if s.Count == 0 {
			continue
		}
		if s.Count > math.MaxUint16 {
			return false
		}
		k := -1
		for j := range gs.member {
			if gs.member[j] != 0 && int64(gs.count[j]) == s.Count && gs.clockT(j) == s.LastT {
				k = j
				break
			}
		}
		if k < 0 {
			for j := range gs.member {
				if gs.member[j] == 0 {
					k = j
					if !gs.setClockT(j, s.LastT) {
						return false
					}
					gs.count[j] = uint16(s.Count)
					break
				}
			}
		}
		if k < 0 {
			return false
		}
		gs.member[k] |= 1 << i
		var ok1, ok2 bool
		gs.max[i], ok1 = toFixed(i, s.Max)
		gs.last[i], ok2 = toFixed(i, s.Last)
		if !ok1 || !ok2 || !gs.setSum(i, s.Sum) {
			return false
		}
	}
	return true
}
