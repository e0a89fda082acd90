package monitor

import (
	"fmt"

	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
)

// minuteValue is what a monitor reads from one closed minute.
type minuteValue struct {
	value  float64
	has    bool // false: nothing to measure (no requests for LATENCY)
	breach bool
}

// measure computes m's value over one minute: b is the process type's
// bucket and appWide the app-wide one (log loss); either may be nil.
func measure(m *Monitor, b, appWide *metrics.Bucket) minuteValue {
	var v minuteValue
	switch m.Name {
	case Latency:
		if b != nil {
			v.value, v.has = b.Service().Quantile(0.95)
		}
	case ErrorRate:
		if b != nil && b.Requests > 0 {
			v.value, v.has = float64(b.Count5xx())/float64(b.Requests), true
		}
	case MemoryQuota:
		if b != nil {
			r14 := false
			for _, d := range b.Dynos {
				q := d.Gauges.Stat(logline.GaugeMemQuota).Max
				if total := d.Gauges.Stat(logline.GaugeMemTotal); q > 0 && total.Count > 0 {
					v.value = max(v.value, total.Max/q)
					v.has = true
				}
			}
			if b.RCodes().Get("R14") > 0 {
				r14, v.has = true, true
			}
			v.breach = r14
		}
	case RouterErrors:
		v.has = true
		if b != nil {
			if m.Code != "" {
				v.value = float64(b.HCodes().Get(m.Code))
			} else {
				v.value = float64(b.HCodes().Total())
			}
		}
	case LogLoss:
		v.has = true
		if appWide != nil {
			v.value = float64(appWide.LogLoss().Total())
		}
	}
	if v.has && m.Op.Breaches(v.value, m.Value) {
		v.breach = true
	}
	return v
}

// describe renders a minute's value and the threshold for people:
// "p95 812 ms (threshold ≥ 500 ms)".
func describe(m *Monitor, v float64) string {
	op := "≥"
	if m.Op == GreaterThan {
		op = ">"
	}
	switch m.Name {
	case Latency:
		return fmt.Sprintf("p95 %.0f ms (threshold %s %.0f ms)", v, op, m.Value)
	case ErrorRate:
		return fmt.Sprintf("5xx rate %.1f%% (threshold %s %.1f%%)", v*100, op, m.Value*100)
	case MemoryQuota:
		return fmt.Sprintf("memory %.0f%% of quota (threshold %s %.0f%% or any R14)", v*100, op, m.Value*100)
	case RouterErrors:
		code := "H-code errors"
		if m.Code != "" {
			code = m.Code + " errors"
		}
		return fmt.Sprintf("%.0f %s/min (threshold %s %.0f)", v, code, op, m.Value)
	default:
		return fmt.Sprintf("%.0f lines lost/min (threshold %s %.0f)", v, op, m.Value)
	}
}
