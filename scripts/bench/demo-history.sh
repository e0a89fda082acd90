#!/usr/bin/env bash
# The demo's 7-day history import, binaries alternated: each round runs
# `drainpipe demo` once with every BIN, on a fresh data directory and
# port, waits for its "history imported" line, notes the CPU seconds the
# process used until then (user+system, from /proc) and the load average,
# and stops it. Usage:
#   scripts/bench/demo-history.sh ROUNDS BIN...
# DEMO_FLAGS adds flags to `demo` (e.g. DEMO_FLAGS="--backfill 24h").
# One line per run: binary, the demo's summary, cpu=…s, load=…. See
# docs/BENCHMARKS.md.
set -euo pipefail
rounds=$1
shift
tck=$(getconf CLK_TCK)
run() {
	local bin=$1 data port pid st cpu summary
	data=$(mktemp -d)
	port=$((20000 + RANDOM % 20000))
	"$bin" demo --data "$data" --listen "127.0.0.1:$port" ${DEMO_FLAGS:-} >/dev/null 2>"$data/stderr" &
	pid=$!
	until grep -aqs "history imported" "$data/stderr"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$bin: demo exited:" >&2
			cat "$data/stderr" >&2
			rm -rf "$data"
			return 1
		fi
		sleep 0.2
	done
	read -r -a st <"/proc/$pid/stat"
	cpu=$(((st[13] + st[14]) * 10 / tck))
	summary=$(tr '\r' '\n' <"$data/stderr" | grep -a "history imported" | sed 's/\x1b\[K//')
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -rf "$data"
	echo "$bin: $summary cpu=$((cpu / 10)).$((cpu % 10))s load=$(cut -d' ' -f1-3 /proc/loadavg)"
}
for _ in $(seq "$rounds"); do
	for bin in "$@"; do
		run "$bin"
	done
done
