"""The benchmark scripts still run: a script that breaks is found here, not at `make bench`.

Only the short, figure-free end of each is exercised (what is measured is not
asserted: timed assertions do not belong in unit tests).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.timeout(180)
def test_bench_latency_serves_greenpatch_and_reports_its_percentiles(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    run = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_latency.py"),
            "--duration",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(out.read_text())["greenpatch"]
    assert figures["requests_per_s"] > 0
    assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"]
    assert figures["errors"] == 0
