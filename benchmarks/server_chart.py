"""Draw the server benchmark's ratios to gevent as an SVG bar chart (docs/performance.md).

    .venv/bin/python benchmarks/bench_server.py --runs 3 --json /tmp/servers.json
    .venv/bin/python benchmarks/server_chart.py /tmp/servers.json docs/performance-servers.svg

Reads the medians ``bench_server.py --json`` writes (``{workload: {impl: rate}}``)
and draws one group of bars per workload, each bar the implementation's rate
divided by gevent's in that workload (each group scaled to its longest bar).
Plain SVG text, no plotting library, so the chart can be regenerated wherever
the benchmark runs.
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path

TITLES = {
    "echo": "TCP echo, 1 KiB, 50 connections",
    "wsgi": "WSGI hello world, keep-alive",
    "wsgi-close": "WSGI hello world, Connection: close",
}
LABEL_WIDTH = 140
BAR_SPACE = 360
ROW = 20


def draw(results: dict[str, dict[str, float]]) -> str:
    lines: list[str] = []
    y = 10
    for workload, group in results.items():
        reference = group.get("gevent")
        if not reference:
            continue
        # Each group has its own scale: the WSGI ratios (gevent's Nagle stall) would
        # flatten the echo bars on a shared one; the printed ratios carry the numbers.
        scale = BAR_SPACE / max(max(group.values()) / reference, 1.0)
        y += ROW
        title = escape(TITLES.get(workload, workload))
        lines.append(f'<text x="10" y="{y}" font-weight="bold">{title} (x gevent)</text>')
        for impl, rate in group.items():
            y += ROW
            ratio = rate / reference
            width = max(1, round(ratio * scale))
            colour = "#2a7" if impl == "greenpatch" else "#889"
            lines.append(
                f'<text x="10" y="{y}">{escape(impl)}</text>'
                f'<rect x="{LABEL_WIDTH}" y="{y - 12}" width="{width}" height="16" '
                f'fill="{colour}"/>'
                f'<text x="{LABEL_WIDTH + width + 5}" y="{y}">{ratio:.2f}x ({rate:,.0f}/s)</text>'
            )
        y += 6
    height = y + 14
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_WIDTH + BAR_SPACE + 140}" '
        f'height="{height}" font-family="sans-serif" font-size="12">\n'
        '<rect width="100%" height="100%" fill="white"/>\n'
    )
    return head + "\n".join(lines) + "\n</svg>\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: server_chart.py RESULTS.json OUT.svg", file=sys.stderr)
        return 2
    results = json.loads(Path(argv[0]).read_text())
    Path(argv[1]).write_text(draw(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
