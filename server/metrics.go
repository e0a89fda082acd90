package server

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// serverMetrics are drainpipe's own counters, served at GET /metrics.
type serverMetrics struct {
	drainRequests   *prometheus.CounterVec
	drainLines      prometheus.Counter
	drainBytes      prometheus.Counter
	drainDuplicates prometheus.Counter
	drainBadFrames  *prometheus.CounterVec
	drainInFlight   prometheus.Gauge
	drainShed       *prometheus.CounterVec
	journalAppend   prometheus.Histogram
	apiRequests     *prometheus.CounterVec
	apiDuration     *prometheus.HistogramVec
	summaryDuration prometheus.Histogram
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	m := &serverMetrics{
		drainRequests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_drain_requests_total",
			Help: "Drain POSTs answered, by HTTP status code.",
		}, []string{"code"})),
		drainLines: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drainpipe_drain_lines_total",
			Help: "Frames (log lines) in drain batches appended to the journal, duplicates excluded.",
		})),
		drainBytes: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drainpipe_drain_bytes_total",
			Help: "Body bytes of drain batches appended to the journal, duplicates excluded.",
		})),
		drainDuplicates: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drainpipe_drain_duplicate_batches_total",
			Help: "Drain POSTs whose Logplex-Frame-Id was already journaled (Logplex retries); answered 200 and not counted again.",
		})),
		drainBadFrames: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_drain_frame_errors_total",
			Help: "Drain bodies whose framing broke, by reason; a body with no frame at all is answered 400, otherwise its framed head is kept.",
		}, []string{"reason"})),
		drainShed: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_drain_shed_total",
			Help: "Drain POSTs answered 503 + Retry-After so that the sender retries, by reason: concurrency (MaxConcurrentDrains in flight), journal (append failed or timed out), read (body not received in time).",
		}, []string{"reason"})),
		drainInFlight: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drainpipe_drain_in_flight",
			Help: "Drain POSTs being handled right now.",
		})),
		journalAppend: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "drainpipe_journal_append_seconds",
			Help:    "Latency of appending one drain batch to the journal.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		})),
		apiRequests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_api_requests_total",
			Help: "Query API requests, by route pattern and HTTP status code.",
		}, []string{"route", "code"})),
		apiDuration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drainpipe_api_request_seconds",
			Help:    "Query API latency, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"})),
		summaryDuration: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "drainpipe_fleet_summary_seconds",
			Help:    "Time to compute the fleet summary of GET /api/apps (cached for 5 s).",
			Buckets: prometheus.DefBuckets,
		})),
	}
	register(reg, collectors.NewGoCollector())
	register(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// register registers c with reg. When an equal collector is already
// registered (a second Server on the same registry), that one is returned
// so both servers count into it.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing
		}
	}
	// A conflicting registration is a programming error; the collector
	// still works, it is just not exported.
	return c
}
