#!/usr/bin/env python3
"""Draws docs/benchmarks/scaling.svg from a scripts/bench/study.sh output
directory: how cost grows with lines per POST, apps, dynos per app and
days of history. Standard library only.
Usage: chart.py OUTDIR SVG [QUERY_FILE, default query.txt in OUTDIR]"""
import math
import re
import statistics
import sys
from pathlib import Path


def bench_metric(path, name_re, unit):
    """Median of unit per benchmark name matching name_re, by the name's
    captured group (int)."""
    vals = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^Benchmark(\S+?)-\d+\s", line)
        if not m:
            continue
        k = re.search(name_re, m.group(1))
        if not k:
            continue
        f = re.search(r"([0-9.e+]+) " + re.escape(unit) + r"(\s|$)", line)
        if f:
            vals.setdefault(int(k.group(1)), []).append(float(f.group(1)))
    return {k: statistics.median(v) for k, v in sorted(vals.items())}


def e2e_rates(out, prefix, values):
    sink, dp = {}, {}
    for v in values:
        p = Path(out) / f"{prefix}-{v}.txt"
        if not p.exists():
            continue
        t = p.read_text()
        s = re.search(r"sink: .*: (\d+) lines/s", t)
        d = re.search(r"drainpipe: .*: (\d+) lines/s", t)
        if s and d:
            sink[v], dp[v] = float(s.group(1)), float(d.group(1))
    return sink, dp


W, H = 420, 260
L, R, T, B = 70, 20, 40, 45
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def panel(x0, y0, title, xlabel, ylabel, series, logx=True, logy=False):
    xs = sorted({x for s in series.values() for x in s})
    ys = [y for s in series.values() for y in s.values()]
    if not xs or not ys:
        return f'<text x="{x0 + W / 2}" y="{y0 + H / 2}" text-anchor="middle">{title}: no data</text>'
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    fy = (lambda v: math.log10(max(v, 1e-9))) if logy else (lambda v: v)
    xmin, xmax = fx(xs[0]), fx(xs[-1])
    ymin = fy(min(ys)) if logy else 0
    ymax = fy(max(ys)) * (1.0 if logy else 1.1)
    if xmax == xmin:
        xmax += 1
    if ymax == ymin:
        ymax += 1

    def px(v):
        return x0 + L + (fx(v) - xmin) / (xmax - xmin) * (W - L - R)

    def py(v):
        return y0 + H - B - (fy(v) - ymin) / (ymax - ymin) * (H - T - B)

    o = [f'<text x="{x0 + W / 2}" y="{y0 + 20}" text-anchor="middle" font-weight="bold">{title}</text>',
         f'<line x1="{x0 + L}" y1="{y0 + H - B}" x2="{x0 + W - R}" y2="{y0 + H - B}" stroke="#444"/>',
         f'<line x1="{x0 + L}" y1="{y0 + T}" x2="{x0 + L}" y2="{y0 + H - B}" stroke="#444"/>',
         f'<text x="{x0 + W / 2}" y="{y0 + H - 8}" text-anchor="middle">{xlabel}</text>',
         f'<text x="{x0 + 14}" y="{y0 + H / 2}" text-anchor="middle" transform="rotate(-90 {x0 + 14} {y0 + H / 2})">{ylabel}</text>']
    for x in xs:
        o.append(f'<text x="{px(x):.1f}" y="{y0 + H - B + 16}" text-anchor="middle" font-size="11">{x:g}</text>')
    for i in range(5):
        yv = ymin + (ymax - ymin) * i / 4
        v = 10 ** yv if logy else yv
        y = y0 + H - B - (yv - ymin) / (ymax - ymin) * (H - T - B)
        o.append(f'<line x1="{x0 + L}" y1="{y:.1f}" x2="{x0 + W - R}" y2="{y:.1f}" stroke="#eee"/>')
        o.append(f'<text x="{x0 + L - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{human(v)}</text>')
    for i, (name, s) in enumerate(series.items()):
        c = COLORS[i % len(COLORS)]
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(s.items()))
        o.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in s.items():
            o.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        o.append(f'<text x="{x0 + L + 8}" y="{y0 + T + 4 + 14 * i}" fill="{c}" font-size="12">{name}</text>')
    return "\n".join(o)


def human(v):
    for d, s in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= d:
            return f"{v / d:.3g}{s}"
    return f"{v:.3g}"


def main():
    out, svg = sys.argv[1], sys.argv[2]
    query = sys.argv[3] if len(sys.argv) > 3 else "query.txt"
    sink, dp = e2e_rates(out, "batch", [1, 10, 100, 500, 1000])
    asink, adp = e2e_rates(out, "apps", [1, 10, 100, 1000])
    flush = bench_metric(Path(out) / "apply.txt", r"^Apply/apps=(\d+)$", "lines/cpu-s")
    dyn_mem = bench_metric(Path(out) / "aggregate.txt", r"^FoldDynos/dynos=(\d+)$", "B/series-minute")
    dyn_rate = bench_metric(Path(out) / "aggregate.txt", r"^FoldDynos/dynos=(\d+)$", "lines/cpu-s")
    q1 = bench_metric(Path(out) / query, r"^QueryDays/days=(\d+)/range=24h@1m$", "cpu-ms/op")
    q2 = bench_metric(Path(out) / query, r"^QueryDays/days=(\d+)/range=7d@2h$", "cpu-ms/op")
    parts = [
        panel(0, 0, "Ingest vs lines per POST", "lines per POST", "lines/s",
              {"read-and-discard receiver": sink, "drainpipe end to end": dp}, logy=True),
        panel(W, 0, "Ingest vs apps (1 h of history each)", "apps", "lines/s",
              {"read-and-discard receiver": asink, "drainpipe end to end": adp}, logy=True),
        panel(0, H, "Fold vs dynos per app", "dynos", "value",
              {"B per series-minute": dyn_mem, "fold lines/cpu-s ÷ 1000": {k: v / 1000 for k, v in dyn_rate.items()}}, logy=True),
        panel(W, H, "Query CPU vs days of history (10 apps)", "days in the store", "CPU ms per request",
              {"24 h at 1m": q1, "7 d at 2h": q2}, logx=False),
    ]
    if flush:
        parts.append(panel(0, 2 * H, "Store flush vs apps (2 process types)", "apps in one flush", "requests/cpu-s",
                           {"requests absorbed per CPU-second": flush}))
    height = 3 * H if flush else 2 * H
    Path(svg).write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{height}" font-family="sans-serif" font-size="13">\n'
        f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(parts) + "\n</svg>\n")


if __name__ == "__main__":
    main()
