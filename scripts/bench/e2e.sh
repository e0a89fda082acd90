#!/usr/bin/env bash
# End-to-end ingest study: a fresh `drainpipe serve` per run and `drainpipe
# loadgen --sink`, which sends the same lines to a read-and-discard
# receiver and then to drainpipe, prints the ratio and checks through the
# API that every line was counted. Usage:
#   scripts/bench/e2e.sh BIN OUTDIR [loadgen flags...]
# SERVE_FLAGS adds flags to `serve` (e.g. SERVE_FLAGS="--cpuprofile
# /tmp/cpu.prof"). Prints the loadgen output's figures, then the server's
# RSS and the CPU seconds it used during the run (both phases: it idles
# during the receiver's); OUTDIR/metrics.txt keeps its /metrics after the
# run. See docs/BENCHMARKS.md.
set -euo pipefail
bin=$1 out=$2
shift 2
mkdir -p "$out"
data=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
"$bin" serve --data "$data" --listen "127.0.0.1:$port" --admin-token tok ${SERVE_FLAGS:-} >"$out/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
cpu0=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^process_cpu_seconds_total/ {print $2}')
"$bin" loadgen --url "http://127.0.0.1:$port" --admin-token tok --sink 127.0.0.1:0 "$@" 2>"$out/loadgen.err"
curl -fsS "http://127.0.0.1:$port/metrics" >"$out/metrics.txt"
awk -v cpu0="$cpu0" '
	/^process_resident_memory_bytes/ {rss = $2}
	/^process_cpu_seconds_total/ {cpu = $2 - cpu0}
	END {printf "server RSS after the run: %d bytes; server CPU during the run: %.2f s\n", rss, cpu}' "$out/metrics.txt"
