#!/usr/bin/env bash
# Memory and flush behaviour of a server while 10,000 apps send traffic
# (2 minutes of backfill, then 150 s live): RSS, Go heap in use, flushes,
# time spent flushing and the journal backlog, sampled every 10 s.
# Usage: scripts/bench/rss.sh BIN OUTDIR   (see docs/BENCHMARKS.md)
set -u
bin=${1:?usage: rss.sh BIN OUTDIR} out=${2:?usage: rss.sh BIN OUTDIR}
mkdir -p "$out"
data=$(mktemp -d); port=$((20000 + RANDOM % 20000))
$bin serve --data $data --listen 127.0.0.1:$port --admin-token tok > "$out/rss-serve.log" 2>&1 &
pid=$!
sleep 1
( while kill -0 $pid 2>/dev/null; do
    m=$(curl -fsS http://127.0.0.1:$port/metrics 2>/dev/null)
    echo "$(date +%T) rss=$(echo "$m" | awk '/^process_resident_memory_bytes/ {print $2}') heap=$(echo "$m" | awk '/^go_memstats_heap_inuse_bytes/ {print $2}') flushes=$(echo "$m" | awk '/^drainpipe_aggregate_flushes_total/ {print $2}') flush_sum=$(echo "$m" | awk '/^drainpipe_aggregate_flush_seconds_sum/ {print $2}') backlog=$(echo "$m" | awk '/^drainpipe_journal_backlog/ {print $2}')"
    sleep 10
  done ) > "$out/rss-samples.txt" &
$bin loadgen --url http://127.0.0.1:$port --admin-token tok --apps 10000 --rate 0.02 --backfill 2m --duration 150s --verify 0 > "$out/rss-loadgen.txt" 2>&1
sleep 15
kill $pid; wait $pid; rm -rf $data
