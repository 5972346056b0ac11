"""What one echo round trip costs a server: system calls, instructions, Python calls.

    .venv/bin/python benchmarks/bench_server_profile.py strace      # syscalls per round trip
    .venv/bin/python benchmarks/bench_server_profile.py callgrind   # instructions per round trip
    .venv/bin/python benchmarks/bench_server_profile.py cprofile    # Python calls per round trip
    .venv/bin/python benchmarks/bench_server_profile.py cpu         # CPU time per round trip
    .venv/bin/python benchmarks/bench_server_profile.py callgrind --impl selectors

Throughput (``bench_server.py``) depends on the machine's load; these counts do
not.  The same C client as ``bench_server.py`` (built with ``cc``) makes a
fixed number of round trips over 50 connections against one server, run under
a tool:

- ``strace``: ``strace -c -f`` on the server process, the count of each system
  call divided by the round trips;
- ``callgrind``: valgrind's instruction count (``Ir``), taken at two numbers of
  round trips and differenced, so that start-up and shut-down cancel out: the
  figure is the instructions of one more round trip, repeatable to a fraction
  of a percent whatever else the machine does.  It also counts the calls of
  the allocator (``PyObject_Malloc``, ``PyObject_GC_New`` families, ``malloc``);
- ``cpu``: the server's user and system CPU time (``/proc/PID/stat``), taken at
  two numbers of round trips and differenced, median of 5: what a round trip
  costs the machine, which is what throughput depends on once the CPUs are
  shared with other work (and much steadier than throughput then);
- ``cprofile``: the server under ``cProfile`` (greenlet switches counted by
  ``greenlet.settrace``, greenpatch only), the Python calls per round trip,
  and the functions called most.

Batching varies with timing (how many connections one ``epoll_wait`` returns),
so counts from ``strace`` move a little from run to run; under ``callgrind`` the
server is ~50 times slower than the client and always finds a full batch.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVE = str(HERE / "bench_server_serve.py")
C_CLIENT = HERE / "bench_server_client.c"
C_SERVER = HERE / "bench_server_cserver.c"
CLIENTS = 50
#: How many times ``cpu`` measures (the median is printed).
CPU_REPEATS = 5
#: How many functions the callgrind breakdown lists.
TOP = int(os.environ.get("BENCH_PROFILE_TOP", "25"))

#: Allocator entry points counted under callgrind (CPython 3.11 and glibc names).
ALLOCATORS = ("PyObject_Malloc", "_PyObject_Malloc", "PyMem_Malloc", "malloc", "gc_alloc")


def build(source: Path, build_dir: str) -> str:
    binary = os.path.join(build_dir, source.stem)
    subprocess.run(["cc", "-O2", "-o", binary, str(source)], check=True)
    return binary


def serve_command(impl: str, build_dir: str) -> list[str]:
    if impl == "c-epoll":
        return [build(C_SERVER, build_dir)]
    return [sys.executable, SERVE, impl, "echo"]


def run(
    prefix: list[str], server: list[str], client: str, round_trips: int, timeout: float = 600
) -> tuple[float, float]:
    """Serve under ``prefix``, make ``round_trips`` round trips, stop the server.

    Returns the server's user and system CPU seconds until then (start-up
    included; meaningful without a prefix).
    """
    proc = subprocess.Popen([*prefix, *server], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{server} did not start")
        out = subprocess.run(
            [client, line.strip(), str(CLIENTS), str(timeout), str(round_trips)],
            capture_output=True,
            text=True,
            check=True,
        )
        if f'"round_trips": {round_trips}' not in out.stdout:
            raise RuntimeError(f"the client stopped early: {out.stdout} {out.stderr}")
        # utime and stime, in clock ticks: fields 14 and 15 of /proc/PID/stat,
        # counted after the command's parenthesised name.
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick
    finally:
        # strace does not pass a SIGTERM on (nor stop): the server it traces is
        # its child, and ending that one ends strace with its summary written.
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        pids = children.read_text().split() if prefix[:1] == ["strace"] else []
        os.kill(int(pids[0]) if pids else proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def do_strace(impl: str, round_trips: int, client: str, build_dir: str) -> None:
    out = os.path.join(build_dir, "strace.txt")
    run(["strace", "-c", "-f", "-o", out], serve_command(impl, build_dir), client, round_trips)
    print(f"{impl}: system calls per round trip ({round_trips} round trips, strace -c -f)")
    total = 0.0
    for line in Path(out).read_text().splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls = int(fields[3])
            errors = int(fields[4]) if len(fields) == 6 else 0
            per = calls / round_trips
            if per >= 0.01:
                total += per
                extra = f"  ({errors / round_trips:.2f} failed)" if errors else ""
                print(f"  {fields[-1]:<16} {per:6.2f}{extra}")
    print(f"  {'total':<16} {total:6.2f}")


def callgrind_totals(path: str) -> tuple[int, dict[str, int]]:
    """Total Ir of a callgrind output file, and the calls made to ``ALLOCATORS``."""
    total = 0
    calls: dict[str, int] = collections.Counter()
    names: dict[str, str] = {}
    target = None
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
            elif line.startswith("cfn="):
                match = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
                if match:
                    ident, name = match.groups()
                    if name:
                        names[ident] = name
                    target = names.get(ident)
            elif line.startswith("calls=") and target in ALLOCATORS:
                calls[target] += int(line.split("=")[1].split()[0])
    return total, calls


def self_costs(path: str) -> dict[str, int]:
    """Ir spent in each function itself (``callgrind_annotate``), by function name."""
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", path], capture_output=True, text=True, check=True
    ).stdout
    costs: dict[str, int] = collections.Counter()
    for line in out.splitlines():
        match = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*)", line)
        if match and "PROGRAM TOTALS" not in line:
            name = match.group(2).split(" [")[0]
            costs[name.rsplit(":", 1)[-1]] += int(match.group(1).replace(",", ""))
    return costs


def do_callgrind(impl: str, round_trips: int, client: str, build_dir: str) -> None:
    results = []
    for count in (round_trips // 5, round_trips):
        out = os.path.join(build_dir, f"callgrind.{count}")
        prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "-q"]
        run(prefix, serve_command(impl, build_dir), client, count)
        results.append((count, *callgrind_totals(out)))
    (n1, ir1, calls1), (n2, ir2, calls2) = results
    span = n2 - n1
    print(f"{impl}: instructions per round trip (callgrind, {n2} minus {n1} round trips)")
    print(f"  Ir per round trip   {(ir2 - ir1) / span:10.0f}")
    for name in ALLOCATORS:
        if calls2.get(name):
            print(f"  calls to {name:<18} {(calls2[name] - calls1.get(name, 0)) / span:6.2f}")
    if shutil.which("callgrind_annotate"):
        first, second = (self_costs(os.path.join(build_dir, f"callgrind.{n}")) for n in (n1, n2))
        diff = {name: (second[name] - first.get(name, 0)) / span for name in second}
        print(f"  instructions per round trip by function (self cost), the first {TOP}:")
        for name, cost in sorted(diff.items(), key=lambda item: -item[1])[:TOP]:
            print(f"    {cost:7.0f}  {name}")


def do_cpu(impl: str, round_trips: int, client: str, build_dir: str) -> None:
    server = serve_command(impl, build_dir)
    small = round_trips // 5
    rounds = []
    for _ in range(CPU_REPEATS):  # alternating, so that a load change falls on both
        first, second = run([], server, client, small), run([], server, client, round_trips)
        span = round_trips - small
        rounds.append(((second[0] - first[0]) / span, (second[1] - first[1]) / span))
    user = statistics.median(entry[0] for entry in rounds) * 1e6
    system = statistics.median(entry[1] for entry in rounds) * 1e6
    print(f"{impl}: server CPU time per round trip ({round_trips} minus {small} round trips,")
    print(f"  median of {CPU_REPEATS}; clock ticks of {1000 // os.sysconf('SC_CLK_TCK')} ms)")
    print(f"  user    {user:6.2f} us")
    print(f"  system  {system:6.2f} us")
    print(f"  total   {user + system:6.2f} us")


def do_cprofile(impl: str, round_trips: int, client: str, build_dir: str) -> None:
    out = os.path.join(build_dir, "cprofile.out")
    prefix = [sys.executable, __file__, "--serve-profiled", out, impl]
    run(prefix, [], client, round_trips)
    stats = pstats.Stats(out)
    raw: Any = stats.stats  # type: ignore[attr-defined]
    calls = sum(entry[1] for entry in raw.values())
    switches = Path(out + ".switches").read_text().strip()
    print(f"{impl}: per round trip ({round_trips} round trips, cProfile)")
    print(f"  Python-level calls  {calls / round_trips:6.2f}")
    if switches != "-":
        print(f"  greenlet switches   {int(switches) / round_trips:6.2f}")
    print("  most called:")
    top = sorted(raw.items(), key=lambda item: item[1][1], reverse=True)[:15]
    for (filename, line, name), entry in top:
        where = f"{Path(filename).name}:{line}" if line else filename
        print(f"    {entry[1] / round_trips:6.2f}  {name}  ({where})")


def serve_profiled(out: str, impl: str) -> None:
    """In the server process: serve ``impl`` under cProfile until SIGTERM."""
    import cProfile

    sys.path.insert(0, str(HERE))
    import bench_server_serve

    switches = [0]
    if impl == "greenpatch":
        import greenlet

        def count(event: str, args: Any) -> None:
            switches[0] += 1

        greenlet.settrace(count)

    def stop(*_: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    profile = cProfile.Profile()
    try:
        profile.runcall(bench_server_serve.main_for, impl, "echo")
    except SystemExit:
        pass
    finally:
        profile.dump_stats(out)
        Path(out + ".switches").write_text(str(switches[0]) if impl == "greenpatch" else "-")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-profiled":
        serve_profiled(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=["strace", "callgrind", "cprofile", "cpu"])
    parser.add_argument("--impl", default="greenpatch")
    parser.add_argument("--round-trips", type=int, default=0)
    parser.add_argument("--keep", help="callgrind: copy the larger run's output file here")
    args = parser.parse_args()
    for tool in ("cc", "strace" if args.tool == "strace" else "cc", "valgrind"):
        if tool != "valgrind" or args.tool == "callgrind":
            if shutil.which(tool) is None:
                print(f"{tool} not found")
                return 1
    default = {"strace": 50_000, "callgrind": 20_000, "cprofile": 50_000, "cpu": 300_000}
    round_trips = args.round_trips or default[args.tool]
    build_dir = tempfile.mkdtemp(prefix="bench_server_profile_")
    try:
        client = build(C_CLIENT, build_dir)
        action = {
            "strace": do_strace,
            "callgrind": do_callgrind,
            "cprofile": do_cprofile,
            "cpu": do_cpu,
        }
        action[args.tool](args.impl, round_trips, client, build_dir)
        if args.keep and args.tool == "callgrind":
            shutil.copy(os.path.join(build_dir, f"callgrind.{round_trips}"), args.keep)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
