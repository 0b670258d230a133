#!/usr/bin/env bash
# run.sh runs the limiter benchmarks of issue 3 against a real Redis and
# prints the raw `go test -bench` output (benchstat reads it as is), then a
# side-by-side table of each metric's median over the runs.
#
#   internal/benchrun/run.sh                  # 5 runs of 3 s each
#   COUNT=10 BENCHTIME=5s internal/benchrun/run.sh
#   BENCH='Contended$' internal/benchrun/run.sh
#   internal/benchrun/table.sh old.txt        # the table of a saved run
#
# Variables: COUNT (runs per benchmark, default 5), BENCHTIME (default 3s;
# a contended window lasts one second per b.N, so about that long; 1x is the
# CI smoke pass), BENCH (benchmark regexp, default .),
# OUT (where the raw output is kept, default bench-<date>.txt in the current
# directory), SLOTGUARD_BENCH_REDIS (private or shared, see
# limiter/bench_redis_test.go).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${OUT:-bench-$(date -u +%Y%m%dT%H%M%SZ).txt}"
(cd "$root" && go test -run '^$' -bench "${BENCH:-.}" -benchtime="${BENCHTIME:-3s}" \
  -count="${COUNT:-5}" -timeout 60m ./limiter) | tee "$out"
echo
echo "raw output (benchstat $out): $out"
echo
"$root/internal/benchrun/table.sh" "$out"
