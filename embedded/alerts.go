package embedded

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drainpipe/drainpipe/autoscale"
	"github.com/drainpipe/drainpipe/monitor"
	"github.com/drainpipe/drainpipe/notify"
	"github.com/drainpipe/drainpipe/sqlite"
	"github.com/drainpipe/drainpipe/supervise"
)

// AlertsConfig configures monitors: their evaluation, where
// notifications go, and autoscaling.
type AlertsConfig struct {
	Evaluator    monitor.Config // Destinations, PublicURL and Scaler are filled in
	Destinations []notify.Destination
	Notify       notify.Config
	// Autoscale configures the autoscaler of scale monitors. Without a
	// Platform API key it runs in dry-run mode.
	Autoscale autoscale.Config
}

// alerts is the running monitor side of a node.
type alerts struct {
	eval   *monitor.Evaluator
	worker *notify.Worker
	api    *monitor.API
	scaler *autoscale.Scaler
}

// startAlerts builds the evaluator and the delivery worker and loads the
// monitors; the aggregator must not have started yet.
func startAlerts(ctx context.Context, cfg Config, st *sqlite.Store, log *slog.Logger, reg prometheus.Registerer, sup *supervise.Supervisor) (*alerts, error) {
	a := &alerts{worker: notify.NewWorker(cfg.Alerts.Notify, st, cfg.Alerts.Destinations, log, reg)}
	ecfg := cfg.Alerts.Evaluator
	ecfg.Destinations = a.worker.Destinations()
	if ecfg.PublicURL == "" {
		ecfg.PublicURL = cfg.PublicURL
	}
	ecfg.Delivered = a.worker.Wake
	if ecfg.OK == nil {
		ecfg.OK = func() { sup.OK("monitor-evaluator") }
	}
	acfg := cfg.Alerts.Autoscale
	if acfg.Platform == nil || acfg.Platform.Key == "" {
		acfg.DryRun = true
	}
	a.scaler = autoscale.New(acfg, st, log)
	ecfg.Scaler = a.scaler
	a.eval = monitor.NewEvaluator(ecfg, st, log)
	if err := a.eval.Load(ctx, st.Buckets); err != nil {
		return nil, err
	}
	a.api = &monitor.API{Store: st, Evaluator: a.eval, Log: log}
	for _, status := range []monitor.Status{monitor.StatusPending, monitor.StatusFiring} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "drainpipe_monitors", Help: "Monitors by evaluation status (pending, firing).", ConstLabels: prometheus.Labels{"status": string(status)},
		}, func() float64 { return float64(a.eval.CountStatus(status)) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drainpipe_platform_api_available", Help: "1 while the Heroku Platform API answers the autoscaler, 0 during an outage.",
	}, func() float64 {
		if a.scaler.Available() {
			return 1
		}
		return 0
	}))
	return a, nil
}

// appRoutes adds the monitor endpoints to the server's extra routes.
func (a *alerts) appRoutes(routes map[string]func(http.ResponseWriter, *http.Request, string)) map[string]func(http.ResponseWriter, *http.Request, string) {
	out := map[string]func(http.ResponseWriter, *http.Request, string){}
	for p, h := range routes {
		out[p] = h
	}
	for p, h := range a.api.Routes() {
		out[p] = h
	}
	out["GET /api/apps/{app}/autoscaling"] = a.scaler.HandleStatus
	return out
}

// run runs the evaluator and the delivery worker under the supervisor
// until ctx ends.
func (a *alerts) run(ctx context.Context, sup *supervise.Supervisor, nodeURL string) {
	a.eval.DefaultPublicURL(nodeURL)
	sup.Go(ctx, "monitor-evaluator", a.eval.Run)
	sup.Go(ctx, "notify", a.worker.Run)
	sup.Go(ctx, "autoscaler", a.scaler.Run)
}
