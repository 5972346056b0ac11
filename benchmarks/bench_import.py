"""Import + patch time: ``import greenpatch; greenpatch.patch_all()`` against gevent's.

    python benchmarks/bench_import.py [--runs 5]

What a user's program pays at start, so every figure comes from a *fresh,
bare* interpreter: the worker starts ``python -c`` with the import and the
patch timed inside it (the benchmark worker itself has imported argparse, json,
subprocess... which gevent's patch would otherwise import, and which would
flatter it).  Three figures:

* import_patch: ``import`` + ``patch_all()`` timed inside the bare interpreter;
* process: the whole ``python -c "import ...; patch_all()"`` process, start to
  exit (what a command-line tool pays), lower is better;
* many_dists: import_patch with 200 more distributions on ``sys.path`` (each
  with metadata and console-script entry points): plugin discovery must not
  grow with what else is installed.

The goal (docs/performance.md): at most half of gevent's time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import main

CODE = {
    "greenpatch": "import greenpatch; greenpatch.patch_all()",
    "gevent": "from gevent import monkey; monkey.patch_all()",
}
EXTRA_DISTRIBUTIONS = 200


def _many_distributions() -> str:
    """A directory of EXTRA_DISTRIBUTIONS installed-looking distributions."""
    root = tempfile.mkdtemp(prefix="bench-import-dists-")
    atexit.register(shutil.rmtree, root, True)
    for number in range(EXTRA_DISTRIBUTIONS):
        info = os.path.join(root, f"filler_{number}-1.0.dist-info")
        os.mkdir(info)
        with open(os.path.join(info, "METADATA"), "w") as f:
            f.write(f"Metadata-Version: 2.1\nName: filler-{number}\nVersion: 1.0\n")
        with open(os.path.join(info, "entry_points.txt"), "w") as f:
            f.write(f"[console_scripts]\nfiller-{number} = filler_{number}:main\n")
    return root


def _timed_inside(code: str, pythonpath: str | None = None) -> float:
    program = (
        "import time\n"
        "_started = time.perf_counter()\n"
        f"{code}\n"
        "print(time.perf_counter() - _started)\n"
    )
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def _whole_process(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def _workloads(implementation: str) -> dict[str, object]:
    code = CODE[implementation]
    return {
        "import_patch": lambda: _timed_inside(code),
        "process": lambda: _whole_process(code),
        "many_dists": lambda: _timed_inside(code, _many_distributions()),
    }


WORKLOADS = {implementation: _workloads(implementation) for implementation in CODE}
# A peer that is not installed is skipped by the harness, with a line saying so.
DESCRIPTIONS = {
    "import_patch": "import the library and patch the standard library, in a bare interpreter",
    "process": "the whole `python -c 'import; patch_all()'` process, start to exit",
    "many_dists": f"import_patch with {EXTRA_DISTRIBUTIONS} more distributions on sys.path",
}

if __name__ == "__main__":
    main(__file__, WORKLOADS, reference="gevent", descriptions=DESCRIPTIONS)  # type: ignore[arg-type]
