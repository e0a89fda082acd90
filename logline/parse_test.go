package logline

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/drainpipe/drainpipe/internal/benchmeter"
)

// Example lines from SPEC §1.
const (
	specRouter      = `at=info method=GET path=/ host=example.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.1 connect=1ms service=18ms status=200 bytes=13 protocol=https`
	specRouterError = `at=error code=H12 desc="Request timeout" method=GET path=/ host=example.herokuapp.com request_id=… fwd="204.204.204.204" dyno=web.1 connect=0ms service=30000ms status=503 bytes=0`
	specLoad        = `source=web.1 dyno=heroku.2808254.d97d0ea7-… sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99`
	specMemory      = `source=web.1 dyno=heroku.2808254.d97d0ea7-… sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB`
	specLogLoss     = `Error L10 (output buffer overflow): 1 messages dropped since 2015-05-09T20:19:03+00:00.`
	specCustom      = `count#signups=1 measure#db.query=200ms sample#queue.depth=99`
	// specFrame is the frame of SPEC §1.1: APP-NAME app, PROCID web.3.
	specFrame = `<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up`
)

var gaugeNames = [NumGauges]string{"load1m", "load5m", "load15m", "total", "rss", "cache", "swap", "quota"}
var dynoEventNames = []string{"none", "error", "crash", "state", "restart", "cycling", "stopping", "exit", "start", "memory"}
var apiEventNames = []string{"none", "release", "deploy", "scale", "config"}
var customKindNames = []string{"?", "count", "sample", "measure"}

func opt(has bool, v float64) string {
	if !has {
		return "-"
	}
	return fmt.Sprint(v)
}

// render shows the part of l that matches l.Kind.
func render(l *Line) string {
	var b strings.Builder
	switch l.Kind {
	case KindUnknown:
		b.WriteString("unknown")
	case KindRouter:
		r := &l.Router
		fmt.Fprintf(&b, "router at=%s code=%s dyno=%s pt=%s method=%s path=%s host=%s connect=%s service=%s status=%d bytes=%d",
			r.At, r.Code, r.Dyno, r.ProcessType, r.Method, r.Path, r.Host,
			opt(r.HasConnect, r.ConnectMS), opt(r.HasService, r.ServiceMS), r.Status, r.Bytes)
	case KindRuntime:
		r := &l.Runtime
		fmt.Fprintf(&b, "runtime source=%s pt=%s dyno=%s", r.Source, r.ProcessType, r.Dyno)
		for g := Gauge(0); g < NumGauges; g++ {
			if r.Has&(1<<g) != 0 {
				fmt.Fprintf(&b, " %s=%v", gaugeNames[g], r.Values[g])
			}
		}
	case KindDyno:
		d := &l.Dyno
		fmt.Fprintf(&b, "dyno source=%s pt=%s %s code=%s exit=%d", d.Source, d.ProcessType, dynoEventNames[d.Event], d.Code, d.ExitStatus)
	case KindAPI:
		fmt.Fprintf(&b, "api %s", apiEventNames[l.API.Event])
	case KindLogLoss:
		fmt.Fprintf(&b, "logloss %s dropped=%d", l.LogLoss.Code, l.LogLoss.Dropped)
	case KindCustom:
		fmt.Fprintf(&b, "custom source=%s dropped=%d", l.CustomSource, l.CustomDropped)
		for _, c := range l.Custom[:l.NumCustom] {
			fmt.Fprintf(&b, " %s:%s=%v%s", customKindNames[c.Kind], c.Name, c.Value, c.Unit)
		}
	}
	return b.String()
}

type parseCase struct {
	name, app, proc, msg string
	want                 string // render() of the result
	err                  string // Error.Reason, when Parse fails
}

func runCases(t *testing.T, cases []parseCase) {
	t.Helper()
	var l Line
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := Parse([]byte(tt.app), []byte(tt.proc), []byte(tt.msg), &l)
			if tt.err != "" {
				var e *Error
				if !errors.As(err, &e) || e.Reason != tt.err {
					t.Fatalf("err = %v, want Error %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got := render(&l); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			switch l.Kind {
			case KindDyno:
				if string(l.Dyno.Detail) != tt.msg {
					t.Errorf("Detail = %q", l.Dyno.Detail)
				}
			case KindAPI:
				if string(l.API.Detail) != tt.msg {
					t.Errorf("Detail = %q", l.API.Detail)
				}
			}
		})
	}
}

func TestParseRouter(t *testing.T) {
	runCases(t, []parseCase{
		{name: "spec info", app: "heroku", proc: "router", msg: specRouter,
			want: "router at=info code= dyno=web.1 pt=web method=GET path=/ host=example.herokuapp.com connect=1 service=18 status=200 bytes=13"},
		{name: "spec H12", app: "heroku", proc: "router", msg: specRouterError,
			want: "router at=error code=H12 dyno=web.1 pt=web method=GET path=/ host=example.herokuapp.com connect=0 service=30000 status=503 bytes=0"},
		{name: "H10 empty dyno and service", app: "heroku", proc: "router",
			msg:  `at=error code=H10 desc="App crashed" method=GET path="/favicon.ico" host=myapp.herokuapp.com request_id=2b4d fwd="1.2.3.4" dyno= connect= service= status=503 bytes= protocol=https`,
			want: "router at=error code=H10 dyno= pt=web method=GET path=/favicon.ico host=myapp.herokuapp.com connect=- service=- status=503 bytes=0"},
		{name: "H14 no dyno key", app: "heroku", proc: "router",
			msg:  `at=error code=H14 desc="No web processes running" method=GET path="/" host=x.herokuapp.com status=503 bytes=`,
			want: "router at=error code=H14 dyno= pt=web method=GET path=/ host=x.herokuapp.com connect=- service=- status=503 bytes=0"},
		{name: "at=error without status", app: "heroku", proc: "router",
			msg:  `at=error code=H99 desc="Platform error" method=GET path="/"`,
			want: "router at=error code=H99 dyno= pt=web method=GET path=/ host= connect=- service=- status=0 bytes=0"},
		{name: "at=error with empty status", app: "heroku", proc: "router",
			msg:  `at=error code=H13 desc="Connection closed without response" dyno=web.2 status= bytes=`,
			want: "router at=error code=H13 dyno=web.2 pt=web method= path= host= connect=- service=- status=0 bytes=0"},
		{name: "fractional ms", app: "heroku", proc: "router",
			msg:  `at=info method=POST path=/api dyno=web.3 connect=0.25ms service=18.5ms status=201 bytes=512`,
			want: "router at=info code= dyno=web.3 pt=web method=POST path=/api host= connect=0.25 service=18.5 status=201 bytes=512"},
		{name: "no unit and seconds", app: "heroku", proc: "router",
			msg:  `at=info method=GET path=/ dyno=web.1 connect=2 service=1.5s status=200 bytes=1`,
			want: "router at=info code= dyno=web.1 pt=web method=GET path=/ host= connect=2 service=1500 status=200 bytes=1"},
		{name: "quoted path with spaces and escapes", app: "heroku", proc: "router",
			msg:  `at=info method=GET path="/a b\"c d" host=h dyno=web.1 connect=1ms service=2ms status=404 bytes=9`,
			want: `router at=info code= dyno=web.1 pt=web method=GET path=/a b\"c d host=h connect=1 service=2 status=404 bytes=9`},
		{name: "unclosed quote runs to end", app: "heroku", proc: "router",
			msg:  `at=info method=GET status=200 path="/a b`,
			want: `router at=info code= dyno= pt=web method=GET path=/a b host= connect=- service=- status=200 bytes=0`},
		{name: "worker dyno and unknown keys", app: "heroku", proc: "router",
			msg:  `sock=client at=warning foo bar=baz code=H27 method=GET dyno=worker.3 tls=true tls_version=TLSv1.3 status=499 bytes=0 cause="client disconnect"`,
			want: "router at=warning code=H27 dyno=worker.3 pt=worker method=GET path= host= connect=- service=- status=499 bytes=0"},
		{name: "dyno without dot", app: "heroku", proc: "router",
			msg:  `at=info method=GET dyno=web status=200`,
			want: "router at=info code= dyno=web pt=web method=GET path= host= connect=- service=- status=200 bytes=0"},
		{name: "malformed dyno", app: "heroku", proc: "router",
			msg:  `at=info method=GET dyno=.1 status=200`,
			want: "router at=info code= dyno=.1 pt=web method=GET path= host= connect=- service=- status=200 bytes=0"},
		{name: "bad connect ignored", app: "heroku", proc: "router",
			msg:  `at=info method=GET dyno=web.1 connect=fast service=-3ms status=200`,
			want: "router at=info code= dyno=web.1 pt=web method=GET path= host= connect=- service=- status=200 bytes=0"},
		{name: "other router text", app: "heroku", proc: "router", msg: "hello there", want: "unknown"},
		{name: "empty router msg", app: "heroku", proc: "router", msg: "", want: "unknown"},

		{name: "non-numeric status", app: "heroku", proc: "router", msg: `at=info method=GET status=abc bytes=1`, err: "bad status"},
		{name: "huge status", app: "heroku", proc: "router", msg: `at=info method=GET status=99999`, err: "bad status"},
		{name: "status below 100", app: "heroku", proc: "router", msg: `at=info method=GET status=42`, err: "bad status"},
		{name: "at=info without status", app: "heroku", proc: "router", msg: `at=info method=GET path=/ dyno=web.1`, err: "missing status"},
		{name: "empty status at=info", app: "heroku", proc: "router", msg: `at=info method=GET status=`, err: "missing status"},

		// Only H10–H99 count as codes; the request still counts without one.
		{name: "H80", app: "heroku", proc: "router", msg: `at=error code=H80 desc="Maintenance mode" method=GET path=/ status=503`,
			want: "router at=error code=H80 dyno= pt=web method=GET path=/ host= connect=- service=- status=503 bytes=0"},
		{name: "three-digit H code dropped", app: "heroku", proc: "router", msg: `at=error code=H123 method=GET path=/ dyno=web.1 service=5ms status=503`,
			want: "router at=error code= dyno=web.1 pt=web method=GET path=/ host= connect=- service=5 status=503 bytes=0"},
		{name: "one-digit H code dropped", app: "heroku", proc: "router", msg: `at=error code=H1 method=GET status=503`,
			want: "router at=error code= dyno= pt=web method=GET path= host= connect=- service=- status=503 bytes=0"},
		{name: "H0x dropped", app: "heroku", proc: "router", msg: `at=error code=H05 method=GET status=503`,
			want: "router at=error code= dyno= pt=web method=GET path= host= connect=- service=- status=503 bytes=0"},
		{name: "hostile code dropped", app: "heroku", proc: "router", msg: `at=error code="H12; DROP TABLE" method=GET dyno=web.2 service=30000ms status=503`,
			want: "router at=error code= dyno=web.2 pt=web method=GET path= host= connect=- service=30000 status=503 bytes=0"},
		{name: "lowercase code dropped", app: "heroku", proc: "router", msg: `at=error code=h12 method=GET status=503`,
			want: "router at=error code= dyno= pt=web method=GET path= host= connect=- service=- status=503 bytes=0"},
		{name: "R code on router dropped", app: "heroku", proc: "router", msg: `at=error code=R14 method=GET status=503`,
			want: "router at=error code= dyno= pt=web method=GET path= host= connect=- service=- status=503 bytes=0"},
		{name: "bad code without status", app: "heroku", proc: "router", msg: `at=error code=X99 desc="?"`,
			want: "router at=error code= dyno= pt=web method= path= host= connect=- service=- status=0 bytes=0"},
	})
}

func TestParseRuntime(t *testing.T) {
	const mb = 1 << 20
	runCases(t, []parseCase{
		{name: "spec load", app: "heroku", proc: "web.1", msg: specLoad,
			want: "runtime source=web.1 pt=web dyno=heroku.2808254.d97d0ea7-… load1m=2.46 load5m=1.06 load15m=0.99"},
		{name: "spec memory", app: "heroku", proc: "web.1", msg: specMemory,
			want: fmt.Sprintf("runtime source=web.1 pt=web dyno=heroku.2808254.d97d0ea7-… total=%v rss=%v cache=0 swap=0 quota=%v",
				21.0*mb, 21.22*mb, 512.0*mb)},
		{name: "source fallback to procid", app: "heroku", proc: "worker.2", msg: "sample#load_avg_1m=0.5",
			want: "runtime source=worker.2 pt=worker dyno= load1m=0.5"},
		{name: "one-off dyno", app: "heroku", proc: "run.1234", msg: "source=run.1234 sample#memory_rss=1.5GB",
			want: fmt.Sprintf("runtime source=run.1234 pt=run dyno= rss=%v", 1.5*(1<<30))},
		{name: "scheduler", app: "heroku", proc: "scheduler.1", msg: "source=scheduler.1 sample#memory_total=2048kB sample#memory_swap=100KB",
			want: "runtime source=scheduler.1 pt=scheduler dyno= total=2.097152e+06 swap=102400"},
		{name: "bytes and no unit", app: "heroku", proc: "web.1", msg: "sample#memory_total=1000B sample#memory_rss=2000",
			want: "runtime source=web.1 pt=web dyno= total=1000 rss=2000"},
		{name: "unknown unit skipped", app: "heroku", proc: "web.1", msg: "source=web.1 sample#memory_rss=21pages sample#memory_total=1MB",
			want: fmt.Sprintf("runtime source=web.1 pt=web dyno= total=%v", 1.0*mb)},
		{name: "load with unit skipped", app: "heroku", proc: "web.1", msg: "sample#load_avg_1m=2ms sample#load_avg_5m=1",
			want: "runtime source=web.1 pt=web dyno= load5m=1"},
		{name: "only unknown samples", app: "heroku", proc: "web.1", msg: "source=web.1 sample#foo=1", want: "unknown"},
		{name: "no parsable sample", app: "heroku", proc: "web.1", msg: "source=web.1 sample#load_avg_1m=abc sample#memory_rss=", err: "no parsable sample"},
	})
}

func TestParseDyno(t *testing.T) {
	runCases(t, []parseCase{
		{name: "R14", app: "heroku", proc: "web.1", msg: "Error R14 (Memory quota exceeded)",
			want: "dyno source=web.1 pt=web error code=R14 exit=0"},
		{name: "R10", app: "heroku", proc: "web.1", msg: "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds of launch",
			want: "dyno source=web.1 pt=web error code=R10 exit=0"},
		{name: "R15 worker", app: "heroku", proc: "worker.2", msg: "Error R15 (Memory quota vastly exceeded)",
			want: "dyno source=worker.2 pt=worker error code=R15 exit=0"},
		{name: "bare R code", app: "heroku", proc: "web.1", msg: "Error R99",
			want: "dyno source=web.1 pt=web error code=R99 exit=0"},
		{name: "memory", app: "heroku", proc: "web.1", msg: "Process running mem=1028M(103.3%)",
			want: "dyno source=web.1 pt=web memory code= exit=0"},
		{name: "crash", app: "heroku", proc: "web.1", msg: "State changed from up to crashed",
			want: "dyno source=web.1 pt=web crash code= exit=0"},
		{name: "state up", app: "heroku", proc: "web.3", msg: "State changed from starting to up",
			want: "dyno source=web.3 pt=web state code= exit=0"},
		{name: "state from crashed", app: "heroku", proc: "web.1", msg: "State changed from crashed to starting",
			want: "dyno source=web.1 pt=web state code= exit=0"},
		{name: "restart", app: "heroku", proc: "web.1", msg: "Restarting",
			want: "dyno source=web.1 pt=web restart code= exit=0"},
		{name: "cycling", app: "heroku", proc: "web.1", msg: "Cycling",
			want: "dyno source=web.1 pt=web cycling code= exit=0"},
		{name: "stopping", app: "heroku", proc: "web.1", msg: "Stopping all processes with SIGTERM",
			want: "dyno source=web.1 pt=web stopping code= exit=0"},
		{name: "stopping SIGKILL", app: "heroku", proc: "web.1", msg: "Stopping remaining processes with SIGKILL",
			want: "dyno source=web.1 pt=web stopping code= exit=0"},
		{name: "exit 143", app: "heroku", proc: "web.1", msg: "Process exited with status 143",
			want: "dyno source=web.1 pt=web exit code= exit=143"},
		{name: "exit 0", app: "heroku", proc: "run.42", msg: "Process exited with status 0",
			want: "dyno source=run.42 pt=run exit code= exit=0"},
		{name: "start", app: "heroku", proc: "web.1", msg: "Starting process with command `bundle exec puma -C config/puma.rb`",
			want: "dyno source=web.1 pt=web start code= exit=0"},
		{name: "other heroku dyno text", app: "heroku", proc: "web.1", msg: "Idling", want: "unknown"},
		{name: "Error word", app: "heroku", proc: "web.1", msg: "Error Running things", want: "unknown"},
		{name: "odd procid", app: "heroku", proc: "!!", msg: "Restarting", want: "unknown"},
		{name: "bad exit status", app: "heroku", proc: "web.1", msg: "Process exited with status abc", err: "bad exit status"},

		// Only R10–R99 count as dyno error codes.
		{name: "R code with colon", app: "heroku", proc: "web.1", msg: "Error R12: Exit timeout",
			want: "dyno source=web.1 pt=web error code=R12 exit=0"},
		{name: "three-digit R code", app: "heroku", proc: "web.1", msg: "Error R140 (Memory quota exceeded)", want: "unknown"},
		{name: "one-digit R code", app: "heroku", proc: "web.1", msg: "Error R1 (x)", want: "unknown"},
		{name: "R0x code", app: "heroku", proc: "web.1", msg: "Error R05 (x)", want: "unknown"},
		{name: "R code run on", app: "heroku", proc: "web.1", msg: "Error R14x (x)", want: "unknown"},
		{name: "R without digits", app: "heroku", proc: "web.1", msg: "Error R", want: "unknown"},
	})
}

// The platform also writes lifecycle lines with APP-NAME app and the dyno
// as PROCID, as in SPEC §1.1's example frame.
func TestParseAppLifecycle(t *testing.T) {
	// The SPEC example, split as the syslog parser splits it.
	f := strings.SplitN(specFrame, " ", 7)
	if f[3] != "app" || f[4] != "web.3" || f[5] != "-" {
		t.Fatalf("spec frame split: %q", f)
	}
	runCases(t, []parseCase{
		{name: "spec frame", app: f[3], proc: f[4], msg: f[6], want: "dyno source=web.3 pt=web state code= exit=0"},
		{name: "crash", app: "app", proc: "worker.1", msg: "State changed from up to crashed",
			want: "dyno source=worker.1 pt=worker crash code= exit=0"},
		{name: "start", app: "app", proc: "web.1", msg: "Starting process with command `bin/rails server -p $PORT`",
			want: "dyno source=web.1 pt=web start code= exit=0"},
		{name: "exit", app: "app", proc: "web.1", msg: "Process exited with status 137",
			want: "dyno source=web.1 pt=web exit code= exit=137"},
		{name: "stopping", app: "app", proc: "web.2", msg: "Stopping all processes with SIGTERM",
			want: "dyno source=web.2 pt=web stopping code= exit=0"},
		{name: "restarting", app: "app", proc: "web.1", msg: "Restarting", want: "dyno source=web.1 pt=web restart code= exit=0"},
		{name: "cycling trailing newline", app: "app", proc: "web.1", msg: "Cycling\n", want: "dyno source=web.1 pt=web cycling code= exit=0"},
		{name: "R14", app: "app", proc: "web.1", msg: "Error R14 (Memory quota exceeded)", want: "dyno source=web.1 pt=web error code=R14 exit=0"},
		{name: "memory", app: "app", proc: "web.1", msg: "Process running mem=1028M(103.3%)", want: "dyno source=web.1 pt=web memory code= exit=0"},
		{name: "one-off", app: "app", proc: "run.1234", msg: "State changed from starting to up", want: "dyno source=run.1234 pt=run state code= exit=0"},
		{name: "underscored type", app: "app", proc: "urgent_worker.2", msg: "Restarting", want: "dyno source=urgent_worker.2 pt=urgent_worker restart code= exit=0"},

		// Not exact phrases: the app's own output.
		{name: "restarting something", app: "app", proc: "web.1", msg: "Restarting worker pool", want: "unknown"},
		{name: "cycling something", app: "app", proc: "web.1", msg: "Cycling through items", want: "unknown"},
		{name: "stopping something", app: "app", proc: "web.1", msg: "Stopping remaining processes with SIGKILL", want: "unknown"},
		{name: "error word", app: "app", proc: "web.1", msg: "Error Reading config", want: "unknown"},
		{name: "R code without paren", app: "app", proc: "web.1", msg: "Error R14 happened", want: "unknown"},
		{name: "bad exit status", app: "app", proc: "web.1", msg: "Process exited with status abc", want: "unknown"},
		{name: "lifecycle-ish with metrics", app: "app", proc: "web.1", msg: "Restarting count#restarts=1",
			want: "custom source= dropped=0 count:restarts=1"},
		// Not dyno PROCIDs.
		{name: "api procid", app: "app", proc: "api", msg: "Restarting", want: "unknown"},
		{name: "no dyno number", app: "app", proc: "web", msg: "Restarting", want: "unknown"},
		{name: "dot without digits", app: "app", proc: "web.x", msg: "Restarting", want: "unknown"},
		{name: "trailing dot", app: "app", proc: "web.", msg: "Restarting", want: "unknown"},
		{name: "digit first", app: "app", proc: "1web.1", msg: "Restarting", want: "unknown"},
		{name: "two dots", app: "app", proc: "web.1.2", msg: "Restarting", want: "unknown"},
		{name: "other app name", app: "shuttle", proc: "web.1", msg: "Restarting", want: "unknown"},
	})
}

func TestParseAPI(t *testing.T) {
	runCases(t, []parseCase{
		{name: "release", app: "app", proc: "api", msg: "Release v99 created by user foo@example.com", want: "api release"},
		{name: "deploy", app: "app", proc: "api", msg: "Deploy e6442b7c by user foo@example.com", want: "api deploy"},
		{name: "scale", app: "app", proc: "api", msg: "Scaled to web@2:Standard-1X worker@1:Standard-2X by user foo@example.com", want: "api scale"},
		{name: "set config", app: "app", proc: "api", msg: "Set FOO, BAR config vars by user foo@example.com", want: "api config"},
		{name: "remove config", app: "app", proc: "api", msg: "Remove FOO config vars by user foo@example.com", want: "api config"},
		{name: "other api", app: "app", proc: "api", msg: "Build started by user foo@example.com", want: "unknown"},
		{name: "set without config", app: "app", proc: "api", msg: "Set up the thing", want: "unknown"},
		{name: "api metrics are not custom", app: "app", proc: "api", msg: "count#x=1", want: "unknown"},
	})
}

func TestParseLogLoss(t *testing.T) {
	runCases(t, []parseCase{
		{name: "spec L10", app: "heroku", proc: "logplex", msg: specLogLoss, want: "logloss L10 dropped=1"},
		{name: "L10 many", app: "heroku", proc: "logplex", msg: "Error L10 (output buffer overflow): 500 messages dropped since 2015-05-09T20:19:03+00:00.", want: "logloss L10 dropped=500"},
		{name: "L11", app: "heroku", proc: "logplex", msg: "Error L11 (Tail buffer overflow) -> This tail session dropped 1101 messages since 2012-10-11T03:47:20+00:00.", want: "logloss L11 dropped=1101"},
		{name: "L12", app: "heroku", proc: "web.1", msg: "Error L12 (Local buffer overflow) -> The log runtime dropped 42 messages since 2012-10-11T03:47:20+00:00.", want: "logloss L12 dropped=42"},
		{name: "L15 no count", app: "heroku", proc: "logplex", msg: "Error L15 (tail buffer temporarily unavailable)", want: "logloss L15 dropped=1"},
		{name: "number not before messages", app: "heroku", proc: "logplex", msg: "Error L13 (Local delivery error) after 3 tries, v2 messages lost", want: "logloss L13 dropped=1"},
		{name: "other logplex text", app: "heroku", proc: "logplex", msg: "hello", want: "unknown"},

		// Only L10–L15.
		{name: "L16", app: "heroku", proc: "logplex", msg: "Error L16 (made up): 5 messages dropped", want: "unknown"},
		{name: "L1", app: "heroku", proc: "logplex", msg: "Error L1 (made up)", want: "unknown"},
		{name: "L100", app: "heroku", proc: "logplex", msg: "Error L100 (made up)", want: "unknown"},
		{name: "L10x", app: "heroku", proc: "logplex", msg: "Error L10x", want: "unknown"},
		{name: "L99 from a dyno", app: "heroku", proc: "web.1", msg: "Error L99 (made up)", want: "unknown"},
		{name: "bare L12", app: "heroku", proc: "web.1", msg: "Error L12", want: "logloss L12 dropped=1"},
	})
}

func TestParseCustom(t *testing.T) {
	var many []string
	for i := 0; i < MaxCustom+4; i++ {
		many = append(many, fmt.Sprintf("count#c%d=%d", i, i))
	}
	wantMany := "custom source= dropped=4"
	for i := 0; i < MaxCustom; i++ {
		wantMany += fmt.Sprintf(" count:c%d=%d", i, i)
	}
	runCases(t, []parseCase{
		{name: "spec", app: "app", proc: "web.1", msg: specCustom,
			want: "custom source= dropped=0 count:signups=1 measure:db.query=200ms sample:queue.depth=99"},
		{name: "with source and text", app: "app", proc: "worker.1", msg: "job done source=worker.1 measure#job.time=1.25s count#jobs=1",
			want: "custom source=worker.1 dropped=0 measure:job.time=1.25s count:jobs=1"},
		{name: "bad value skipped", app: "app", proc: "web.1", msg: "measure#x=abc count#y=2 sample#z=1.2.3 measure#w=5ms,",
			want: "custom source= dropped=0 count:y=2"},
		{name: "count without value", app: "app", proc: "web.1", msg: "count#hits count#misses=",
			want: "custom source= dropped=0 count:hits=1 count:misses=1"},
		{name: "measure without value skipped", app: "app", proc: "web.1", msg: "measure#x= sample#y", want: "unknown"},
		{name: "empty name skipped", app: "app", proc: "web.1", msg: "count#=1", want: "unknown"},
		{name: "quoted, negative, exponent, percent", app: "app", proc: "web.1", msg: `measure#a="12ms" sample#b=-3.5 sample#c=1.5e3 sample#d=99.5%`,
			want: "custom source= dropped=0 measure:a=12ms sample:b=-3.5 sample:c=1500 sample:d=99.5%"},
		{name: "too many", app: "app", proc: "web.1", msg: strings.Join(many, " "), want: wantMany},
		{name: "plain output", app: "app", proc: "web.1", msg: "Completed 200 OK in 12ms", want: "unknown"},
		{name: "hash but not a metric", app: "app", proc: "web.1", msg: "discount#5=3 item #4", want: "unknown"},
		{name: "heroku postgres add-on", app: "app", proc: "heroku-postgres",
			msg:  "source=DATABASE addon=postgresql-round-1234 sample#current_transaction=1873 sample#db_size=4567bytes sample#tables=12 sample#active-connections=3 sample#memory-total=15664128kB",
			want: "custom source=DATABASE dropped=0 sample:current_transaction=1873 sample:db_size=4567bytes sample:tables=12 sample:active-connections=3 sample:memory-total=1.5664128e+07kB"},
		{name: "log-shuttle app name", app: "token", proc: "shuttle", msg: "count#x=1", want: "custom source= dropped=0 count:x=1"},
		{name: "heroku-app-name sample on app", app: "app", proc: "web.1", msg: "sample#load_avg_1m=2", want: "custom source= dropped=0 sample:load_avg_1m=2"},
	})
}

func TestParseResetsLine(t *testing.T) {
	var many []string
	for i := 0; i < MaxCustom; i++ {
		many = append(many, fmt.Sprintf("measure#m%d=%dms", i, i))
	}
	var l Line
	if err := Parse([]byte("app"), []byte("web.1"), []byte("source=x "+strings.Join(many, " ")), &l); err != nil || l.NumCustom != MaxCustom {
		t.Fatalf("setup: %v %d", err, l.NumCustom)
	}
	_ = Parse([]byte("heroku"), []byte("router"), []byte(specRouter), &l)
	if l.NumCustom != 0 || l.CustomSource != nil || l.Custom[MaxCustom-1].Name != nil {
		t.Fatalf("custom part not reset: %+v", l.Custom[MaxCustom-1])
	}
	_ = Parse([]byte("heroku"), []byte("web.1"), []byte(specMemory), &l)
	if l.Router.Status != 0 || l.Router.Dyno != nil {
		t.Fatalf("router part not reset")
	}
	_ = Parse([]byte("app"), []byte("web.1"), []byte("hello"), &l)
	if l.Kind != KindUnknown || l.Runtime.Has != 0 {
		t.Fatalf("runtime part not reset")
	}
	// A garbage NumCustom does not make reset panic.
	l.NumCustom = 1 << 20
	_ = Parse([]byte("app"), []byte("web.1"), []byte("hello"), &l)
}

func TestParseAllocs(t *testing.T) {
	cases := [][3]string{
		{"heroku", "router", specRouter},
		{"heroku", "router", specRouterError},
		{"heroku", "router", "at=info method=GET status=abc"},
		{"heroku", "web.1", specLoad},
		{"heroku", "web.1", specMemory},
		{"heroku", "web.1", "source=web.1 sample#load_avg_1m=abc"},
		{"heroku", "web.1", "Error R14 (Memory quota exceeded)"},
		{"heroku", "web.1", "Process exited with status 143"},
		{"heroku", "logplex", specLogLoss},
		{"app", "api", "Release v99 created by user foo@example.com"},
		{"app", "web.1", specCustom + " source=web.1 measure#big=123456789012345678901234567890e-3ms sample#long=98282770073.45619"},
		{"app", "web.1", "Completed 200 OK in 12ms"},
		{"app", "web.3", "State changed from starting to up"},
		{"app", "web.1", "Stopping all processes with SIGTERM"},
		{"app", "web.1", "Restarting worker pool"},
		{"app", "web.1", "Process exited with status abc"},
		{"heroku", "router", `at=error code=H123 method=GET status=503`},
		{"heroku", "logplex", "Error L16 (made up)"},
	}
	var l Line
	for _, c := range cases {
		app, proc, msg := []byte(c[0]), []byte(c[1]), []byte(c[2])
		if a := testing.AllocsPerRun(100, func() { _ = Parse(app, proc, msg, &l) }); a != 0 {
			t.Errorf("%s[%s] %q: %v allocs", c[0], c[1], c[2], a)
		}
	}
}

var sink error

func benchParse(b *testing.B, app, proc, msg string, kind Kind) {
	a, p, m := []byte(app), []byte(proc), []byte(msg)
	var l Line
	if err := Parse(a, p, m, &l); err != nil || l.Kind != kind {
		b.Fatalf("kind %d, err %v", l.Kind, err)
	}
	b.SetBytes(int64(len(m)))
	meter := benchmeter.Start(b)
	for b.Loop() {
		sink = Parse(a, p, m, &l)
	}
	meter.Lines(1)
}

func BenchmarkParseRouter(b *testing.B) {
	benchParse(b, "heroku", "router", specRouter, KindRouter)
}

func BenchmarkParseRuntime(b *testing.B) {
	benchParse(b, "heroku", "web.1", specMemory, KindRuntime)
}

func BenchmarkParseCustom(b *testing.B) {
	benchParse(b, "app", "web.1", specCustom+" source=web.1", KindCustom)
}

func BenchmarkParseDyno(b *testing.B) {
	benchParse(b, "heroku", "web.1", "State changed from up to crashed", KindDyno)
}

func BenchmarkParseAppOutput(b *testing.B) {
	benchParse(b, "app", "web.1", `Completed 200 OK in 12ms (Views: 3.1ms | ActiveRecord: 2.2ms | Allocations: 1234)`, KindUnknown)
}

// TestLifecyclePhraseFirstByte checks isLifecyclePhrase's first-byte
// shortcut against the comparisons alone: every phrase, with trailing
// blanks, cut short at every length, with every first byte, and random
// app output.
func TestLifecyclePhraseFirstByte(t *testing.T) {
	phrases := []string{
		"State changed from up to crashed", "Starting process with command `x`",
		"Process exited with status 0", "Process running mem=1028M(103.3%)",
		"Error R14 (Memory quota exceeded)", "Error R99 (x)", "Error R10 (Boot timeout)",
		"Stopping all processes with SIGTERM", "Restarting", "Cycling", "Cycling \r\n\t",
		"Restarting worker pool", "Error Reading file", "GET / 200", "",
	}
	var msgs [][]byte
	for _, p := range phrases {
		for n := 0; n <= len(p); n++ {
			msgs = append(msgs, []byte(p[:n]))
			for c := range 256 { // every first byte
				if n > 0 {
					m := []byte(p[:n])
					m[0] = byte(c)
					msgs = append(msgs, m)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		m := make([]byte, rng.IntN(12))
		for i := range m {
			m[i] = "SPERCtate ro\n"[rng.IntN(13)]
		}
		msgs = append(msgs, m)
	}
	matched := 0
	for _, m := range msgs {
		want := lifecyclePrefixes(m)
		if got := isLifecyclePhrase(m); got != want {
			t.Fatalf("isLifecyclePhrase(%q) = %v, want %v", m, got, want)
		}
		if want {
			matched++
		}
	}
	if matched < len(phrases)-5 {
		t.Fatalf("only %d messages were phrases", matched)
	}
}
