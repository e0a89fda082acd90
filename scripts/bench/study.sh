#!/usr/bin/env bash
# The measurements behind docs/BENCHMARKS.md, one after another (never in
# parallel: the machine has 2 cores). Usage: scripts/bench/study.sh OUTDIR
# Takes 30-60 minutes on a busy 2-core machine; the first run also builds
# the 1,000-app benchmark store in the temp directory (see sqlite/bench_test.go).
set -uo pipefail
out=${1:?usage: study.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
go build -o "$out/drainpipe" ./cmd/drainpipe
bin=$out/drainpipe
e2e=scripts/bench/e2e.sh
nproc >"$out/machine.txt"; uptime >>"$out/machine.txt"; go version >>"$out/machine.txt"

# Hot-path micro-benchmarks, 6 counts for benchstat.
go test -run '^$' -bench . -count 6 ./logplex ./logline ./metrics >"$out/micro.txt" 2>&1
go test -run '^$' -bench 'Fold|Minute|StateMemory' -count 6 ./aggregate >"$out/aggregate.txt" 2>&1
# Store flush and queries.
go test -run '^$' -bench 'Apply/' -benchtime 10x -count 3 ./sqlite >"$out/apply.txt" 2>&1
# The 1,000-app store takes long to build: run that one alone with
#   go test -run '^$' -bench 'Query/apps=1000$/' -benchtime 30x -count 3 -timeout 80m ./sqlite
go test -run '^$' -bench 'Query/apps=(1|10|100)$' -benchtime 30x -count 3 -timeout 60m ./sqlite >"$out/query.txt" 2>&1
go test -run '^$' -bench 'QueryDays' -benchtime 30x -count 3 -timeout 60m ./sqlite >>"$out/query.txt" 2>&1

# End to end: drainpipe vs the read-and-discard receiver, same lines.
for i in 1 2 3; do $e2e "$bin" "$out/e2e-$i" --backfill 6h >"$out/e2e-$i.txt" 2>&1; done
for n in 1 10 100 500 1000; do $e2e "$bin" "$out/batch-$n" --backfill 1h --batch "$n" >"$out/batch-$n.txt" 2>&1; done
for n in 1 10 100 1000; do $e2e "$bin" "$out/apps-$n" --apps "$n" --rate "$(awk "BEGIN {print 30/$n < 1 ? 30/$n : 1}")" --backfill 1h >"$out/apps-$n.txt" 2>&1; done

# The demo's 7-day history import, twice.
for i in 1 2; do
	d=$(mktemp -d)
	timeout 300 "$bin" demo --listen 127.0.0.1:0 --data "$d" >"$out/demo-$i.out" 2>"$out/demo-$i.err" &
	p=$!
	for _ in $(seq 600); do grep -q "history imported" "$out/demo-$i.err" && break; sleep 0.5; done
	kill $p; wait $p; rm -rf "$d"
done
# Steady memory with 10,000 apps sending (about 80% of them with a web and
# a worker process type): live traffic for a minute after a short backfill.
$e2e "$bin" "$out/rss-10000" --apps 10000 --rate 0.02 --backfill 2m --duration 60s --verify 0 >"$out/rss-10000.txt" 2>&1
echo done >"$out/DONE"
