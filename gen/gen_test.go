package gen

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/internal/benchmeter"
)

var (
	testTo   = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	testFrom = testTo.Add(-24 * time.Hour)
)

func digest(g *Generator, from, to time.Time) (string, int) {
	h := sha256.New()
	n := g.Generate(from, to, func(l *Line) {
		h.Write([]byte(l.String()))
		h.Write([]byte{'\n'})
	})
	return string(h.Sum(nil)), n
}

func TestDeterminism(t *testing.T) {
	fleet := DemoFleet(3, 7)
	from, to := testTo.Add(-2*time.Hour), testTo
	a, n := digest(NewGenerator(fleet[0], 7, from, to), from, to)
	b, m := digest(NewGenerator(fleet[0], 7, from, to), from, to)
	if a != b || n != m || n == 0 {
		t.Fatalf("same seed gave different lines (%d vs %d lines)", n, m)
	}
	c, _ := digest(NewGenerator(fleet[0], 8, from, to), from, to)
	if a == c {
		t.Fatal("different seeds gave the same lines")
	}
	// Cutting the window into chunks (at odd instants) changes nothing.
	g := NewGenerator(fleet[0], 7, from, to)
	var all, parts []string
	g.Generate(from, to, func(l *Line) { all = append(all, l.String()) })
	cuts := []time.Time{from, from.Add(17*time.Minute + 300*time.Millisecond), from.Add(time.Hour), to}
	for i := 0; i+1 < len(cuts); i++ {
		g.Generate(cuts[i], cuts[i+1], func(l *Line) { parts = append(parts, l.String()) })
	}
	// Within a second lines are unordered, so compare as multisets.
	slices.Sort(all)
	slices.Sort(parts)
	if !slices.Equal(all, parts) {
		t.Fatalf("chunked generation differs: %d vs %d lines", len(all), len(parts))
	}
	// Lines stay inside the requested range.
	for _, l := range g.Lines(from.Add(time.Minute), from.Add(2*time.Minute)) {
		if l.Time.Before(from.Add(time.Minute)) || !l.Time.Before(from.Add(2*time.Minute)) {
			t.Fatalf("line outside range: %s", l)
		}
	}
}

func TestDemoFleet(t *testing.T) {
	f := DemoFleet(1, 1)
	if len(f) != 3 || f[0].Name != "storefront" || f[1].Name != "api-gateway" || f[2].Name != "billing-worker" {
		t.Fatalf("demo apps: %+v", f)
	}
	big := DemoFleet(500, 42)
	if len(big) != 500 {
		t.Fatalf("%d apps", len(big))
	}
	if !slices.EqualFunc(big, DemoFleet(500, 42), func(a, b AppSpec) bool { return a.Name == b.Name && a.RPS == b.RPS }) {
		t.Fatal("DemoFleet is not deterministic")
	}
	valid := regexp.MustCompile(`^[a-z][a-z0-9-]{2,29}$`)
	seen := map[string]bool{}
	var rps float64
	for _, a := range big {
		if !valid.MatchString(a.Name) || seen[a.Name] {
			t.Errorf("bad or duplicate name %q", a.Name)
		}
		seen[a.Name] = true
		if _, ok := a.Type("web"); !ok {
			t.Errorf("%s has no web type", a.Name)
		}
		for _, ty := range a.Types {
			if ty.Dynos < 2 || ty.Dynos > 6 {
				t.Errorf("%s %s: %d dynos", a.Name, ty.Name, ty.Dynos)
			}
			if ty.QuotaMB <= 0 || ty.Size == "" || ty.Command == "" {
				t.Errorf("%s %s: incomplete %+v", a.Name, ty.Name, ty)
			}
		}
		if a.RPS < 0.5 || a.RPS > 20 || a.MedianMS < 20 || a.MedianMS > 250 {
			t.Errorf("%s: rps %v median %v", a.Name, a.RPS, a.MedianMS)
		}
		rps += a.RPS
	}
	demo := 0.0
	for _, a := range f {
		demo += a.RPS
		if len(a.Types) != 2 {
			t.Errorf("%s: %d types", a.Name, len(a.Types))
		}
	}
	if demo < 20 || demo > 100 {
		t.Errorf("demo fleet makes %v req/s", demo)
	}
	if s := ScaleRPS(f, 2); s[0].RPS != 2*f[0].RPS || f[0].RPS != 12 {
		t.Error("ScaleRPS")
	}
}

// fields splits a logfmt-ish message into keys and values, honouring
// double quotes.
func fields(msg string) (keys []string, vals map[string]string, ok bool) {
	vals = map[string]string{}
	for len(msg) > 0 {
		eq := strings.IndexByte(msg, '=')
		sp := strings.IndexByte(msg, ' ')
		if eq < 0 || (sp >= 0 && sp < eq) {
			return nil, nil, false
		}
		k := msg[:eq]
		msg = msg[eq+1:]
		var v string
		if strings.HasPrefix(msg, `"`) {
			end := strings.IndexByte(msg[1:], '"')
			if end < 0 {
				return nil, nil, false
			}
			v = msg[:end+2]
			msg = msg[end+2:]
		} else if sp := strings.IndexByte(msg, ' '); sp >= 0 {
			v, msg = msg[:sp], msg[sp:]
		} else {
			v, msg = msg, ""
		}
		if msg != "" {
			if msg[0] != ' ' {
				return nil, nil, false
			}
			msg = msg[1:]
		}
		if _, dup := vals[k]; dup {
			return nil, nil, false
		}
		keys = append(keys, k)
		vals[k] = v
	}
	return keys, vals, true
}

var (
	reUUID    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	reIP      = regexp.MustCompile(`^"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"$`)
	reMS      = regexp.MustCompile(`^\d+ms$`)
	reMB      = regexp.MustCompile(`^\d+\.\d\dMB$`)
	rePages   = regexp.MustCompile(`^\d+pages$`)
	reLoad    = regexp.MustCompile(`^\d+\.\d\d$`)
	reDynoID  = regexp.MustCompile(`^heroku\.\d{7}\.[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	reProc    = regexp.MustCompile(`^(web|worker)\.[1-7]$`)
	routerKey = []string{"method", "path", "host", "request_id", "fwd", "dyno", "connect", "service", "status", "bytes", "protocol"}
)

func checkRouter(t *testing.T, app AppSpec, l Line) (status int, code string) {
	t.Helper()
	keys, v, ok := fields(string(l.Msg))
	if !ok {
		t.Fatalf("router line does not split into key=value: %s", l)
	}
	want := append([]string{"at"}, routerKey...)
	if v["at"] == "error" {
		want = append([]string{"at", "code", "desc"}, routerKey...)
		code = v["code"]
		if !regexp.MustCompile(`^H\d\d$`).MatchString(code) || !strings.HasPrefix(v["desc"], `"`) {
			t.Fatalf("bad code/desc: %s", l)
		}
	} else if v["at"] != "info" {
		t.Fatalf("at=%q: %s", v["at"], l)
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v: %s", keys, want, l)
	}
	status, err := strconv.Atoi(v["status"])
	if err != nil || status < 200 || status > 599 {
		t.Fatalf("status: %s", l)
	}
	if v["host"] != app.Name+".herokuapp.com" || !reUUID.MatchString(v["request_id"]) || !reIP.MatchString(v["fwd"]) {
		t.Fatalf("host/request_id/fwd: %s", l)
	}
	if v["protocol"] != "https" && v["protocol"] != "http" {
		t.Fatalf("protocol: %s", l)
	}
	if code == "H10" {
		if v["dyno"] != "" || v["connect"] != "" || v["service"] != "" || v["bytes"] != "" || status != 503 {
			t.Fatalf("H10 should have empty dyno/connect/service/bytes: %s", l)
		}
		return
	}
	web, _ := app.Type("web")
	if !strings.HasPrefix(v["dyno"], "web.") {
		t.Fatalf("dyno: %s", l)
	}
	if n, err := strconv.Atoi(v["dyno"][4:]); err != nil || n < 1 || n > web.Dynos+1 {
		t.Fatalf("dyno number: %s", l)
	}
	if !reMS.MatchString(v["connect"]) || !reMS.MatchString(v["service"]) {
		t.Fatalf("connect/service: %s", l)
	}
	if v["bytes"] != "" || code != "H27" {
		if _, err := strconv.Atoi(v["bytes"]); err != nil {
			t.Fatalf("bytes: %s", l)
		}
	}
	if code == "H12" && (v["service"] != "30000ms" || status != 503) {
		t.Fatalf("H12: %s", l)
	}
	if !strings.HasPrefix(v["path"], "/") {
		t.Fatalf("path: %s", l)
	}
	return status, code
}

func checkRuntime(t *testing.T, l Line) {
	t.Helper()
	keys, v, ok := fields(string(l.Msg))
	if !ok || v["source"] != l.ProcID || !reDynoID.MatchString(v["dyno"]) {
		t.Fatalf("runtime line: %s", l)
	}
	if keys[2] == "sample#load_avg_1m" {
		if !slices.Equal(keys, []string{"source", "dyno", "sample#load_avg_1m", "sample#load_avg_5m", "sample#load_avg_15m"}) {
			t.Fatalf("load keys %v: %s", keys, l)
		}
		for _, k := range keys[2:] {
			if !reLoad.MatchString(v[k]) {
				t.Fatalf("%s: %s", k, l)
			}
		}
		return
	}
	want := []string{"source", "dyno", "sample#memory_total", "sample#memory_rss", "sample#memory_cache", "sample#memory_swap", "sample#memory_pgpgin", "sample#memory_pgpgout", "sample#memory_quota"}
	if !slices.Equal(keys, want) {
		t.Fatalf("memory keys %v: %s", keys, l)
	}
	for _, k := range want[2:] {
		re := reMB
		if strings.HasSuffix(k, "pages") || strings.Contains(k, "pgpg") {
			re = rePages
		}
		if !re.MatchString(v[k]) {
			t.Fatalf("%s=%q: %s", k, v[k], l)
		}
	}
}

func mb(s string) float64 {
	f, _ := strconv.ParseFloat(strings.TrimSuffix(s, "MB"), 64)
	return f
}

func isRuntime(l Line) bool {
	return l.AppName == "heroku" && bytes.HasPrefix(l.Msg, []byte("source="))
}

// TestLineFormats checks every line of a day of each demo app.
func TestLineFormats(t *testing.T) {
	if testing.Short() {
		t.Skip("generates three app-days")
	}
	for _, app := range DemoFleet(3, 3) {
		g := NewGenerator(app, 3, testFrom, testTo)
		counts := map[string]int{}
		statuses := map[int]int{}
		var router int
		g.Generate(testFrom, testTo, func(lp *Line) {
			l := *lp
			switch {
			case l.AppName == "heroku" && l.ProcID == "router":
				router++
				// Full check of every error line and every 8th other line
				// (the regexps dominate the test's run time).
				if router%8 == 0 || bytes.HasPrefix(l.Msg, []byte("at=error")) {
					st, code := checkRouter(t, app, l)
					statuses[st]++
					counts["router "+code]++
					return
				}
				i := bytes.Index(l.Msg, []byte(" status="))
				st, _ := strconv.Atoi(string(l.Msg[i+8 : i+11]))
				statuses[st]++
			case isRuntime(l):
				checkRuntime(t, l)
				counts["runtime"]++
			case l.AppName == "heroku" && reProc.MatchString(l.ProcID):
				counts["dyno"]++
			case l.AppName == "heroku" && l.ProcID == "logplex":
				if !regexp.MustCompile(`^Error L10 \(output buffer overflow\): \d+ messages dropped since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\.$`).Match(l.Msg) {
					t.Fatalf("L10 line: %s", l)
				}
				counts["logplex"]++
			case l.AppName == "app" && l.ProcID == "api":
				counts["api"]++
			case l.AppName == "app" && reProc.MatchString(l.ProcID):
				if bytes.Contains(l.Msg, []byte("#")) && !bytes.Contains(l.Msg, []byte("Job ID")) {
					counts["custom"]++
				} else {
					counts["output"]++
				}
			default:
				t.Fatalf("unexpected line %s", l)
			}
		})
		for _, k := range []string{"router ", "router H12", "router H10", "runtime", "dyno", "logplex", "api", "custom", "output"} {
			if counts[k] == 0 {
				t.Errorf("%s: no %q lines (%v)", app.Name, k, counts)
			}
		}
		share := func(st int) float64 { return float64(statuses[st]) / float64(router) }
		if share(200)+share(201)+share(204)+share(304)+share(301)+share(302) < 0.85 || share(404) < 0.01 || share(404) > 0.06 ||
			share(500) == 0 || share(500) > 0.01 {
			t.Errorf("%s: status mix %v of %d", app.Name, statuses, router)
		}
		// Router volume matches RPS (the daily curve averages out over 24 h).
		if want := app.RPS * 86400; math.Abs(float64(router)-want) > 0.03*want {
			t.Errorf("%s: %d router lines, want about %.0f", app.Name, router, want)
		}
		t.Logf("%s: %d router lines, %v", app.Name, router, counts)
	}
}

func TestLogNormalMedian(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ median, sigma float64 }{{85, 0.6}, {35, 0.45}, {140, 0.7}, {20, 1.2}} {
		xs := make([]float64, 200001)
		for i := range xs {
			xs[i] = lognormal(r, math.Log(c.median), c.sigma)
		}
		slices.Sort(xs)
		if got := xs[len(xs)/2]; math.Abs(got-c.median) > 0.02*c.median {
			t.Errorf("median %v sigma %v: sampled median %v", c.median, c.sigma, got)
		}
		// sigma: the 84th percentile is median·e^sigma.
		if got := math.Log(xs[len(xs)*8413/10000] / c.median); math.Abs(got-c.sigma) > 0.03*c.sigma {
			t.Errorf("sigma %v: estimated %v", c.sigma, got)
		}
	}
	// Through the router lines: successful requests outside episodes.
	app := DemoFleet(3, 1)[1]
	from, to := testTo.Add(-30*time.Minute), testTo.Add(6*time.Hour) // live: no episodes after `to`
	g := NewGenerator(app, 1, testFrom, testTo)
	var svc []float64
	g.Generate(from, to, func(l *Line) {
		if l.ProcID != "router" || !bytes.Contains(l.Msg, []byte(" status=200 ")) {
			return
		}
		_, v, _ := fields(string(l.Msg))
		ms, _ := strconv.Atoi(strings.TrimSuffix(v["service"], "ms"))
		svc = append(svc, float64(ms))
	})
	slices.Sort(svc)
	if got := svc[len(svc)/2]; len(svc) < 50000 || math.Abs(got-app.MedianMS) > 0.04*app.MedianMS {
		t.Errorf("router median %v over %d requests, want %v", got, len(svc), app.MedianMS)
	}
}

func findLines(ls []Line, proc, substr string) []Line {
	var out []Line
	for _, l := range ls {
		if (proc == "" || l.ProcID == proc) && strings.Contains(string(l.Msg), substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestEpisodesAtDocumentedTimes checks the 24 h schedule of the package
// documentation against Episodes and against the lines themselves.
func TestEpisodesAtDocumentedTimes(t *testing.T) {
	app := DemoFleet(3, 5)[1] // api-gateway: shift 7m, 4 web, 2 worker
	g := NewGenerator(app, 5, testFrom, testTo)
	base := testTo.Add(-app.EpisodeShift)
	want := map[EpisodeKind][]time.Duration{
		EpisodeDeploy:   {40 * time.Minute},
		EpisodeLogLoss:  {80 * time.Minute, 800 * time.Minute},
		EpisodeTimeouts: {150 * time.Minute},
		EpisodeMemory:   {4 * time.Hour},
		EpisodeCrash:    {6 * time.Hour},
		EpisodeScale:    {8 * time.Hour},
		EpisodeConfig:   {10 * time.Hour},
		EpisodeRestart:  {12 * time.Hour},
	}
	got := map[EpisodeKind][]time.Duration{}
	eps := map[EpisodeKind]Episode{}
	cycling := 0
	for _, e := range g.Episodes() {
		if e.Start.Before(testFrom) || !e.Start.Before(testTo) {
			t.Errorf("episode outside window: %+v", e)
		}
		if e.Kind == EpisodeCycling {
			cycling++
			continue
		}
		got[e.Kind] = append(got[e.Kind], base.Sub(e.Start))
		eps[e.Kind] = e
	}
	for k, offs := range want {
		slices.Sort(got[k])
		if !slices.Equal(got[k], offs) {
			t.Errorf("%v at %v before to−shift, want %v", k, got[k], offs)
		}
	}
	if cycling != 6 {
		t.Errorf("%d cyclings in 24 h, want one per dyno (6)", cycling)
	}

	lines := func(e Episode, before, after time.Duration) []Line {
		return g.Lines(e.Start.Add(-before), e.End.Add(after))
	}
	// Deploy: API lines at Start, then every dyno restarts.
	d := eps[EpisodeDeploy]
	ls := lines(d, 0, time.Second)
	if r := findLines(ls, "api", "Release v"); len(r) != 1 || !r[0].Time.Equal(d.Start) || !strings.Contains(d.Detail, strings.Fields(string(r[0].Msg))[1]) {
		t.Errorf("release line: %v (detail %q)", r, d.Detail)
	}
	if r := findLines(ls, "api", "Deploy "); len(r) != 1 || !strings.HasSuffix(string(r[0].Msg), "by user ops@example.com") {
		t.Errorf("deploy line: %v", r)
	}
	for _, msg := range []string{"Restarting", "State changed from up to starting", "Stopping all processes with SIGTERM",
		"Process exited with status 143", "Starting process with command `bin/api-server --port $PORT`", "State changed from starting to up"} {
		if n := len(findLines(ls, "", msg)); (msg == "Starting process with command `bin/api-server --port $PORT`" && n != 4) || n < 4 {
			t.Errorf("deploy: %d × %q", n, msg)
		}
	}
	// Timeouts: H12 only inside the episode, about TimeoutShare of requests.
	e := eps[EpisodeTimeouts]
	if e.End.Sub(e.Start) != 10*time.Minute {
		t.Errorf("timeouts last %v", e.End.Sub(e.Start))
	}
	ls = lines(e, 5*time.Minute, 5*time.Minute)
	var in, h12, outside int
	for _, l := range ls {
		if l.ProcID != "router" {
			continue
		}
		isH12 := bytes.Contains(l.Msg, []byte("code=H12"))
		if !l.Time.Before(e.Start) && l.Time.Before(e.End) {
			in++
			if isH12 {
				h12++
			}
		} else if isH12 {
			outside++
		}
	}
	if outside != 0 || math.Abs(float64(h12)/float64(in)-TimeoutShare) > 0.03 {
		t.Errorf("H12: %d of %d inside, %d outside", h12, in, outside)
	}
	// Memory: R14 every ~20 s on one dyno inside the episode only.
	e = eps[EpisodeMemory]
	ls = lines(e, 45*time.Minute, time.Minute)
	r14 := findLines(ls, "", "Error R14 (Memory quota exceeded)")
	if len(r14) < 40 || len(r14) > 46 {
		t.Errorf("%d R14 lines in 15 min", len(r14))
	}
	for _, l := range r14 {
		if l.ProcID != e.Dyno || l.Time.Before(e.Start) || !l.Time.Before(e.End) {
			t.Errorf("R14 line outside the episode: %s (%+v)", l, e)
		}
	}
	pr := findLines(ls, e.Dyno, "Process running mem=")
	if len(pr) != len(r14) || !regexp.MustCompile(`^Process running mem=\d+M\(1\d\d\.\d%\)$`).Match(pr[0].Msg) {
		t.Errorf("Process running lines: %d, first %v", len(pr), pr)
	}
	// Memory climbs before and drops after the restart at the end.
	var before, during, after []float64
	for _, l := range ls {
		if l.ProcID != e.Dyno || !bytes.Contains(l.Msg, []byte("memory_total")) {
			continue
		}
		_, v, _ := fields(string(l.Msg))
		frac := mb(v["sample#memory_total"]) / mb(v["sample#memory_quota"])
		switch {
		case l.Time.Before(e.Start.Add(-40 * time.Minute)):
			before = append(before, frac)
		case l.Time.Before(e.Start):
		case l.Time.Before(e.End):
			during = append(during, frac)
		default:
			after = append(after, frac)
		}
	}
	if len(before) == 0 || len(after) == 0 || before[0] > 0.9 || slices.Min(during) < 1.0 || after[len(after)-1] > before[0] {
		t.Errorf("memory fractions before %v during %v after %v", before, during, after)
	}
	// Crash: H10 only while crashed, no dyno serves requests.
	e = eps[EpisodeCrash]
	ls = lines(e, time.Minute, time.Minute)
	crashed := findLines(ls, "", "State changed from up to crashed")
	if len(crashed) != 4 || crashed[0].Time.Sub(e.Start).Abs() > time.Second {
		t.Errorf("crash lines: %v", crashed)
	}
	for _, l := range ls {
		if l.ProcID != "router" {
			continue
		}
		inside := !l.Time.Before(e.Start) && l.Time.Before(e.End)
		if inside != bytes.Contains(l.Msg, []byte("code=H10")) {
			t.Fatalf("router line %s inside=%v", l, inside)
		}
	}
	// Scale: up at Start, back at End; a fifth web dyno serves meanwhile.
	e = eps[EpisodeScale]
	ls = lines(e, 0, 5*time.Second)
	sc := findLines(ls, "api", "Scaled to ")
	if len(sc) != 2 || string(sc[0].Msg) != "Scaled to web@5:Standard-1X worker@2:Standard-1X by user ops@example.com" ||
		string(sc[1].Msg) != "Scaled to web@4:Standard-1X worker@2:Standard-1X by user ops@example.com" || !sc[1].Time.Equal(e.End) {
		t.Errorf("scale lines %v", sc)
	}
	if len(findLines(ls, "router", "dyno=web.5 ")) == 0 || len(findLines(g.Lines(e.End.Add(time.Minute), e.End.Add(10*time.Minute)), "router", "dyno=web.5 ")) != 0 {
		t.Error("web.5 should serve only while scaled")
	}
	// Config and restart.
	e = eps[EpisodeConfig]
	ls = lines(e, 0, time.Second)
	if len(findLines(ls, "api", " config vars by user ops@example.com")) != 1 || len(findLines(ls, "api", "Release v")) != 1 ||
		len(findLines(ls, "", "Restarting")) != 6 {
		t.Errorf("config episode lines wrong")
	}
	e = eps[EpisodeRestart]
	if n := len(findLines(lines(e, 0, time.Second), "", "Restarting")); n != 6 {
		t.Errorf("restart: %d Restarting lines", n)
	}
	// Log loss.
	e = eps[EpisodeLogLoss]
	if n := len(findLines(lines(e, 0, time.Second), "logplex", "Error L10")); n != 3 {
		t.Errorf("%d L10 lines", n)
	}
	// Cycling: at the listed time, followed by the restart sequence, and a
	// new dyno id afterwards.
	for _, c := range g.Episodes() {
		if c.Kind != EpisodeCycling {
			continue
		}
		ls := g.Lines(c.Start.Add(-time.Minute), c.End.Add(time.Minute))
		cy := findLines(ls, c.Dyno, "Cycling")
		if len(cy) != 1 || !cy[0].Time.Equal(c.Start) {
			t.Errorf("cycling %+v: %v", c, cy)
		}
		if n := len(findLines(ls, c.Dyno, "State changed from starting to up")); n != 1 {
			t.Errorf("cycling %s: %d up lines", c.Dyno, n)
		}
		var ids []string
		for _, l := range ls {
			if l.ProcID == c.Dyno && isRuntime(l) {
				_, v, _ := fields(string(l.Msg))
				if len(ids) == 0 || ids[len(ids)-1] != v["dyno"] {
					ids = append(ids, v["dyno"])
				}
			}
		}
		if len(ids) != 2 {
			t.Errorf("cycling %s: dyno ids %v, want one change", c.Dyno, ids)
		}
	}
}

// TestShortWindowScales checks that a short window holds the whole schedule
// scaled down.
func TestShortWindowScales(t *testing.T) {
	app := DemoFleet(3, 1)[0]
	to := testTo
	from := to.Add(-2 * time.Hour)
	g := NewGenerator(app, 1, from, to)
	kinds := map[EpisodeKind]int{}
	for _, e := range g.Episodes() {
		kinds[e.Kind]++
		if e.Kind == EpisodeDeploy {
			if want := to.Add(-40 * time.Minute / 12); !e.Start.Equal(want) {
				t.Errorf("deploy at %v, want %v", e.Start, want)
			}
		}
		if e.Kind == EpisodeTimeouts {
			if d := e.End.Sub(e.Start); d != 50*time.Second {
				t.Errorf("timeouts last %v, want 10m/12", d)
			}
		}
	}
	for k := EpisodeDeploy; k <= EpisodeRestart; k++ {
		if kinds[k] == 0 {
			t.Errorf("no %v episode in a 2 h window", k)
		}
	}
	ls := g.Lines(from, to)
	if len(findLines(ls, "router", "code=H12")) == 0 || len(findLines(ls, "", "Error R14")) == 0 ||
		len(findLines(ls, "router", "code=H10")) == 0 || len(findLines(ls, "api", "Deploy ")) != 1 {
		t.Error("episode lines missing from a short window")
	}
	// A week repeats the schedule daily.
	g = NewGenerator(app, 1, to.Add(-7*24*time.Hour), to)
	n := 0
	for _, e := range g.Episodes() {
		if e.Kind == EpisodeDeploy {
			n++
		}
	}
	if n != 7 {
		t.Errorf("%d deploys in a week", n)
	}
}

func TestNoWebApp(t *testing.T) {
	app := AppSpec{Name: "jobs-only", JobsPerSec: 2, Types: []TypeSpec{{Name: "worker", Dynos: 2, QuotaMB: 512}}}
	g := NewGenerator(app, 1, testFrom, testTo)
	ls := g.Lines(testTo.Add(-5*time.Hour), testTo)
	if len(ls) == 0 || len(findLines(ls, "router", "")) != 0 {
		t.Fatalf("%d lines, router lines present", len(ls))
	}
	for _, e := range g.Episodes() {
		if e.Kind == EpisodeTimeouts || e.Kind == EpisodeCrash {
			t.Errorf("web episode %v without web", e.Kind)
		}
	}
}

// BenchmarkGenerate measures generation alone: one demo app-hour per
// iteration (storefront, at its daily mean rate).
func BenchmarkGenerate(b *testing.B) {
	app := DemoFleet(3, 1)[0]
	g := NewGenerator(app, 1, testFrom, testTo)
	var lines, size int
	b.ReportAllocs()
	t := testFrom
	cpu0 := benchmeter.ProcessCPU()
	for b.Loop() {
		lines += g.Generate(t, t.Add(time.Hour), func(l *Line) { size += len(l.Msg) })
		t = t.Add(time.Hour)
		if !t.Before(testTo) {
			t = testFrom
		}
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(lines)/(benchmeter.ProcessCPU()-cpu0).Seconds(), "lines/cpu-s")
	b.ReportMetric(float64(size)/float64(lines), "bytes/line")
}

// TestAppendUUIDAndIPv4 checks the hand-written formatting against fmt
// and strconv: version and variant bits, every hex digit position, and
// every octet value in every position of an address.
func TestAppendUUIDAndIPv4(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		hi, lo := r.Uint64(), r.Uint64()
		vhi := hi&^0xf000 | 0x4000
		vlo := lo&^(0xc000<<48) | (0x8000 << 48)
		want := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", vhi>>32, vhi>>16&0xffff, vhi&0xffff, vlo>>48, vlo&(1<<48-1))
		if got := string(appendUUID([]byte("x"), hi, lo)); got != "x"+want {
			t.Fatalf("appendUUID(%#x, %#x) = %s, want x%s", hi, lo, got, want)
		}
	}
	for c := range 256 {
		for shift := 0; shift < 32; shift += 8 {
			v := uint32(0x0b0b0b0b)&^(0xff<<shift) | uint32(c)<<shift
			a := byte(v >> 24)
			if a == 0 || a == 10 || a == 127 || a >= 224 {
				a = 1 + a%200 + 23
			}
			want := strconv.Itoa(int(a)) + "." + strconv.Itoa(int(byte(v>>16))) + "." + strconv.Itoa(int(byte(v>>8))) + "." + strconv.Itoa(int(byte(v)))
			if got := string(appendIPv4(nil, v)); got != want {
				t.Fatalf("appendIPv4(%#x) = %s, want %s", v, got, want)
			}
		}
	}
}

// TestSeededOutputUnchanged pins the lines of the demo fleet for two hours
// of a day's window: the demo, the benchmarks and the tests built on them
// expect the same seed to give the same lines, so a faster generator must
// keep them byte for byte. Change the digests only when the traffic is
// meant to change.
func TestSeededOutputUnchanged(t *testing.T) {
	want := []string{
		"f67297959131b06e2d58cf68e10958f619613623add7a7e3cfecfe4d93857f21",
		"46e0d0b360015578f5c16fa5bc4a799a833ece48a0e8dff817097aaf5e67c6c4",
		"ba15aef0288b80418cfbb78507e9b8ec5a83a7b930100743e63fc17328691ebd",
	}
	from := testTo.Add(-2 * time.Hour)
	for i, app := range DemoFleet(3, 1) {
		d, n := digest(NewGenerator(app, 1, testFrom, testTo), from, testTo)
		if got := fmt.Sprintf("%x", d); got != want[i] {
			t.Errorf("%s: %d lines, digest %s, want %s", app.Name, n, got, want[i])
		}
	}
}
