"""WSGI latency under sustained keep-alive load (``wrk --latency``), greenpatch beside its peers.

    .venv/bin/python benchmarks/bench_latency.py                  # 30 s per server
    .venv/bin/python benchmarks/bench_latency.py --duration 10 --connections 100

Each server (the same hello-world application as ``bench_server.py``, in its own
subprocess) takes ``wrk -t1 -c50 --latency`` for ``--duration`` seconds, one
after the other in this one invocation.  Printed per server: requests/s, the
50th, 90th and 99th latency percentiles wrk reports, and the errors it counted
(socket errors of every kind plus non-2xx answers).  A greenpatch run with any
error makes the script exit 1: under keep-alive load the server must lose
nothing.

gevent-nodelay is gevent's pywsgi with TCP_NODELAY (see ``bench_server.py``:
as shipped, pywsgi's separate head and body sends meet Nagle's algorithm and
wrk's delayed ACKs, ~40 ms a request).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from _harness import load_average  # this directory is sys.path[0]
from bench_server import WSGI_IMPLS, available, server_command, start_server, stop_server

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_ERROR_PATTERNS = (
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    r"Non-2xx or 3xx responses: (\d+)",
)


def milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, p50/p90/p99 in milliseconds and the error count from ``wrk --latency``."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise ValueError(f"wrk printed no rate:\n{output}")
    figures: dict[str, float] = {"requests_per_s": float(rate.group(1))}
    for percentile in ("50", "90", "99"):
        match = re.search(rf"^\s+{percentile}%\s+(\S+)[ \t]*$", output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk printed no {percentile}% latency:\n{output}")
        figures[f"p{percentile}_ms"] = milliseconds(match.group(1))
    errors = 0
    for pattern in _ERROR_PATTERNS:
        found = re.search(pattern, output)
        if found is not None:
            errors += sum(int(group) for group in found.groups())
    figures["errors"] = errors
    return figures


def run(impl: str, duration: int, connections: int) -> dict[str, float]:
    proc, port = start_server(server_command(impl, "wsgi"), "wsgi")
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            check=False,  # wrk exits non-zero on socket errors, which are counted instead
            timeout=duration + 60,
        )
    finally:
        stop_server(proc)
    return parse_wrk(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds per server")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        # A skip, not a failure: `make bench` runs every script in turn, and a
        # machine without wrk still has the other figures to give.
        print("(wrk not found: apt-get install wrk) bench_latency skipped")
        return 0
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, wrk -t1 -c{args.connections} "
        f"-d{args.duration}s --latency, keep-alive"
    )
    print(load_average("at start"))
    results: dict[str, Any] = {}
    for impl in WSGI_IMPLS:
        if not available(impl.split("-")[0]):
            print(f"  ({impl} not installed: skipped)")
            continue
        results[impl] = run(impl, args.duration, args.connections)
    print(f"\n  {'server':<15}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for impl, figures in results.items():
        print(
            f"  {impl:<15}{figures['requests_per_s']:>10.0f}{figures['p50_ms']:>10.2f}"
            f"{figures['p90_ms']:>10.2f}{figures['p99_ms']:>10.2f}{int(figures['errors']):>8}"
        )
    ours = results.get("greenpatch")
    for peer in ("gevent", "gevent-nodelay"):
        theirs = results.get(peer)
        if ours and theirs:
            # Above 1: greenpatch answers faster at that percentile.
            print(
                f"  {peer} / greenpatch latency: p50 x{theirs['p50_ms'] / ours['p50_ms']:.2f}, "
                f"p99 x{theirs['p99_ms'] / ours['p99_ms']:.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if ours is not None and ours["errors"]:
        print(f"greenpatch answered with {int(ours['errors'])} errors", file=sys.stderr)
        return 1
    print(load_average("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
