#!/usr/bin/env bash
# Memory, flushes and freshness of a server while 10,000 apps send traffic
# (2 minutes of backfill, then 150 s live): RSS, Go heap in use, flushes,
# time spent flushing, the journal backlog, the server's CPU time and the
# machine's load, sampled every 10 s; the loadgen's freshness probe (a
# line every 5 s, timed from its 2xx until the API counts it); and the
# flush-duration histogram at the end.
# Usage: scripts/bench/rss.sh BIN OUTDIR   (see docs/BENCHMARKS.md)
# LOADGEN=BIN2 runs the loadgen of another binary (one with --freshness)
# against BIN's server; APPS=N changes the number of apps; SERVE_ARGS adds
# flags to serve (e.g. "--cpuprofile FILE").
set -u
bin=${1:?usage: rss.sh BIN OUTDIR} out=${2:?usage: rss.sh BIN OUTDIR}
loadgen=${LOADGEN:-$bin} apps=${APPS:-10000}
mkdir -p "$out"
data=$(mktemp -d); port=$((20000 + RANDOM % 20000))
$bin serve --data $data --listen 127.0.0.1:$port --admin-token tok ${SERVE_ARGS:-} > "$out/rss-serve.log" 2>&1 &
pid=$!
sleep 1
metric() { echo "$1" | awk -v n="$2" '$1 == n {print $2}'; }
( while kill -0 $pid 2>/dev/null; do
    m=$(curl -fsS http://127.0.0.1:$port/metrics 2>/dev/null)
    echo "$(date +%T) rss=$(metric "$m" process_resident_memory_bytes) heap=$(metric "$m" go_memstats_heap_inuse_bytes) flushes=$(metric "$m" drainpipe_aggregate_flushes_total) flush_sum=$(metric "$m" drainpipe_aggregate_flush_seconds_sum) backlog=$(metric "$m" drainpipe_journal_backlog_records) cpu=$(metric "$m" process_cpu_seconds_total) load=$(cut -d' ' -f1 /proc/loadavg)"
    sleep 10
  done ) > "$out/rss-samples.txt" &
$loadgen loadgen --url http://127.0.0.1:$port --admin-token tok --apps "$apps" --rate 0.02 --backfill 2m --duration 150s --freshness 5s --verify 0 > "$out/rss-loadgen.txt" 2>&1
curl -fsS http://127.0.0.1:$port/metrics 2>/dev/null | grep '^drainpipe_aggregate_flush_seconds' > "$out/rss-flush-hist.txt"
sleep 15
kill $pid; wait $pid; rm -rf $data
# p50 and largest flush, as the histogram's bucket bounds.
awk -F'[{}" ]+' '/_bucket/ {le[n] = $3; c[n++] = $NF} /_count/ {total = $NF}
  END { for (i = 0; i < n; i++) { if (p50 == "" && c[i] >= total / 2) p50 = le[i]; if (mx == "" && c[i] >= total) mx = le[i] }
        printf "flushes %d: p50 <= %s s, max <= %s s (bucket bounds)\n", total, p50, mx }' "$out/rss-flush-hist.txt" | tee "$out/rss-flush-summary.txt"
grep -h 'freshness\|lines/s' "$out/rss-loadgen.txt"
