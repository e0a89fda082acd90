package metrics

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

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

// gaugeValue returns a random sample for gauge g: mostly what Heroku
// prints (load with two decimals, memory in MB with two decimals, parsed
// as the parser does), sometimes a value without a fixed-point form
// (three decimals, bytes, binary fractions, -0, huge), NaN or infinity.
// steady values of Heroku's are within 20.00 of 500.00 MB, or 2.00 of
// 5.00 for a load average, as a dyno's gauges are within a minute (so
// that a few samples' maximum and sum stay near the last value, the
// packed fixed-point form); others anywhere from 0 to 20,000.00.
func gaugeValue(rng *rand.Rand, g int, steady bool) float64 {
	mb := float64(1 << 20)
	if g < int(logline.GaugeMemTotal) {
		mb = 1
	}
	switch rng.IntN(40) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1)
	case 2:
		return math.Copysign(0, -1)
	case 3:
		return float64(rng.IntN(100000)) / 1000 * mb // three decimals
	case 4:
		return float64(rng.IntN(1000)) / 8 // a binary fraction
	case 5:
		return float64(rng.Int64N(1 << 40)) // bytes, or beyond int32
	case 6:
		return 3e7 * mb // 30 TB: hundredths beyond int32
	}
	if steady && g < int(logline.GaugeMemTotal) {
		return float64(300+rng.IntN(400)) / 100
	}
	if steady {
		return float64(49000+rng.IntN(2000)) / 100 * mb
	}
	scale := []int{100, 1000, 100000, 2000000}[rng.IntN(4)]
	return float64(rng.IntN(scale)) / 100 * mb
}

// TestGaugesMatchStats drives the gauge record and eight Stats through
// the same random runtime lines (whole memory and load lines, partial
// lines, values with and without a fixed-point form, NaN, times out of
// order and equal), merges and encode/decode round trips, and compares
// every gauge, bit for bit, after every step.
func TestGaugesMatchStats(t *testing.T) {
	for seed := range uint64(8) {
		testGaugesMatchStats(t, rand.New(rand.NewPCG(51, 52+seed)), seed%2 == 0)
	}
}

func testGaugesMatchStats(t *testing.T, rng *rand.Rand, odd bool) {
	type pair struct {
		gs  Gauges
		ref gaugesRef
	}
	pool := make([]*pair, 6)
	for i := range pool {
		pool[i] = new(pair)
	}
	var fixedSteps int
	for step := range 5000 {
		p := pool[rng.IntN(len(pool))]
		what := fmt.Sprintf("step %d", step)
		switch op := rng.IntN(20); {
		case op < 14:
			var has uint16
			switch rng.IntN(8) {
			case 0:
				if !odd {
					has = loadGauges
					break
				}
				has = uint16(rng.IntN(1 << logline.NumGauges)) // any combination
			case 1, 2, 3:
				has = loadGauges
			default:
				has = memoryGauges
			}
			var values [logline.NumGauges]float64
			steady := p == pool[0] || p == pool[1] || p == pool[2] || p == pool[3]
			for i := range values {
				if odd {
					values[i] = gaugeValue(rng, i, steady)
				} else {
					values[i] = gaugeValue(rng, i, steady)
					for j := 0; j < 9 && !isHeroku(i, values[i]); j++ {
						values[i] = gaugeValue(rng, i, steady)
					}
				}
			}
			at := int64(rng.IntN(20)) * 1e9 // repeats, and out of order
			if odd && rng.IntN(4) == 0 {
				at += int64(rng.IntN(1000)) // not whole µs apart
			}
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
			b := Bucket{Dynos: []DynoGauges{{Name: "web.1", Gauges: p.gs}}}
			dec, err := Decode(b.Encode(nil))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			p.gs = dec.Dynos[0].Gauges
		default:
			*p = pair{}
		}
		checkGauges(t, what, &p.gs, &p.ref)
		if p.gs.stats == nil {
			fixedSteps++
		}
	}
	if !odd && fixedSteps < 1000 {
		t.Fatalf("only %d of 5000 steps left a record in fixed point", fixedSteps)
	}
}

// isHeroku reports whether v is a value as Heroku prints gauge g's.
func isHeroku(g int, v float64) bool {
	h, ok := toFixed(g, v)
	return ok && h >= 0 && h < 2000000
}

// TestGaugesStayFixed: a dyno's memory and load lines as Heroku prints
// them, added, merged and decoded, stay in fixed point (80 bytes) with
// two clocks, and read back the float64 sums added in order.
func TestGaugesStayFixed(t *testing.T) {
	var minute, other Gauges
	values := [logline.NumGauges]float64{0.5, 0.4, 0.3, 200.22 * (1 << 20), 180.01 * (1 << 20), 10.1 * (1 << 20), 0, 512 * (1 << 20)}
	var sum float64
	for s := range 3 {
		at := int64(s) * 20e9
		minute.AddLine(memoryGauges, &values, at)
		minute.AddLine(loadGauges, &values, at+1e6)
		other.AddLine(loadGauges, &values, at+60e9)
		other.AddLine(memoryGauges, &values, at+60e9)
		sum += values[logline.GaugeMemTotal]
	}
	sum += sum
	minute.Merge(&other)
	b := Bucket{Dynos: []DynoGauges{{Name: "web.1", Gauges: minute}}}
	dec, err := Decode(b.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Gauges{&minute, &other, &dec.Dynos[0].Gauges} {
		if g.stats != nil {
			t.Fatalf("not in fixed point: %+v", g)
		}
	}
	if st := minute.Stat(logline.GaugeMemTotal); st.Count != 6 || st.LastT != 100e9 || !sameFloat(st.Sum, sum) {
		t.Fatalf("memory total = %+v, want the sum %v", st, sum)
	}
	if size := unsafe.Sizeof(minute); size != 80 {
		t.Fatalf("Gauges is %d bytes", size)
	}
}

// gaugeForms adds n sample lines of the gauges in has, each filled in by
// sample (which returns its time), three ways: all to one Gauges
// ("added"); the first to one and the rest to another, then merged
// ("merged"); and "added" through a bucket's encoding ("decoded"). It
// returns them with the exact reference of the same lines.
func gaugeForms(t *testing.T, has uint16, n int, sample func(i int, values *[logline.NumGauges]float64) int64) (map[string]*Gauges, *gaugesRef) {
	t.Helper()
	var added, merged, other Gauges
	ref := new(gaugesRef)
	var values [logline.NumGauges]float64
	for i := range n {
		at := sample(i, &values)
		added.AddLine(has, &values, at)
		ref.addLine(has, &values, at)
		if i == 0 {
			merged.AddLine(has, &values, at)
		} else {
			other.AddLine(has, &values, at)
		}
	}
	merged.Merge(&other)
	b := Bucket{Dynos: []DynoGauges{{Name: "web.1", Gauges: added}}}
	dec, err := Decode(b.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*Gauges{"added": &added, "merged": &merged, "decoded": &dec.Dynos[0].Gauges}, ref
}

// TestGaugesLoadBeyond16Bits: the packed record keeps a load average's
// last value in 16 bits, up to ±327.67; one beyond turns the record into
// Stats, by adding and by merging, and every Stat stays exact.
func TestGaugesLoadBeyond16Bits(t *testing.T) {
	for _, tc := range []struct {
		last   float64
		packed bool
	}{{327.67, true}, {327.68, false}, {-327.68, true}, {-327.69, false}, {0.01, true}} {
		// The first sample near the last one, so that the maximum and the
		// sum fit their 16-bit distances from it.
		forms, ref := gaugeForms(t, loadGauges, 2, func(i int, values *[logline.NumGauges]float64) int64 {
			v := []float64{math.Copysign(1.5, tc.last), tc.last}[i]
			for g := range numLoad {
				values[g] = v
			}
			return int64(i) * 20e9
		})
		for name, g := range forms {
			what := fmt.Sprintf("last %v, %s", tc.last, name)
			checkGauges(t, what, g, ref)
			if (g.stats == nil) != tc.packed {
				t.Errorf("%s: packed %v, want %v", what, g.stats == nil, tc.packed)
			}
		}
	}
}

// TestGaugesNarrowFields: the packed record keeps a memory gauge's last
// value in 24 bits (±8,388,607 hundredths of MB) and clock 0's time in
// whole µs; a value beyond, or a time with nanoseconds, turns the record
// into Stats, by adding, by merging and through an encoding, and every
// Stat stays exact.
func TestGaugesNarrowFields(t *testing.T) {
	mem := int(logline.GaugeMemTotal)
	for _, tc := range []struct {
		last   int32 // hundredths of MB
		ns     int64 // added to the sample times
		packed bool
	}{
		{8388607, 0, true}, {8388608, 0, false}, {-8388608, 0, true}, {-8388609, 0, false},
		{20022, 0, true}, {20022, 1, false}, {20022, 999, false}, {20022, 1000, true},
	} {
		forms, ref := gaugeForms(t, memoryGauges, 2, func(i int, values *[logline.NumGauges]float64) int64 {
			for g := mem; g < int(logline.NumGauges); g++ {
				values[g] = fixed(g, tc.last)
			}
			return int64(i)*20e9 + tc.ns
		})
		for name, g := range forms {
			what := fmt.Sprintf("last %d, +%d ns, %s", tc.last, tc.ns, name)
			checkGauges(t, what, g, ref)
			if (g.stats == nil) != tc.packed {
				t.Errorf("%s: packed %v, want %v", what, g.stats == nil, tc.packed)
			}
		}
	}
}

// TestGaugesCountBeyondFixed: a record whose clock holds 255 samples
// (the most its count keeps: an hour of a dyno's samples every 20 s is
// 180) takes more as Stats, adding and merging.
func TestGaugesCountBeyondFixed(t *testing.T) {
	var st [logline.NumGauges]Stat
	st[logline.GaugeLoad1m] = Stat{Count: 255, Sum: 63.75, Max: 0.5, Last: 0.25, LastT: 7e9}
	var full, one Gauges
	full.set(&st)
	if full.stats != nil {
		t.Fatal("255 samples not in fixed point")
	}
	one.Add(logline.GaugeLoad1m, 0.75, 8e9)
	merged := full
	merged.Merge(&one)
	full.Add(logline.GaugeLoad1m, 0.75, 8e9)
	want := Stat{Count: 256, Sum: 64.5, Max: 0.75, Last: 0.75, LastT: 8e9}
	for _, g := range []*Gauges{&full, &merged} {
		if g.stats == nil || g.Stat(logline.GaugeLoad1m) != want {
			t.Fatalf("%+v", g.Stat(logline.GaugeLoad1m))
		}
	}
}

// TestRuntimeBucketsFixed: TestStoredRuntimeBuckets checks the fixed-point
// form, not only Stats: some of its dynos are in fixed point, in minutes,
// rollups and decoded buckets merged into. Few are since the form keeps
// maxima and sums as 16-bit distances from the last value (8 of 70
// minutes, 2 of 111 rollups, 3 of 112 merged): that data draws each
// sample's memory anywhere from 0 to the quota, where a real dyno's
// moves little within a minute. TestGaugesMatchStats drives the form
// with steadier values through encodings too.
func TestRuntimeBucketsFixed(t *testing.T) {
	bs := runtimeBuckets(rand.New(rand.NewPCG(2026, 1126)), 60)
	var fixedDynos, dynos [3]int // of minutes, rollups, decoded and merged
	for i, b := range bs {
		for _, d := range b.Dynos {
			dynos[i%3]++
			if d.Gauges.stats == nil {
				fixedDynos[i%3]++
			}
		}
	}
	t.Logf("dynos in fixed point: %d of %d in minutes, %d of %d in rollups, %d of %d merged into decoded buckets",
		fixedDynos[0], dynos[0], fixedDynos[1], dynos[1], fixedDynos[2], dynos[2])
	for i := range dynos {
		if fixedDynos[i] == 0 {
			t.Fatal("no dynos in fixed point")
		}
	}
}

// FuzzGauges drives gauge records and Stats added one by one through the
// same runtime lines, merges and encode/decode round trips, read from the
// input, and compares every gauge, bit for bit, after every step. Values
// are mostly fixed-point ones (as Heroku prints them), else any float64.
func FuzzGauges(f *testing.F) {
	f.Add([]byte{0, 0xf8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0x07, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 1, 1, 0, 2, 0})
	f.Add([]byte{0, 0xff, 0x80, 0, 0, 0, 0, 0, 0xf8, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 3, 1, 2, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		next := func(n int) []byte {
			if len(in) < n {
				in = append(in, make([]byte, n-len(in))...)
			}
			p := in[:n]
			in = in[n:]
			return p
		}
		type pair struct {
			gs  Gauges
			ref gaugesRef
		}
		var pool [3]pair
		for step := 0; len(in) > 0 && step < 200; step++ {
			op := next(1)[0]
			p := &pool[op>>4%3]
			switch op & 3 {
			case 0: // a runtime line: the gauges set, then per gauge a value, then the time
				has := uint16(next(1)[0])
				var values [logline.NumGauges]float64
				for i := range values {
					b := next(3)
					if b[0]&0x80 == 0 { // fixed point: up to 2^23 hundredths
						h := int32(b[0])<<16 | int32(b[1])<<8 | int32(b[2])
						values[i] = fixed(i, h)
					} else {
						bits := binary.LittleEndian.Uint64(append(b, next(5)...))
						values[i] = math.Float64frombits(bits)
					}
				}
				tb := next(4)
				at := int64(binary.LittleEndian.Uint32(tb)&0x7fffffff) * 1000 // µs
				if tb[3]&0x80 != 0 {
					at += int64(tb[0]) // not whole µs
				}
				p.gs.AddLine(has, &values, at)
				p.ref.addLine(has, &values, at)
			case 1:
				o := &pool[(op>>4+1)%3]
				p.gs.Merge(&o.gs)
				for i := range p.ref {
					p.ref[i].Merge(&o.ref[i])
				}
				checkGauges(t, "merge source", &o.gs, &o.ref)
			case 2:
				b := Bucket{Dynos: []DynoGauges{{Name: "web.1", Gauges: p.gs}}}
				dec, err := Decode(b.Encode(nil))
				if err != nil {
					t.Fatal(err)
				}
				p.gs = dec.Dynos[0].Gauges
			default:
				*p = pair{}
			}
			checkGauges(t, fmt.Sprintf("step %d", step), &p.gs, &p.ref)
		}
	})
}
