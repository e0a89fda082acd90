package gen

import (
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

// Line is one generated log line.
type Line struct {
	Time time.Time
	// AppName is the syslog APP-NAME: "heroku" for platform lines (router,
	// runtime metrics, dyno lifecycle, logplex), "app" for the app's own
	// output and for platform API lines (app[api]).
	AppName string
	// ProcID is the syslog PROCID: "router", "web.1", "worker.2", "api",
	// "logplex".
	ProcID string
	// Msg is the message text, without a trailing newline. In a Generate
	// callback it is only valid until the callback returns.
	Msg []byte
}

// String renders the line the way `heroku logs` prints it.
func (l Line) String() string {
	return l.Time.UTC().Format("2006-01-02T15:04:05.000000+00:00") + " " + l.AppName + "[" + l.ProcID + "]: " + string(l.Msg)
}

type typeState struct {
	spec     TypeSpec
	procIDs  []string  // "web.1", ... one per slot (Dynos+1 slots)
	restarts [][]int64 // per slot: sorted restart times from episodes
	phase    []int64   // per slot: runtime metrics when (sec+phase)%20 == 0
	msOff    []int64   // per slot: sub-second offset of its runtime lines
}

// Generator produces the log lines of one app. It is deterministic: the
// lines of a given second depend only on the seed, the app spec, that
// second and the window the generator was created for (which places the
// episodes). A Generator is not safe for concurrent use.
type Generator struct {
	app      AppSpec
	key      uint64
	from, to int64
	host     string
	appNum   string
	types    []typeState
	web      int // index of the "web" type, or -1
	jobT     int // index of the first non-web type, or -1
	eps      []episode
	events   []event
	routes   []route
	routeCum []uint32
	mu       float64 // ln(MedianMS)
	assetTag string

	pcg rand.PCG
	r   *rand.Rand

	// per-second state
	cnt      []int
	crashed  []bool
	timeouts bool
	mem      *episode
	lambda   float64
	jobRate  float64

	buf    []byte
	line   Line
	emit   func(*Line)
	lo, hi int64
	n      int
}

// NewGenerator returns a generator for app whose scenario episodes are
// placed in the window [from, to) (see the package documentation). It can
// generate lines for any time, inside the window or after it (live mode).
func NewGenerator(app AppSpec, seed uint64, from, to time.Time) *Generator {
	g := &Generator{
		app:  app,
		key:  hash(seed, hashString(app.Name)),
		from: from.UnixNano(),
		to:   to.UnixNano(),
		host: app.Name + ".herokuapp.com",
		web:  -1,
		jobT: -1,
		buf:  make([]byte, 0, 512),
	}
	if g.to < g.from {
		g.to = g.from
	}
	g.r = rand.New(&g.pcg)
	g.appNum = strconv.FormatUint(1000000+g.key%9000000, 10)
	g.assetTag = string(appendHex(nil, mix(g.key), 8))
	if g.app.MedianMS <= 0 {
		g.app.MedianMS = 50
	}
	if g.app.Sigma < 0 {
		g.app.Sigma = 0
	}
	if g.app.User == "" {
		g.app.User = "dev@example.com"
	}
	g.mu = math.Log(g.app.MedianMS)
	for ti, t := range app.Types {
		ts := typeState{spec: t}
		slots := max(t.Dynos, 0) + 1
		for j := 1; j <= slots; j++ {
			ts.procIDs = append(ts.procIDs, t.Name+"."+strconv.Itoa(j))
			h := hash(g.key, 0x5107, uint64(ti), uint64(j))
			ts.phase = append(ts.phase, int64(h%20))
			ts.msOff = append(ts.msOff, int64(h>>32%1000)*msec)
		}
		ts.restarts = make([][]int64, slots)
		if ts.spec.QuotaMB <= 0 {
			ts.spec.QuotaMB = 512
		}
		if ts.spec.Size == "" {
			ts.spec.Size = "Standard-1X"
		}
		if ts.spec.Command == "" {
			ts.spec.Command = "bin/" + t.Name
		}
		if ts.spec.MemBase <= 0 {
			ts.spec.MemBase = 0.4
		}
		g.types = append(g.types, ts)
		if t.Name == "web" && g.web < 0 {
			g.web = ti
		} else if t.Name != "web" && g.jobT < 0 {
			g.jobT = ti
		}
	}
	g.cnt = make([]int, len(g.types))
	g.crashed = make([]bool, len(g.types))
	g.routes = flavorRoutes[app.Flavor%Flavor(len(flavorRoutes))]
	var c uint32
	for _, rt := range g.routes {
		c += rt.weight
		g.routeCum = append(g.routeCum, c)
	}
	g.plan()
	return g
}

// App returns the generator's app spec.
func (g *Generator) App() AppSpec { return g.app }

func (g *Generator) typeIndex(name string) int {
	for i, t := range g.types {
		if t.spec.Name == name {
			return i
		}
	}
	return -1
}

// Generate calls emit for every line whose time lies in [from, to), and
// returns how many there were. Lines are produced second by second; within
// a second they are not sorted by time. emit must not retain the *Line or
// its Msg after it returns.
func (g *Generator) Generate(from, to time.Time, emit func(*Line)) int {
	lo, hi := from.UnixNano(), to.UnixNano()
	g.n = 0
	if hi <= lo {
		return 0
	}
	g.emit, g.lo, g.hi = emit, lo, hi
	s0 := floorDiv(lo, sec)
	ei := sort.Search(len(g.events), func(i int) bool { return g.events[i].ns >= s0*sec })
	for s := s0; s*sec < hi; s++ {
		t0 := s * sec
		for ei < len(g.events) && g.events[ei].ns < t0+sec {
			ev := &g.events[ei]
			ei++
			app := "heroku"
			if ev.app {
				app = "app"
			}
			g.buf = append(g.buf[:0], ev.msg...)
			g.out(ev.ns, app, ev.proc, g.buf)
		}
		g.second(s)
	}
	g.emit = nil
	return g.n
}

// Lines returns the lines in [from, to) with their own copies of Msg.
func (g *Generator) Lines(from, to time.Time) []Line {
	var out []Line
	g.Generate(from, to, func(l *Line) {
		c := *l
		c.Msg = append([]byte(nil), l.Msg...)
		out = append(out, c)
	})
	return out
}

func (g *Generator) out(ns int64, app, proc string, msg []byte) {
	if ns < g.lo || ns >= g.hi {
		return
	}
	g.line.Time = time.Unix(0, ns).UTC()
	g.line.AppName, g.line.ProcID, g.line.Msg = app, proc, msg
	g.n++
	g.emit(&g.line)
}

// diurnal is the traffic factor at t: 1 + 0.4·sin(2π(h−9)/24).
func diurnal(t int64) float64 {
	h := float64(((t/sec)%86400+86400)%86400) / 3600
	return 1 + 0.4*math.Sin(2*math.Pi*(h-9)/24)
}

// second generates the non-precomputed lines of second s.
func (g *Generator) second(s int64) {
	t0 := s * sec
	g.pcg.Seed(g.key, mix(uint64(s)))
	r := g.r

	for i := range g.types {
		g.cnt[i] = g.types[i].spec.Dynos
		g.crashed[i] = false
	}
	g.timeouts, g.mem = false, nil
	var ramp *episode
	for i := range g.eps {
		e := &g.eps[i]
		switch e.kind {
		case EpisodeScale:
			if e.start <= t0 && t0 < e.end {
				g.cnt[e.typ] += e.delta
			}
		case EpisodeCrash:
			if e.start <= t0 && t0 < e.end {
				g.crashed[e.typ] = true
			}
		case EpisodeTimeouts:
			if e.start <= t0 && t0 < e.end {
				g.timeouts = true
			}
		case EpisodeMemory:
			if e.start <= t0 && t0 < e.end {
				g.mem = e
			} else if e.start-memRamp(e) <= t0 && t0 < e.start {
				ramp = e
			}
		}
	}
	f := diurnal(t0)
	g.lambda = g.app.RPS * f
	g.jobRate = g.app.JobsPerSec * f

	// Dyno lines: daily cycling, runtime metrics, queue samples.
	for ti := range g.types {
		ts := &g.types[ti]
		for slot := 1; slot <= g.cnt[ti] && slot <= len(ts.procIDs); slot++ {
			g.cycling(t0, ti, slot)
			if g.crashed[ti] {
				continue
			}
			if (s+ts.phase[slot-1])%20 == 0 {
				g.runtime(t0+ts.msOff[slot-1], ti, slot, ramp)
			}
			if ti != g.web && (s+ts.phase[slot-1])%10 == 5 {
				b := append(g.buf[:0], "source="...)
				b = append(b, ts.procIDs[slot-1]...)
				b = append(b, " sample#queue.depth="...)
				b = strconv.AppendInt(b, int64(poisson(r, 2+8*f*f)), 10)
				b = append(b, " sample#queue.latency="...)
				b = strconv.AppendInt(b, int64(lognormal(r, 4.5, 0.6)), 10)
				g.buf = append(b, "ms"...)
				g.out(t0+ts.msOff[slot-1]+3*msec, "app", ts.procIDs[slot-1], g.buf)
			}
		}
	}

	// Router requests.
	if g.web >= 0 && g.lambda > 0 {
		n := poisson(r, g.lambda)
		for i := 0; i < n; i++ {
			g.request(t0 + (int64(i)*sec+r.Int64N(sec))/int64(n))
		}
	}
	// Jobs on the worker type.
	if g.jobT >= 0 && g.jobRate > 0 && !g.crashed[g.jobT] && g.cnt[g.jobT] > 0 {
		n := poisson(r, g.jobRate)
		for i := 0; i < n; i++ {
			g.job(t0 + (int64(i)*sec+r.Int64N(sec))/int64(n))
		}
	}
}

// memRamp is how long memory climbs towards the quota before an R14
// episode: twice its length.
func memRamp(e *episode) int64 { return 2 * (e.end - e.start) }

// cycling emits the lines of dyno (ti, slot)'s daily restart that fall in
// the second starting at t0.
func (g *Generator) cycling(t0 int64, ti, slot int) {
	c := g.cycleAt(ti, slot, t0+sec-1)
	boot := g.bootTime(ti, slot, c)
	if t0 >= c+3*sec+boot+sec {
		return
	}
	if !g.dynoActive(ti, slot, c) {
		return
	}
	p := g.types[ti].procIDs[slot-1]
	seq := [...]struct {
		at  int64
		msg string
	}{
		{c, "Cycling"},
		{c + 5*msec, "State changed from up to starting"},
		{c + sec, "Stopping all processes with SIGTERM"},
		{c + 2*sec, "Process exited with status 143"},
		{c + 3*sec, ""},
		{c + 3*sec + boot, "State changed from starting to up"},
	}
	for _, l := range seq {
		if l.at < t0 || l.at >= t0+sec {
			continue
		}
		b := g.buf[:0]
		if l.msg == "" {
			b = append(b, "Starting process with command `"...)
			b = append(b, g.types[ti].spec.Command...)
			b = append(b, '`')
		} else {
			b = append(b, l.msg...)
		}
		g.buf = b
		g.out(l.at, "heroku", p, b)
	}
}

// runtime emits the load and memory samples of dyno (ti, slot) at t.
func (g *Generator) runtime(t int64, ti, slot int, ramp *episode) {
	r := g.r
	ts := &g.types[ti]
	p := ts.procIDs[slot-1]
	last := g.lastRestart(ti, slot, t)
	age := float64(t-last) / float64(day)

	// Load: roughly the dyno's concurrency.
	var conc float64
	if ti == g.web {
		conc = g.lambda / float64(max(g.cnt[ti], 1)) * g.app.MedianMS / 1000 * 1.6
		if g.timeouts {
			conc *= 4
		}
	} else {
		conc = g.jobRate / float64(max(g.cnt[ti], 1)) * 0.25
	}
	l1 := max(0, conc*(1+0.3*r.NormFloat64())+0.02)
	l5 := max(0, conc*(1+0.1*r.NormFloat64())+0.02)
	l15 := max(0, conc*(1+0.04*r.NormFloat64())+0.02)

	// Memory: grows with uptime, reset by restarts.
	quota := ts.spec.QuotaMB
	frac := min(ts.spec.MemBase+ts.spec.MemGrowth*age, 0.96) * (1 + 0.01*r.NormFloat64())
	over := g.mem != nil && g.mem.typ == ti && g.mem.slot == slot
	if ramp != nil && ramp.typ == ti && ramp.slot == slot {
		d := memRamp(ramp)
		k := float64(t-(ramp.start-d)) / float64(d)
		frac += (0.97 - frac) * k
	}
	total := quota * frac
	rss, swap := total, 0.0
	if over {
		k := float64(t-g.mem.start) / float64(g.mem.end-g.mem.start)
		total = quota * (1.02 + 0.08*k + 0.005*r.NormFloat64())
		rss = quota * 0.995
		swap = total - rss
	}
	cache := total * (0.02 + 0.01*r.Float64())
	pgin := 40000 + int64(age*86400*35) + int64(g.key%10000)
	pgout := max(0, pgin-int64(rss*256))

	var id [2]uint64
	id[0], id[1] = hash(g.key, 0xd1, uint64(ti), uint64(slot), uint64(last)), hash(g.key, 0xd2, uint64(last))
	b := g.header(p, id)
	b = append(b, " sample#load_avg_1m="...)
	b = appendFixed2(b, l1)
	b = append(b, " sample#load_avg_5m="...)
	b = appendFixed2(b, l5)
	b = append(b, " sample#load_avg_15m="...)
	b = appendFixed2(b, l15)
	g.buf = b
	g.out(t, "heroku", p, b)

	b = g.header(p, id)
	b = append(b, " sample#memory_total="...)
	b = appendFixed2(b, total)
	b = append(b, "MB sample#memory_rss="...)
	b = appendFixed2(b, rss)
	b = append(b, "MB sample#memory_cache="...)
	b = appendFixed2(b, cache)
	b = append(b, "MB sample#memory_swap="...)
	b = appendFixed2(b, swap)
	b = append(b, "MB sample#memory_pgpgin="...)
	b = strconv.AppendInt(b, pgin, 10)
	b = append(b, "pages sample#memory_pgpgout="...)
	b = strconv.AppendInt(b, pgout, 10)
	b = append(b, "pages sample#memory_quota="...)
	b = appendFixed2(b, quota)
	g.buf = append(b, "MB"...)
	g.out(t+msec, "heroku", p, g.buf)

	if over {
		b = append(g.buf[:0], "Process running mem="...)
		b = strconv.AppendInt(b, int64(math.Round(total)), 10)
		b = append(b, "M("...)
		b = appendFixed1(b, total/quota*100)
		g.buf = append(b, "%)"...)
		g.out(t+2*msec, "heroku", p, g.buf)
		g.buf = append(g.buf[:0], "Error R14 (Memory quota exceeded)"...)
		g.out(t+3*msec, "heroku", p, g.buf)
	}
}

// header starts a runtime-metrics message: "source=web.1 dyno=heroku.N.UUID".
func (g *Generator) header(p string, id [2]uint64) []byte {
	b := append(g.buf[:0], "source="...)
	b = append(b, p...)
	b = append(b, " dyno=heroku."...)
	b = append(b, g.appNum...)
	b = append(b, '.')
	return appendUUID(b, id[0], id[1])
}
