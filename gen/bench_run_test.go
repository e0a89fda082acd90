package gen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/drain"
)

// BenchmarkRunBackfill measures Run end to end (generation, framing, HTTP
// POSTs) against a server that discards the bodies: six demo-fleet hours
// per iteration.
func BenchmarkRunBackfill(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	fleet := DemoFleet(3, 1)
	m := map[string]Sender{}
	for _, a := range fleet {
		c, err := drain.NewClient(drain.Config{URL: strings.Replace(srv.URL, "http://", "http://u:p@", 1) + "/drains/" + a.Name})
		if err != nil {
			b.Fatal(err)
		}
		m[a.Name] = c
	}
	var lines int64
	t := testFrom
	for b.Loop() {
		p, err := Run(context.Background(), fleet, m, t, t.Add(benchWindow), Options{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		lines += p.Sent
		t = t.Add(benchWindow)
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}

// benchWindow is long enough that per-Run setup does not dominate.
const benchWindow = 6 * time.Hour
