package gen

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/logline"
)

// TestLinesParse feeds a scaled-down window holding every episode through
// the server's line parser and checks each line is classified as meant.
func TestLinesParse(t *testing.T) {
	for _, app := range DemoFleet(3, 4) {
		from, to := testTo.Add(-3*time.Hour), testTo
		g := NewGenerator(app, 4, from, to)
		var pl logline.Line
		kinds := map[logline.Kind]int{}
		events := map[logline.DynoEvent]int{}
		apis := map[logline.APIEvent]int{}
		var dropped int64
		g.Generate(from, to, func(l *Line) {
			if err := logline.Parse([]byte(l.AppName), []byte(l.ProcID), l.Msg, &pl); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			kinds[pl.Kind]++
			want := logline.KindUnknown
			switch {
			case l.ProcID == "router":
				want = logline.KindRouter
				r := pl.Router
				if r.Status < 200 || len(r.ProcessType) == 0 || string(r.ProcessType) != "web" {
					t.Fatalf("router fields %+v: %s", r, l)
				}
				if bytes.Contains(l.Msg, []byte("dyno=web.")) != (r.HasService && r.HasConnect) {
					t.Fatalf("service/connect presence: %s", l)
				}
				if r.HasService && !bytes.Contains(l.Msg, []byte("service="+strconv.Itoa(int(r.ServiceMS))+"ms")) {
					t.Fatalf("service %v: %s", r.ServiceMS, l)
				}
			case isRuntime(*l):
				want = logline.KindRuntime
				rt := pl.Runtime
				if string(rt.Source) != l.ProcID || len(rt.Dyno) == 0 {
					t.Fatalf("runtime fields: %s", l)
				}
				if bytes.Contains(l.Msg, []byte("memory_quota")) {
					q, _ := app.Type(string(rt.ProcessType))
					if rt.Values[logline.GaugeMemQuota] != q.QuotaMB*1048576 {
						t.Fatalf("quota %v bytes: %s", rt.Values[logline.GaugeMemQuota], l)
					}
				}
			case l.AppName == "heroku" && l.ProcID == "logplex":
				want = logline.KindLogLoss
				dropped += pl.LogLoss.Dropped
			case l.AppName == "heroku":
				want = logline.KindDyno
				events[pl.Dyno.Event]++
			case l.ProcID == "api":
				want = logline.KindAPI
				apis[pl.API.Event]++
			case bytes.Contains(l.Msg, []byte("#")) && !bytes.Contains(l.Msg, []byte("Job ID")):
				want = logline.KindCustom
				if pl.NumCustom == 0 {
					t.Fatalf("no custom metrics: %s", l)
				}
			}
			if pl.Kind != want {
				t.Fatalf("kind %v, want %v: %s", pl.Kind, want, l)
			}
		})
		for _, ev := range []logline.DynoEvent{logline.DynoError, logline.DynoCrash, logline.DynoState, logline.DynoRestart,
			logline.DynoStopping, logline.DynoExit, logline.DynoStart, logline.DynoMemory} {
			if events[ev] == 0 {
				t.Errorf("%s: no dyno event %d (%v)", app.Name, ev, events)
			}
		}
		for _, ev := range []logline.APIEvent{logline.APIRelease, logline.APIDeploy, logline.APIScale, logline.APIConfig} {
			if apis[ev] == 0 {
				t.Errorf("%s: no API event %d", app.Name, ev)
			}
		}
		if dropped == 0 || kinds[logline.KindCustom] == 0 || kinds[logline.KindUnknown] == 0 {
			t.Errorf("%s: kinds %v, dropped %d", app.Name, kinds, dropped)
		}
	}
}
