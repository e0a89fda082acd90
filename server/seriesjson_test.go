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

// TestNumbersAsEncodingJSON pins the form of numbers in answers: the one
// encoding/json (and JavaScript) writes for a float64, plain decimals from
// 1e-6 up to 1e21 (22250782.72 bytes, not 2.225078272e+07), exponents
// only outside, integers without a fraction; NaN and ±Inf as null.
func TestNumbersAsEncodingJSON(t *testing.T) {
	for _, x := range []float64{0, 1, -1, 0.5, 41.2, 22250782.72, 1234567.5, 0.0001, 1e-5, 1e-6, 1e-7, 2.5e-7,
		123456789.125, 1e15, 1e15 + 0.5, 1e20, 1e21, 1.5e22, 1e300, -3.25e-9, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		want, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendNumber(nil, x); !bytes.Equal(got, want) {
			t.Errorf("appendNumber(%v) = %s, want %s", x, got, want)
		}
	}
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := string(appendNumber(nil, x)); got != "null" {
			t.Errorf("appendNumber(%v) = %s, want null", x, got)
		}
	}
}
