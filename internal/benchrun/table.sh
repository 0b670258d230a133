#!/usr/bin/env bash
# table.sh prints a side-by-side Markdown table of `go test -bench` output:
# one row per benchmark and metric, one column per variant (the
# sub-benchmark name), each cell the median over the runs, except for
# max-holders, which shows the most of any run. With SPREAD=1 each cell also
# gives the lowest and the highest value of the runs: "median (min–max)".
set -euo pipefail
awk -v spread="${SPREAD:-0}" '
/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name)
  n = split(name, part, "/"); bench = part[1]; sub(/^Benchmark/, "", bench)
  variant = (n > 1) ? part[2] : "-"
  if (!(variant in vseen)) { vseen[variant] = 1; vorder[++nv] = variant }
  for (i = 3; i < NF; i += 2) {
    unit = $(i + 1)
    if (unit == "ns/op") continue
    row = bench " " unit
    if (!(row in rseen)) { rseen[row] = 1; rorder[++nr] = row }
    key = row SUBSEP variant
    vals[key, ++cnt[key]] = $i
  }
}
function lowest(key,   i, t) {
  t = vals[key, 1] + 0
  for (i = 2; i <= cnt[key]; i++) if (vals[key, i] + 0 < t) t = vals[key, i] + 0
  return t
}
function highest(key,   i, t) {
  t = vals[key, 1] + 0
  for (i = 2; i <= cnt[key]; i++) if (vals[key, i] + 0 > t) t = vals[key, i] + 0
  return t
}
function median(key,   k, m, i, j, t, a) {
  m = cnt[key]
  if (key ~ /max-holders/) { t = vals[key, 1] + 0; for (i = 2; i <= m; i++) if (vals[key, i] + 0 > t) t = vals[key, i] + 0; return t }
  for (i = 1; i <= m; i++) a[i] = vals[key, i] + 0
  for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
  printf "| benchmark | metric |"; for (v = 1; v <= nv; v++) printf " %s |", vorder[v]; print ""
  printf "|---|---|"; for (v = 1; v <= nv; v++) printf "---:|"; print ""
  for (r = 1; r <= nr; r++) {
    split(rorder[r], rb, " ")
    printf "| %s | %s |", rb[1], rb[2]
    for (v = 1; v <= nv; v++) {
      key = rorder[r] SUBSEP vorder[v]
      if (!cnt[key]) printf " |"
      else if (spread && key !~ /max-holders/) printf " %.4g (%.4g–%.4g) |", median(key), lowest(key), highest(key)
      else printf " %.4g |", median(key)
    }
    print ""
  }
}' "$@"
