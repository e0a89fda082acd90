#!/usr/bin/env bash
# Alternated end-to-end runs of several drainpipe binaries, for comparing
# them on a noisy machine: ROUNDS rounds, each running every binary once
# through scripts/bench/e2e.sh (a fresh server, loadgen --sink), in an
# order rotated per round. Prints one benchstat line per run (the ratio to
# the receiver, the server's CPU seconds, both rates, the aggregator's lag
# after the last 2xx); compare with `benchstat -col /bin OUTFILE`.
#   scripts/bench/e2e-ab.sh ROUNDS OUTFILE BIN... [-- loadgen flags]
# The loadgen flags default to --backfill 24h. SERVE_FLAGS passes on.
set -euo pipefail
rounds=$1 out=$2
shift 2
bins=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do bins+=("$1"); shift; done
[ $# -gt 0 ] && shift
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--backfill 24h)
here=$(cd "$(dirname "$0")" && pwd)
: >"$out"
n=${#bins[@]}
for ((i = 0; i < rounds; i++)); do
	for ((k = 0; k < n; k++)); do
		bin=${bins[$(((k + i) % n))]}
		name=$(basename "$bin")
		dir=$(mktemp -d)
		r=$("$here/e2e.sh" "$bin" "$dir" "${flags[@]}" 2>&1) || { echo "$r" >&2; exit 1; }
		rm -rf "$dir"
		field() { awk -v p="$1" -v f="$2" '$0 ~ p {print $(NF + f)}' <<<"$r"; }
		lag=$(sed -n 's/.*counted \([0-9.]*\)\(m\?s\) after the last 2xx.*/\1 \2/p' <<<"$r" | awk '{print ($2 == "ms") ? $1 / 1000 : $1}')
		# Binaries from before session 7 print no lag: the unit is left
		# out for them (benchstat refuses a NaN).
		printf 'BenchmarkE2E/bin=%s 1 %s ratio %s cpu-s %s lines/s %s sink-lines/s%s\n' "$name" \
			"$(field '^ratio' -3)" "$(field 'server CPU during' -1)" "$(field '^drainpipe: sent' -1)" "$(field '^sink: sent' -1)" "${lag:+ $lag lag-s}" |
			tee -a "$out"
	done
	echo "# round $((i + 1)) of $rounds done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
