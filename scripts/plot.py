#!/usr/bin/env python3
"""Draws docs/bench.svg from the output of `cargo bench --bench ring`.

Usage:
    cargo bench --bench ring | tee bench.txt
    python3 scripts/plot.py bench.txt [docs/bench.svg]

Reads the last line that starts with "BENCH_JSON " and writes one SVG with two panels: ordered
throughput next to the raw multicast baseline, and submit-to-delivered latency (paced load and
sporadic lines), both against the number of clients N on log scales. Standard library only, so
it runs anywhere python3 does.
"""

import json
import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape

PANEL_W, PANEL_H = 430, 370
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 20, 50, 120
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]


def read_report(path):
    """The parsed JSON of the last BENCH_JSON line in `path`."""
    line = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            if raw.startswith("BENCH_JSON "):
                line = raw[len("BENCH_JSON "):]
    if line is None:
        sys.exit(f"error: no BENCH_JSON line in {path}; run `cargo bench --bench ring` first")
    return json.loads(line)


def log_ticks(lo, hi):
    """Tick values 1, 2, 5 x 10^k that cover [lo, hi]."""
    ticks = []
    for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10**k
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def fmt(v):
    if v >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def panel(x0, title, ylabel, ns, series):
    """SVG elements of one panel at horizontal offset x0. `series` is [(label, [y or None])]."""
    values = [y for _, ys in series for y in ys if y is not None and y > 0]
    if not values:
        values = [1, 10]
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    if hi <= lo:
        hi = lo * 10
    left, top = x0 + MARGIN_L, MARGIN_T
    width = PANEL_W - MARGIN_L - MARGIN_R
    height = PANEL_H - MARGIN_T - MARGIN_B
    nlo, nhi = math.log2(min(ns)), math.log2(max(ns))

    def px(n):
        if nhi == nlo:
            return left + width / 2
        return left + (math.log2(n) - nlo) / (nhi - nlo) * width

    def py(y):
        return top + height - (math.log10(y) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * height

    out = [
        f'<text x="{left + width / 2}" y="{top - 22}" text-anchor="middle" '
        f'font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#888"/>',
    ]
    for t in log_ticks(lo, hi):
        y = py(t)
        out.append(f'<line x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{fmt(t)}</text>')
    for n in ns:
        x = px(n)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + height}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{top + height + 16}" text-anchor="middle" font-size="11">{n}</text>')
    out.append(
        f'<text x="{left + width / 2}" y="{top + height + 36}" text-anchor="middle" '
        f'font-size="12">clients N</text>'
    )
    out.append(
        f'<text transform="translate({x0 + 16},{top + height / 2}) rotate(-90)" '
        f'text-anchor="middle" font-size="12">{escape(ylabel)}</text>'
    )
    legend = []
    for i, (label, ys) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        dash = ' stroke-dasharray="5,3"' if "p99" in label or "baseline" in label else ""
        points = [(px(n), py(y)) for n, y in zip(ns, ys) if y is not None and y > 0]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y in points:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        ly = top + height + 58 + 15 * i
        legend.append(f'<line x1="{left + 8}" x2="{left + 28}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="2"{dash}/>')
        legend.append(f'<text x="{left + 32}" y="{ly}" font-size="11">{escape(label)}</text>')
    return out + legend


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    report = read_report(sys.argv[1])
    default_out = Path(__file__).resolve().parent.parent / "docs" / "bench.svg"
    out_path = Path(sys.argv[2]) if len(sys.argv) == 3 else default_out
    rows = sorted(report["rows"], key=lambda r: r["n"])
    if not rows:
        sys.exit("error: the report has no rows")
    ns = [r["n"] for r in rows]

    def lat(kind, q):
        return [(r.get(kind) or {}).get(q) for r in rows]

    paced = rows[0].get("paced") or {}
    rate = paced.get("rate", 1000)
    left = panel(
        0,
        "Throughput",
        "per second (log)",
        ns,
        [
            ("raw multicast baseline, datagrams/s", [r.get("raw_rate") for r in rows]),
            ("ordered, lines/s at every client", [r.get("ordered_rate") for r in rows]),
        ],
    )
    right = panel(
        PANEL_W,
        "Latency, submit to delivered everywhere",
        "milliseconds (log)",
        ns,
        [
            (f"paced {rate:.0f} lines/s, p50", lat("paced", "p50_ms")),
            (f"paced {rate:.0f} lines/s, p99", lat("paced", "p99_ms")),
            ("sporadic (idle ring), p50", lat("sporadic", "p50_ms")),
            ("sporadic (idle ring), p99", lat("sporadic", "p99_ms")),
        ],
    )
    machine = report.get("machine", {})
    caption = (
        f"mcast-chat ring benchmark, {report.get('date', '?')}, {machine.get('cpu', '?')} "
        f"({machine.get('nproc', '?')} cores), commit {machine.get('commit', '?')}"
        + (" (BENCH_QUICK)" if report.get("quick") else "")
    )
    width, height = 2 * PANEL_W, PANEL_H + 24
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        *left,
        *right,
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle" font-size="11" '
        f'fill="#555">{escape(caption)}</text>',
        "</svg>",
    ]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(svg) + "\n", encoding="utf-8")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
