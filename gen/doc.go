// Package gen produces realistic synthetic Heroku log traffic for the demo
// and the load generator: router request lines, runtime metrics, dyno
// lifecycle lines, platform API events, log-loss notices, l2met custom
// metrics and plain app output, in the formats of SPEC §1.3.
//
// Everything is deterministic from a seed: a Generator re-seeds a PCG
// source (math/rand/v2) for every second from (seed, app name, second), so
// the lines of a second do not depend on how a window is cut into chunks.
// No global random source is used.
//
// # Usage
//
//	fleet := gen.DemoFleet(3, seed)               // storefront, api-gateway, billing-worker
//	g := gen.NewGenerator(fleet[0], seed, from, to)
//	g.Generate(from, to, func(l *gen.Line) { ... }) // l.Msg valid during the call
//	g.Episodes()                                    // when each scenario happens
//
// Run backfills a whole fleet into drain clients as fast as the server
// accepts and can then follow real time.
//
// # Traffic
//
// Router requests per second are Poisson with mean AppSpec.RPS × a daily
// curve (peak 15:00 UTC, ×1.4; low 03:00 UTC, ×0.6), spread over the web
// dynos. Service times of successful requests are log-normal with median
// AppSpec.MedianMS and sigma AppSpec.Sigma (304 ×0.35, 404 ×0.4, 500 ×2.5).
// Statuses are mostly 200/201/204/302/304, with about 3% 404, 1% 301, 4%
// 422 on writes, 0.2–0.3% 500 and a rare H27 (499). Non-web types get no
// router lines; they write one line per job (Sidekiq or Celery style, 1%
// failures) at AppSpec.JobsPerSec, sometimes followed by
// "count#jobs.processed=1 measure#job.duration=…ms", and every 10 s per
// dyno "source=worker.N sample#queue.depth=… sample#queue.latency=…ms".
// Web dynos write a lograge-style request line for 15% of requests,
// "measure#db.query=…ms measure#db.rows=… count#cache.hits=…" for 4% and
// "count#signups=1" for 0.3%.
//
// Every dyno reports runtime metrics every 20 s (a load line and a memory
// line). Memory starts at MemBase × quota after a restart and grows by
// MemGrowth × quota per day of uptime, up to 96% of the quota; the dyno id
// in "dyno=heroku.N.UUID" changes on every restart.
//
// # Episodes
//
// Scenario episodes are placed relative to the END of the window [from,
// to) the Generator was created for, after moving them earlier by the app's
// EpisodeShift. The schedule repeats every 24 h (and a shift wraps
// around: what it pushes out of the window comes back a day later). For a
// window of 24 h they start at these times before `to − shift`:
//
//	−40m    deploy: app[api] "Release vN created by user U" and
//	        "Deploy SHA by user U"; 5 s later every dyno restarts, 2 s apart
//	        (Restarting, State changed from up to starting, Stopping all
//	        processes with SIGTERM, Process exited with status 143,
//	        Starting process with command `…`, State changed from starting
//	        to up 4–9 s after the start)
//	−1h20m  log loss: heroku[logplex] "Error L10 (output buffer overflow):
//	        N messages dropped since …" three times over 40 s
//	−2h30m  timeouts for 10m: 25% of requests are at=error code=H12
//	        desc="Request timeout" service=30000ms status=503, the rest are
//	        2.5× slower and web load is 4× higher
//	−4h     memory for 15m: worker.1 (web.1 if the app has no worker) is at
//	        102–110% of its quota, with swap; after each of its memory
//	        samples "Process running mem=…M(…%)" and "Error R14 (Memory
//	        quota exceeded)"; memory climbs towards the quota for 30m
//	        before; at the end the dyno is restarted
//	−6h     crash for 3m: every web dyno "Process exited with status 1" and
//	        "State changed from up to crashed"; meanwhile every request is
//	        at=error code=H10 desc="App crashed" with empty dyno, connect,
//	        service and bytes; then crashed → starting → up
//	−8h     scale for 1h: "Scaled to web@N+1:SIZE worker@M:SIZE by user U"
//	        and a new dyno starts (web@N−1 and one stops if N is 6); at
//	        the end it is scaled back
//	−10h    config: "Set NAME config vars by user U", a release, and every
//	        dyno restarts 2 s later
//	−12h    restart: every dyno restarts ("Restarting" …)
//	−13h20m log loss again
//
// Windows longer than 24 h repeat this schedule every 24 h back from `to`
// (as far as it fits after `from`). For a window shorter than 24 h, every
// offset and duration (and the shift) is multiplied by window/24h, so the
// same episodes appear in proportion; the restart sequences keep their
// real-time spacing. Episodes needing a web type are skipped for apps
// without one. Generator.Episodes returns the exact times.
//
// Independently of the window, each dyno cycles once a day at a fixed,
// dyno-specific time of day ("Cycling" followed by the restart sequence);
// these also appear in Episodes.
//
// Lines after `to` (live mode) carry on with traffic, runtime metrics and
// daily cycling; the episodes stay where the window put them.
package gen
