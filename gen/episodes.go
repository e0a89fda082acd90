package gen

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// EpisodeKind names a scenario episode.
type EpisodeKind uint8

// Episode kinds.
const (
	EpisodeDeploy   EpisodeKind = iota + 1 // release + deploy lines, then every dyno restarts
	EpisodeLogLoss                         // heroku[logplex] Error L10 lines
	EpisodeTimeouts                        // H12 spike: a share of requests time out
	EpisodeMemory                          // one dyno over its memory quota: R14 lines
	EpisodeCrash                           // web dynos crash; requests get H10
	EpisodeScale                           // web scaled by one dyno, scaled back at End
	EpisodeConfig                          // config vars set, new release, every dyno restarts
	EpisodeRestart                         // every dyno restarted ("Restarting")
	EpisodeCycling                         // one dyno's daily restart ("Cycling")
)

var episodeNames = [...]string{
	EpisodeDeploy:   "deploy",
	EpisodeLogLoss:  "log-loss",
	EpisodeTimeouts: "timeouts",
	EpisodeMemory:   "memory",
	EpisodeCrash:    "crash",
	EpisodeScale:    "scale",
	EpisodeConfig:   "config",
	EpisodeRestart:  "restart",
	EpisodeCycling:  "cycling",
}

// String names the kind ("deploy", "timeouts", ...).
func (k EpisodeKind) String() string {
	if int(k) < len(episodeNames) && episodeNames[k] != "" {
		return episodeNames[k]
	}
	return "episode(" + strconv.Itoa(int(k)) + ")"
}

// Episode is one scenario event placed in the generator's window.
type Episode struct {
	Kind EpisodeKind
	// Start is when the first line of the episode is written. End is when
	// the condition ends: the spike, the crash (dynos back up), the
	// over-quota period (the dyno is then restarted), the scaled-out
	// period; for deploys, restarts and config changes the moment the last
	// dyno is up again; for cycling and log loss the last line.
	Start, End time.Time
	// Type and Dyno name the process type and dyno concerned, when it is
	// one ("web", "worker.1").
	Type, Dyno string
	// Detail is a short description: "v42 3f2a9c1" for a deploy,
	// "v43 LOG_LEVEL" for a config change, the new formation for a scale.
	Detail string
}

// The 24-hour schedule. Offsets are before the window's end (`to`), after
// subtracting the app's EpisodeShift; see the package documentation.
var schedule = []struct {
	kind     EpisodeKind
	off, dur time.Duration
}{
	{EpisodeDeploy, 40 * time.Minute, 0},
	{EpisodeLogLoss, 80 * time.Minute, 40 * time.Second},
	{EpisodeTimeouts, 150 * time.Minute, 10 * time.Minute},
	{EpisodeMemory, 4 * time.Hour, 15 * time.Minute},
	{EpisodeCrash, 6 * time.Hour, 3 * time.Minute},
	{EpisodeScale, 8 * time.Hour, time.Hour},
	{EpisodeConfig, 10 * time.Hour, 0},
	{EpisodeRestart, 12 * time.Hour, 0},
	{EpisodeLogLoss, 800 * time.Minute, 40 * time.Second},
}

// TimeoutShare is the share of requests that become H12 during a timeouts
// episode; the others are 2.5 times slower.
const TimeoutShare = 0.25

// episode is the internal form of an Episode.
type episode struct {
	kind       EpisodeKind
	start, end int64 // ns
	typ        int   // index into Generator.types; -1 for all
	slot       int   // 1-based dyno; 0 for all dynos of typ
	delta      int   // scale: +1 or -1
	detail     string
}

// event is one precomputed platform line (API, lifecycle, log loss).
type event struct {
	ns    int64
	app   bool // syslog APP-NAME "app" (else "heroku")
	proc  string
	msg   string
	order int // tie-break to keep insertion order
}

var configVars = []string{"FEATURE_CHECKOUT_V2", "STRIPE_API_VERSION", "RAILS_MAX_THREADS", "WEB_CONCURRENCY", "LOG_LEVEL", "SENTRY_DSN"}

const (
	sec  = int64(time.Second)
	day  = int64(24 * time.Hour)
	msec = int64(time.Millisecond)
)

// plan places the scenario episodes in [g.from, g.to) and precomputes their
// platform lines and the dyno restarts they cause.
func (g *Generator) plan() {
	L := g.to - g.from
	period := day
	scale := 1.0
	if L < day {
		period = L
		scale = float64(L) / float64(day)
	}
	sc := func(d time.Duration) int64 { return int64(float64(d) * scale) }
	shift := sc(g.app.EpisodeShift)
	webT := g.typeIndex("web")
	memT := g.typeIndex("worker")
	if memT < 0 {
		memT = webT
	}
	if memT < 0 && len(g.types) > 0 {
		memT = 0
	}
	scaleT := webT
	if scaleT < 0 && len(g.types) > 0 {
		scaleT = 0
	}
	// k = -1 lets a shift wrap around: episodes it pushes before the
	// window's start come back one period later, at the window's end.
	for k := int64(-1); L > 0 && k*period < L; k++ {
		base := g.to - k*period - shift
		for _, s := range schedule {
			e := episode{kind: s.kind, start: base - sc(s.off), typ: -1}
			e.end = e.start + sc(s.dur)
			if e.start < g.from || e.start >= g.to {
				continue
			}
			switch s.kind {
			case EpisodeTimeouts, EpisodeCrash:
				if webT < 0 || g.app.RPS <= 0 {
					continue
				}
				e.typ = webT
			case EpisodeMemory:
				if memT < 0 {
					continue
				}
				e.typ, e.slot = memT, 1
			case EpisodeScale:
				if scaleT < 0 {
					continue
				}
				e.typ = scaleT
				e.delta = 1
				if g.types[scaleT].spec.Dynos >= 6 {
					e.delta = -1
				}
			}
			g.eps = append(g.eps, e)
		}
	}
	sort.SliceStable(g.eps, func(i, j int) bool { return g.eps[i].start < g.eps[j].start })

	version := 20 + int(g.key%80)
	for i := range g.eps {
		e := &g.eps[i]
		h := hash(g.key, uint64(e.start))
		switch e.kind {
		case EpisodeDeploy:
			version++
			sha := string(appendHex(nil, h, 7))
			e.detail = "v" + strconv.Itoa(version) + " " + sha
			g.addEvent(e.start, true, "api", "Release v"+strconv.Itoa(version)+" created by user "+g.app.User)
			g.addEvent(e.start+200*msec, true, "api", "Deploy "+sha+" by user "+g.app.User)
			e.end = g.restartAll(e.start+5*sec, "Restarting")
		case EpisodeConfig:
			version++
			name := configVars[h%uint64(len(configVars))]
			e.detail = "v" + strconv.Itoa(version) + " " + name
			g.addEvent(e.start, true, "api", "Set "+name+" config vars by user "+g.app.User)
			g.addEvent(e.start+100*msec, true, "api", "Release v"+strconv.Itoa(version)+" created by user "+g.app.User)
			e.end = g.restartAll(e.start+2*sec, "Restarting")
		case EpisodeRestart:
			e.end = g.restartAll(e.start, "Restarting")
		case EpisodeLogLoss:
			total := 0
			for j := int64(0); j < 3; j++ {
				t := e.start + j*(e.end-e.start)/2
				n := 5 + int(hash(h, uint64(j))%200)
				total += n
				since := time.Unix(0, t-time.Minute.Nanoseconds()).UTC().Format("2006-01-02T15:04:05+00:00")
				g.addEvent(t, false, "logplex", "Error L10 (output buffer overflow): "+strconv.Itoa(n)+" messages dropped since "+since+".")
			}
			e.detail = strconv.Itoa(total) + " messages dropped"
		case EpisodeTimeouts:
			e.detail = strconv.Itoa(int(TimeoutShare*100)) + "% of requests H12"
		case EpisodeMemory:
			ts := &g.types[e.typ]
			e.detail = ts.procIDs[0] + " over " + strconv.FormatFloat(ts.spec.QuotaMB, 'f', 0, 64) + "MB quota"
			g.restartSeq(e.end, e.typ, 1, "Restarting")
		case EpisodeCrash:
			ts := &g.types[e.typ]
			n := g.dynoCount(e.typ, e.start)
			up := max(e.end-5*sec, e.start+2*sec)
			e.end = max(e.end, up+5*sec)
			for j := 1; j <= n; j++ {
				p := ts.procIDs[j-1]
				t := e.start + int64(j-1)*150*msec
				g.addEvent(t, false, p, "Process exited with status 1")
				g.addEvent(t+msec, false, p, "State changed from up to crashed")
				g.addEvent(up-sec, false, p, "State changed from crashed to starting")
				g.addEvent(up, false, p, "Starting process with command `"+ts.spec.Command+"`")
				g.addEvent(e.end, false, p, "State changed from starting to up")
				ts.restarts[j-1] = append(ts.restarts[j-1], up)
			}
			e.detail = strconv.Itoa(n) + " " + ts.spec.Name + " dynos crashed"
		case EpisodeScale:
			ts := &g.types[e.typ]
			n := ts.spec.Dynos
			e.detail = g.formation(e.typ, n+e.delta)
			g.addEvent(e.start, true, "api", "Scaled to "+e.detail+" by user "+g.app.User)
			g.addEvent(e.end, true, "api", "Scaled to "+g.formation(e.typ, n)+" by user "+g.app.User)
			if e.delta > 0 {
				g.startSeq(e.start+2*sec, e.typ, n+1)
				g.stopSeq(e.end+sec, e.typ, n+1)
			} else {
				g.stopSeq(e.start+sec, e.typ, n)
				g.startSeq(e.end+2*sec, e.typ, n)
			}
		}
	}
	sort.SliceStable(g.events, func(i, j int) bool {
		if g.events[i].ns != g.events[j].ns {
			return g.events[i].ns < g.events[j].ns
		}
		return g.events[i].order < g.events[j].order
	})
	for i := range g.types {
		for j := range g.types[i].restarts {
			r := g.types[i].restarts[j]
			sort.Slice(r, func(a, b int) bool { return r[a] < r[b] })
		}
	}
}

func (g *Generator) addEvent(ns int64, app bool, proc, msg string) {
	g.events = append(g.events, event{ns: ns, app: app, proc: proc, msg: msg, order: len(g.events)})
}

// formation renders "web@4:Standard-1X worker@2:Standard-1X" with type ti
// at n dynos.
func (g *Generator) formation(ti, n int) string {
	var b strings.Builder
	for i, t := range g.types {
		if i > 0 {
			b.WriteByte(' ')
		}
		c := t.spec.Dynos
		if i == ti {
			c = n
		}
		b.WriteString(t.spec.Name + "@" + strconv.Itoa(c) + ":" + t.spec.Size)
	}
	return b.String()
}

// restartAll restarts every dyno, two seconds apart, starting at t0, and
// returns when the last one is up.
func (g *Generator) restartAll(t0 int64, first string) int64 {
	end := t0
	k := int64(0)
	for ti := range g.types {
		n := g.dynoCount(ti, t0)
		for j := 1; j <= n; j++ {
			end = max(end, g.restartSeq(t0+k*2*sec, ti, j, first))
			k++
		}
	}
	return end
}

// bootTime is how long dyno slot of type ti takes to boot after t.
func (g *Generator) bootTime(ti, slot int, t int64) int64 {
	return (4 + int64(hash(g.key, uint64(ti), uint64(slot), uint64(t))%6)) * sec
}

// restartSeq adds the lifecycle lines of one dyno restart beginning at t0
// (first is "Restarting" or "Cycling"), records the restart, and returns
// the time the dyno is up.
func (g *Generator) restartSeq(t0 int64, ti, slot int, first string) int64 {
	ts := &g.types[ti]
	p := ts.procIDs[slot-1]
	up := t0 + 3*sec + g.bootTime(ti, slot, t0)
	g.addEvent(t0, false, p, first)
	g.addEvent(t0+5*msec, false, p, "State changed from up to starting")
	g.addEvent(t0+sec, false, p, "Stopping all processes with SIGTERM")
	g.addEvent(t0+2*sec, false, p, "Process exited with status 143")
	g.addEvent(t0+3*sec, false, p, "Starting process with command `"+ts.spec.Command+"`")
	g.addEvent(up, false, p, "State changed from starting to up")
	ts.restarts[slot-1] = append(ts.restarts[slot-1], t0+3*sec)
	return up
}

// startSeq adds the lines of a new dyno starting at t0.
func (g *Generator) startSeq(t0 int64, ti, slot int) {
	ts := &g.types[ti]
	p := ts.procIDs[slot-1]
	g.addEvent(t0, false, p, "Starting process with command `"+ts.spec.Command+"`")
	g.addEvent(t0+g.bootTime(ti, slot, t0), false, p, "State changed from starting to up")
	ts.restarts[slot-1] = append(ts.restarts[slot-1], t0)
}

// stopSeq adds the lines of a dyno stopped for good at t0.
func (g *Generator) stopSeq(t0 int64, ti, slot int) {
	p := g.types[ti].procIDs[slot-1]
	g.addEvent(t0, false, p, "State changed from up to down")
	g.addEvent(t0+sec, false, p, "Stopping all processes with SIGTERM")
	g.addEvent(t0+2*sec, false, p, "Process exited with status 143")
}

// dynoCount is how many dynos of type ti run at t (scaling included).
func (g *Generator) dynoCount(ti int, t int64) int {
	n := g.types[ti].spec.Dynos
	for i := range g.eps {
		e := &g.eps[i]
		if e.kind == EpisodeScale && e.typ == ti && e.start <= t && t < e.end {
			n += e.delta
		}
	}
	return n
}

// cycleAt returns the start of the daily cycling of dyno slot of type ti
// on or before t. Cycling is anchored to absolute time, not the window.
func (g *Generator) cycleAt(ti, slot int, t int64) int64 {
	phase := int64(hash(g.key, 0xc1c1e, uint64(ti), uint64(slot))%uint64(day/sec)) * sec
	c := floorDiv(t-phase, day)*day + phase
	return c
}

// lastRestart returns when dyno slot of type ti last (re)started at or
// before t: its latest restart from an episode or from daily cycling.
func (g *Generator) lastRestart(ti, slot int, t int64) int64 {
	last := g.cycleAt(ti, slot, t) + 3*sec
	if last > t {
		last -= day
	}
	if slot <= len(g.types[ti].restarts) {
		r := g.types[ti].restarts[slot-1]
		i := sort.Search(len(r), func(i int) bool { return r[i] > t })
		if i > 0 && r[i-1] > last {
			last = r[i-1]
		}
	}
	return last
}

// Episodes returns the episodes placed in the window, daily cycling
// included, ordered by start.
func (g *Generator) Episodes() []Episode {
	var out []Episode
	for _, e := range g.eps {
		ep := Episode{Kind: e.kind, Start: time.Unix(0, e.start).UTC(), End: time.Unix(0, e.end).UTC(), Detail: e.detail}
		if e.typ >= 0 {
			ep.Type = g.types[e.typ].spec.Name
			if e.slot > 0 {
				ep.Dyno = g.types[e.typ].procIDs[e.slot-1]
			}
		}
		out = append(out, ep)
	}
	for ti := range g.types {
		for slot := 1; slot <= g.types[ti].spec.Dynos; slot++ {
			for c := g.cycleAt(ti, slot, g.to-1); c >= g.from; c -= day {
				if c >= g.to || !g.dynoActive(ti, slot, c) {
					continue
				}
				p := g.types[ti].procIDs[slot-1]
				out = append(out, Episode{Kind: EpisodeCycling, Start: time.Unix(0, c).UTC(),
					End: time.Unix(0, c+3*sec+g.bootTime(ti, slot, c)).UTC(), Type: g.types[ti].spec.Name, Dyno: p, Detail: p})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// dynoActive reports whether dyno slot of type ti is running (up, not
// crashed, not scaled away) at t.
func (g *Generator) dynoActive(ti, slot int, t int64) bool {
	if slot > g.dynoCount(ti, t) {
		return false
	}
	for i := range g.eps {
		e := &g.eps[i]
		if e.kind == EpisodeCrash && e.typ == ti && e.start <= t && t < e.end {
			return false
		}
	}
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
