package server

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestSeriesBodyJSONAsMarshal checks seriesBody.appendJSON writes the
// bytes json.Marshal writes, for bodies with and without each optional
// field, gaps, awkward floats and keys that JSON escapes.
func TestSeriesBodyJSONAsMarshal(t *testing.T) {
	w := window{start: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), end: time.Date(2026, 11, 25, 11, 0, 0, 500, time.UTC), step: steps[0], n: 3}
	events := []eventJSON{{Time: "2026-11-25T10:00:00Z", Kind: "deploy", Detail: `v42 "<b>" & more`}}
	var noEvents []eventJSON
	bodies := []*seriesBody{
		newSeriesBody(w),
		{StartTime: "a", EndTime: "b", Step: "1m"},
		func() *seriesBody {
			b := newSeriesBody(w)
			b.Kind = "measure"
			b.Summary = &latencySummary{Requests: 7, P50: 1.5, P95: null, P99: number(math.Inf(1)), Max: 1e300}
			b.Events = &events
			b.Data["latency.ms.p50"] = values{1, math.NaN(), 2.5e-7}
			b.Data["<&>\u2028"] = values{}
			b.Data["a"] = values{math.Copysign(0, -1), 1e15, 123456789.125, math.Inf(-1)}
			return b
		}(),
		func() *seriesBody {
			b := newSeriesBody(w)
			b.Events = &noEvents
			b.Data["200"] = newValues(3)
			return b
		}(),
	}
	for i, b := range bodies {
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("body %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
