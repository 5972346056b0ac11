"""Result documents for the renderer tests, built with the model's own classes.

Fixed times and versions, so that renderings are byte-for-byte stable (the
Markdown golden file depends on it).  ``matrix_results()`` is the set behind
the golden file: every kind of cell appears once.
"""

from __future__ import annotations

from greenpatch.reports.merge import Entry, Matrix, merge
from greenpatch.reports.model import ModeSummary, Result, ResultError, TestVerdict

STACK = [
    {
        "file": "/usr/lib/python3.11/runpy.py",
        "line": 198,
        "function": "_run_module_as_main",
        "code": "return _run_code(code, main_globals, None,",
    },
    {
        "file": "/env/lib/python3.11/site-packages/redis/connection.py",
        "line": 512,
        "function": "read_response",
        "code": "response = self._parser.read_response()",
    },
    {
        "file": "/env/lib/python3.11/site-packages/hiredis/reader.py",
        "line": 40,
        "function": "gets",
        "code": "return self._reader.gets()",
    },
]


def _result(suite: str, version: str, python: str, **fields: object) -> Result:
    result = Result(
        suite=suite,
        library=suite,
        version=version,
        python=python,
        platform="Linux-6.1.0-x86_64-with-glibc2.36",
        greenpatch_version="0.1.0",
        started_at="2026-11-20T10:00:00+00:00",
        finished_at="2026-11-20T10:05:00+00:00",
        environment={"pytest": "8.3.4", suite: version, "greenlet": "3.1.1"},
        reproduce=f"greenpatch compat run {suite} --python {python[:4]}",
        notes=[f"tests from the {suite} {version} sdist"],
    )
    for name, value in fields.items():
        setattr(result, name, value)
    result.count_verdicts()
    return result


def _modes(plain: dict[str, int], patched: dict[str, int] | None) -> dict[str, ModeSummary]:
    modes = {
        "plain": ModeSummary(
            mode="plain",
            ran=True,
            counts=plain,
            duration=41.2,
            processes=1,
            exit_codes=[0],
            command=["python", "-m", "pytest", "tests"],
        )
    }
    if patched is not None:
        modes["patched"] = ModeSummary(
            mode="patched",
            ran=True,
            counts=patched,
            duration=44.9,
            processes=2,
            exit_codes=[1, 1],
            command=["python", "-m", "greenpatch", "run", "-m", "pytest"],
        )
    return modes


def _passed(nodeid: str) -> TestVerdict:
    return TestVerdict(
        nodeid=nodeid,
        verdict="passed",
        plain="passed",
        patched="passed",
        duration_plain=0.01,
        duration_patched=0.012,
    )


def passing_result(python: str = "3.11.7") -> Result:
    """requests: every test passes, one fixed, one skipped; the probe cooperates."""
    return _result(
        "requests",
        "2.32.3",
        python,
        modes=_modes({"passed": 3, "failed": 1, "skipped": 1}, {"passed": 4, "skipped": 1}),
        tests=[
            _passed("tests/test_requests.py::TestRequests::test_get"),
            _passed("tests/test_requests.py::TestRequests::test_post[json]"),
            _passed("tests/test_utils.py::test_super_len"),
            TestVerdict(
                nodeid="tests/test_lowlevel.py::test_chunked",
                verdict="fixed",
                plain="failed",
                patched="passed",
                error="E   OSError: flaky server",
            ),
            TestVerdict(
                nodeid="tests/test_help.py::test_idna",
                verdict="skipped",
                plain="skipped",
                patched="skipped",
                reason="idna not installed",
            ),
        ],
        probe={
            "concurrency": 20,
            "delay": 0.2,
            "latencies": [0.2] * 20,
            "wall": 0.21,
            "factor": 19.05,
            "cooperative": True,
            "error": None,
        },
    )


def regressing_result() -> Result:
    """redis on 3.11: two confirmed regressions (a failure and a hang), and the rest."""
    return _result(
        "redis",
        "5.2.1",
        "3.11.7",
        modes=_modes({"passed": 6}, {"passed": 3, "failed": 1, "hung": 1, "error": 1}),
        tests=[
            _passed("tests/test_commands.py::TestRedisCommands::test_ping"),
            TestVerdict(
                nodeid="tests/test_connection.py::test_read_timeout[hiredis]",
                verdict="regression",
                plain="passed",
                patched="failed",
                error=(
                    "def test_read_timeout(r):\n>       assert r.ping()\n"
                    "E       redis.exceptions.TimeoutError: Timeout reading from socket"
                ),
                rerun={"plain": "passed", "patched": "failed"},
                duration_plain=0.2,
                duration_patched=5.0,
            ),
            TestVerdict(
                nodeid="tests/test_pubsub.py::TestPubSub::test_get_message_timeout",
                verdict="regression",
                plain="passed",
                patched="hung",
                error="hung: no result within 60 s; stacks taken, process group killed",
                stacks='Thread 0x7f (most recent call first):\n  File "socket.py", line 1 in recv',
                rerun={"plain": "passed", "patched": "hung"},
            ),
            TestVerdict(
                nodeid="tests/test_lock.py::test_blocking_timeout",
                verdict="flaky",
                plain="passed",
                patched="failed",
                flaky=True,
                rerun={"plain": "passed", "patched": "passed"},
            ),
            TestVerdict(
                nodeid="tests/test_connect.py::test_tcp_keepalive",
                verdict="expected",
                plain="passed",
                patched="error",
                reason="TCP_KEEPIDLE is not cooperative yet",
            ),
            TestVerdict(
                nodeid="tests/test_cluster.py::test_init",
                verdict="skipped",
                plain="deselected",
                patched="deselected",
                reason="deselected by the manifest: needs a Redis Cluster (6 nodes)",
            ),
        ],
        hot_spots=[
            {
                "frame": "/env/lib/python3.11/site-packages/hiredis/reader.py:40 in gets",
                "count": 7,
                "worst": 0.42,
                "total": 1.3,
                "tests": [
                    "tests/test_connection.py::test_read_timeout[hiredis]",
                    "tests/test_commands.py::TestRedisCommands::test_ping",
                    "tests/test_pubsub.py::TestPubSub::test_get_message_timeout",
                ],
                "stack": STACK,
            },
            {
                "frame": "/src/redis/tests/conftest.py:88 in _get_client",
                "count": 1,
                "worst": 0.15,
                "total": 0.15,
                "tests": [],
                "stack": [],
            },
        ],
        probe={
            "concurrency": 20,
            "delay": 0.2,
            "latencies": [0.2] * 20,
            "wall": 0.22,
            "factor": 18.2,
            "cooperative": True,
            "error": None,
        },
    )


def blocking_result() -> Result:
    """redis on 3.12: no regression, but the probe shows the calls run one by one."""
    return _result(
        "redis",
        "5.2.1",
        "3.12.8",
        modes=_modes({"passed": 2}, {"passed": 2}),
        tests=[
            _passed("tests/test_commands.py::TestRedisCommands::test_ping"),
            _passed("tests/test_commands.py::TestRedisCommands::test_set"),
        ],
        probe={
            "concurrency": 20,
            "delay": 0.2,
            "latencies": [0.2] * 20,
            "wall": 4.1,
            "factor": 0.98,
            "cooperative": False,
            "error": None,
        },
    )


def not_run_result() -> Result:
    """redis on 3.13: the harness could not start a server."""
    return _result(
        "redis",
        "5.2.1",
        "3.13.1",
        incomplete=True,
        not_run_reason="no redis-server on PATH (install it, or pass --service redis=URL)",
    )


def partial_result() -> Result:
    """requests on 3.12: interrupted during the patched run."""
    return _result(
        "requests",
        "2.32.3",
        "3.12.8",
        incomplete=True,
        finished_at="2026-11-20T10:02:00+00:00",
        modes=_modes({"passed": 2}, {"passed": 1}),
        tests=[
            _passed("tests/test_requests.py::TestRequests::test_get"),
            TestVerdict(
                nodeid="tests/test_utils.py::test_super_len",
                verdict="passed",
                plain="passed",
                patched=None,
            ),
        ],
        probe={"error": "probe interrupted", "wall": 1.5},
        notes=["interrupted (Ctrl-C): partial result"],
    )


def unmeasured_result() -> Result:
    """requests on 3.13: every test passes, but the manifest has no probe."""
    return _result(
        "requests",
        "2.32.3",
        "3.13.1",
        modes=_modes({"passed": 2}, {"passed": 2}),
        tests=[
            _passed("tests/test_requests.py::TestRequests::test_get"),
            _passed("tests/test_utils.py::test_super_len"),
        ],
        cooperation="not_measured",
        cooperation_reason="the manifest has no [probe]",
    )


def plain_only_result() -> Result:
    """requests on 3.11 run with --only plain: every test passed plain, none was compared."""
    return _result(
        "requests",
        "2.32.3",
        "3.11.7",
        modes=_modes({"passed": 1}, None),
        tests=[
            TestVerdict(
                nodeid="tests/test_requests.py::TestRequests::test_get",
                verdict="passed",
                plain="passed",
                patched=None,
            )
        ],
        cooperation="not_measured",
        cooperation_reason="--only plain: the probe runs with the patched run",
    )


def empty_result() -> Result:
    """A result with nothing in it: no modes, no tests (a harness bug or a hand edit)."""
    return _result("requests", "2.31.0", "3.11.7", environment={}, notes=[], reproduce="")


def matrix_results() -> list[Result]:
    """Every kind of cell once: the set behind the golden Markdown."""
    return [
        passing_result(),
        partial_result(),
        regressing_result(),
        blocking_result(),
        not_run_result(),
    ]


#: Test ids and errors are written by the libraries under test: treat them as hostile.
HOSTILE_ID = (
    'tests/t.py::test_x[<script>alert(1)</script>|`@team` #1 "><img src=x onerror=alert(2)>]'
)
HOSTILE_ERROR = (
    "E   AssertionError: <b>bold</b> ]]> & <!-- \x1b[31mred\x1b[0m \x00 nul\n"
    "E   <script>document.title='pwned'</script> | ``` @octocat"
)


def hostile_result() -> Result:
    return _result(
        "evil",
        "1.0",
        "3.11.7",
        modes=_modes({"passed": 1}, {"failed": 1}),
        tests=[
            TestVerdict(
                nodeid=HOSTILE_ID,
                verdict="regression",
                plain="passed",
                patched="failed",
                error=HOSTILE_ERROR,
                rerun={"plain": "passed", "patched": "failed"},
            )
        ],
        hot_spots=[
            {
                "frame": "<script>alert(3)</script>:1 in f",
                "count": 1,
                "worst": 0.2,
                "total": 0.2,
                "tests": [HOSTILE_ID],
                "stack": "<img src=x onerror=alert(4)>",
            }
        ],
        probe={
            "concurrency": 5,
            "factor": 1.0,
            "cooperative": False,
            "error": None,
            "delay": 0.1,
            "wall": 0.5,
        },
        environment={"<script>": "</script>"},
        notes=["<script>alert(5)</script>"],
    )


def golden_matrix() -> Matrix:
    """The matrix behind tests/reports/golden/summary.md: every section appears."""
    # With a result whose cooperation was not measured: its cell must differ from a pass.
    entries = [
        Entry(r, f"reports/{r.suite}-{r.version}-py{r.python[:4]}.json")
        for r in [*matrix_results(), unmeasured_result()]
    ]
    stale = passing_result()
    stale.finished_at = "2026-11-19T08:00:00+00:00"
    entries.insert(0, Entry(stale, "ci/job-3/requests-2.32.3-py3.11.json"))
    problems = [
        ResultError(
            "reports/redis-5.2.1-py3.9.json",
            "not valid JSON (corrupt or truncated?) at line 40 column 3: Expecting ',' delimiter",
        )
    ]
    return merge(entries, problems)
