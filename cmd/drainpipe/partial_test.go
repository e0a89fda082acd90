package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/gen"
	"github.com/drainpipe/drainpipe/server"
)

// number matches a number in a JSON array.
var number = regexp.MustCompile(`[\[,]-?[0-9]`)

// wholeStore hides the store's BucketParts, so a server over it decodes
// every bucket whole.
type wholeStore struct{ server.Store }

// TestSelectiveDecodeAnswersSame imports six hours of the demo fleet and
// asks every series endpoint, for every app, process type, dyno and
// custom metric, at three steps, of a server that decodes only the parts
// each endpoint reads (with and without the query cache, which shares
// groups of parts) and of one that decodes whole buckets: the answers
// must be byte for byte the same.
func TestSelectiveDecodeAnswersSame(t *testing.T) {
	ctx := context.Background()
	st := openHistoryStore(t)
	fleet := gen.DemoFleet(3, 1)
	to := time.Now().UTC().Truncate(time.Minute)
	from := to.Add(-6 * time.Hour)
	for _, a := range fleet {
		if _, _, err := st.CreateApp(ctx, a.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := importHistory(ctx, st, fleet, 1, from, to, 3*24*time.Hour, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := server.Store(st).(server.PartStore); !ok {
		t.Fatal("sqlite.Store does not decode selectively")
	}
	now := func() time.Time { return to }
	partial := server.New(server.Config{AdminToken: "t", Now: now}, nil, st, nil, nil).Handler()
	cached := server.New(server.Config{AdminToken: "t", Now: now, QueryCacheTTL: time.Minute}, nil, st, nil, nil).Handler()
	whole := server.New(server.Config{AdminToken: "t", Now: now}, nil, wholeStore{st}, nil, nil).Handler()
	get := func(h http.Handler, path string) string { return apiGet(t, h, path) }
	paths := seriesPaths(t, st, fleet, from, to)
	var data int
	for _, p := range paths {
		want := get(whole, p)
		for _, got := range []string{get(partial, p), get(cached, p)} {
			if got == want {
				continue
			}
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			lo := max(0, i-300)
			t.Fatalf("%s differs at byte %d:\nselective …%.400s\nwhole     …%.400s", p, i, got[lo:], want[lo:])
		}
		if i := strings.Index(want, `"data"`); i >= 0 && number.MatchString(want[i:]) {
			data++
		}
	}
	if data < len(paths)/2 {
		t.Fatalf("only %d of %d answers hold data", data, len(paths))
	}
	t.Logf("%d answers compared", len(paths))
}

// apiGet asks h for path with the admin token "t" and returns the body of
// its 200 answer.
func apiGet(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer t")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", path, w.Code, w.Body)
	}
	return w.Body.String()
}

// seriesPaths lists the API's series endpoints for every app of fleet in
// st, every process type, dyno and custom metric, at three steps over
// [from, to), and the app list.
func seriesPaths(t *testing.T, st server.Store, fleet []gen.AppSpec, from, to time.Time) []string {
	t.Helper()
	ctx := context.Background()
	var paths []string
	for _, a := range fleet {
		form, err := st.Formation(ctx, a.Name)
		if err != nil {
			t.Fatal(err)
		}
		customs, err := st.CustomMetrics(ctx, a.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(form) == 0 || len(customs) == 0 {
			t.Fatalf("%s: formation %v, custom metrics %v: the demo should have both", a.Name, form, customs)
		}
		base := "/api/apps/" + a.Name
		var series []string
		for _, p := range []string{"/router-metrics/latency", "/router-metrics/status", "/router-metrics/errors", "/log-loss"} {
			series = append(series, base+p+"?", base+p+"?process_type=worker&")
		}
		for _, pt := range form {
			for _, m := range []string{"memory", "load", "errors"} {
				p := base + "/formation/" + pt.Name + "/metrics/" + m + "?"
				series = append(series, p)
				for _, d := range pt.Dynos {
					series = append(series, p+"dyno="+url.QueryEscape(d)+"&")
				}
			}
		}
		for _, c := range customs {
			series = append(series, base+"/custom-metrics/"+c.Name+"?kind="+c.Kind+"&")
		}
		for _, s := range series {
			for _, step := range []string{"1m", "10m", "1h", "2h"} {
				paths = append(paths, fmt.Sprintf("%sstep=%s&start_time=%s&end_time=%s", s, step,
					from.Format(time.RFC3339), to.Format(time.RFC3339)))
			}
		}
	}
	paths = append(paths, "/api/apps")
	return paths
}
