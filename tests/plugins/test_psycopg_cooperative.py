"""The psycopg (3) plugin: the sync API's wait functions wait on the hub.

Every script runs patched in a fresh interpreter against the session's private
PostgreSQL.  Without the plugin psycopg picks its C wait function (``wait_c``,
its own ``poll()``), and the ticker greenlet does not tick once during a query:
the last test shows it, so the others would fail without the plugin.
"""

from __future__ import annotations

import sys

import pytest

from greenpatch.compat_tests.library_probes import psycopg as psycopg_probe
from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError, run_probe
from tests.plugins.conftest import run_patched

pytest.importorskip("psycopg")

CONNECT = """
import psycopg, psycopg.waiting
import greenpatch.plugins.psycopg as plugin
"""


def test_twenty_concurrent_queries_overlap(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
def one():
    with psycopg.connect(URL) as conn:
        conn.execute("SELECT pg_sleep(0.3)")

start = time.monotonic()
greenpatch.joinall([greenpatch.spawn(one) for _ in range(20)], raise_error=True)
report(wall=time.monotonic() - start)
"""
    )
    # One after the other they take 6 s.
    assert run_patched(script, postgresql_url)["wall"] < 3.0


def test_a_ticker_ticks_while_a_query_waits(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
conn = psycopg.connect(URL)
query = "SELECT 42 FROM pg_sleep(0.5)"
outcome, seconds, ticks = ticks_during(lambda: conn.execute(query).fetchall())
report(
    waits=[psycopg.waiting.wait is plugin.wait, psycopg.waiting.wait_conn is plugin.wait_conn],
    outcome=outcome, ticks=ticks,
)
"""
    )
    result = run_patched(script, postgresql_url)
    assert result["waits"] == [True, True]
    assert result["outcome"] == [[42]]
    assert result["ticks"] >= 10  # about 50 at one per 10 ms


def test_a_timeout_cancels_the_query_and_the_connection_stays_usable(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
conn = psycopg.connect(URL, autocommit=True)
start = time.monotonic()
try:
    with greenpatch.Timeout(0.3):
        conn.execute("SELECT pg_sleep(10)")
except greenpatch.Timeout:
    raised = "Timeout"
seconds = time.monotonic() - start
report(raised=raised, seconds=seconds, status=conn.info.transaction_status.name,
       again=conn.execute("SELECT 1").fetchone())
"""
    )
    result = run_patched(script, postgresql_url)
    assert result["raised"] == "Timeout" and result["seconds"] < 3.0
    # psycopg cancelled the query and read its end: idle, not stuck ACTIVE...
    assert result["status"] == "IDLE"
    # ...and the same connection answers the next query.
    assert result["again"] == [1]


def test_cancel_from_another_greenlet_ends_the_query(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
conn = psycopg.connect(URL, autocommit=True)

def cancel():
    time.sleep(0.3)
    conn.cancel_safe()

greenpatch.spawn(cancel)
outcome, seconds, ticks = ticks_during(conn.execute, "SELECT pg_sleep(10)")
report(outcome=type(outcome).__name__, seconds=seconds, ticks=ticks,
       again=conn.execute("SELECT 1").fetchone())
"""
    )
    result = run_patched(script, postgresql_url)
    assert result["outcome"] == "QueryCanceled"
    assert result["seconds"] < 3.0 and result["ticks"] > 0
    assert result["again"] == [1]


def test_notifies_wait_while_another_greenlet_notifies(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
listener = psycopg.connect(URL, autocommit=True)
listener.execute("LISTEN greenpatch_test")

def notify():
    time.sleep(0.2)
    with psycopg.connect(URL, autocommit=True) as sender:
        sender.execute("NOTIFY greenpatch_test, 'hello'")

greenpatch.spawn(notify)
got, seconds, ticks = ticks_during(lambda: list(listener.notifies(timeout=10, stop_after=1)))
report(got=[(n.channel, n.payload) for n in got], ticks=ticks)
"""
    )
    result = run_patched(script, postgresql_url)
    assert result["got"] == [["greenpatch_test", "hello"]]
    assert result["ticks"] > 0


def test_copy_in_and_out_while_others_run(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
conn = psycopg.connect(URL, autocommit=True)
conn.execute("CREATE TEMP TABLE t (n int)")
with conn.cursor().copy("COPY t FROM STDIN") as copy:
    for n in range(10000):
        copy.write_row((n,))

def copy_out():
    # The server sends each row after a 0.1 s sleep: the reads wait.
    query = "COPY (SELECT n, pg_sleep(0.1) FROM generate_series(1, 5) n) TO STDOUT"
    with conn.cursor().copy(query) as copy:
        return [row[0] for row in copy.rows()]

rows, seconds, ticks = ticks_during(copy_out)
report(count=conn.execute("SELECT count(*), sum(n) FROM t").fetchone(), rows=rows, ticks=ticks)
"""
    )
    result = run_patched(script, postgresql_url)
    assert result["count"] == [10000, 49995000]
    assert result["rows"] == ["1", "2", "3", "4", "5"]
    assert result["ticks"] >= 10


def test_connect_waits_on_the_hub_until_connect_timeout(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
import socket
silent = socket.create_server(("127.0.0.1", 0))  # accepts (in the kernel), never answers
port = silent.getsockname()[1]
dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=1"
outcome, seconds, ticks = ticks_during(psycopg.connect, dsn)
report(outcome=repr(outcome), seconds=seconds, ticks=ticks)
"""
    )
    result = run_patched(script, postgresql_url)
    assert "ConnectionTimeout" in result["outcome"]
    assert 0.9 < result["seconds"] < 5.0
    assert result["ticks"] > 10


def test_with_the_plugin_off_a_query_blocks_every_greenlet(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
conn = psycopg.connect(URL)
_, _, control = ticks_during(time.sleep, 0.2)
outcome, seconds, ticks = ticks_during(conn.execute, "SELECT pg_sleep(0.5)")
report(wait=psycopg.waiting.wait.__name__, control=control, ticks=ticks)
"""
    )
    result = run_patched(script, postgresql_url, flags="psycopg=False")
    assert result["wait"] == "wait_c"  # psycopg's own choice under greenpatch
    assert result["control"] > 0  # the ticker runs whenever the hub does...
    assert result["ticks"] == 0  # ...and not once while wait_c polls in C


def test_a_psycopg_imported_before_patching_is_patched_at_once(postgresql_url: str) -> None:
    script = """
import json, os
import psycopg, psycopg.connection, psycopg.waiting
chosen = psycopg.waiting.wait.__name__
import greenpatch
greenpatch.patch_all()
import greenpatch.plugins.psycopg as plugin
print(json.dumps({
    "before": chosen,
    "after": psycopg.waiting.wait is plugin.wait,
    "interruptions": [e.__name__ for e in psycopg.connection._INTERRUPTED],
}))
"""
    result = run_patched(script, postgresql_url, prelude=False)
    assert result["before"] == "wait_c" and result["after"] is True
    assert result["interruptions"] == [
        "KeyboardInterrupt",
        "SystemExit",
        "Timeout",
        "GreenletExit",
    ]


# -- the harness's probe for psycopg 3 (no suite manifest: its sdist has no tests) ----
PROBE = "greenpatch.compat_tests.library_probes.psycopg:probe"


def test_the_probe_without_a_service_says_what_it_needs() -> None:
    with pytest.raises(ProbeSetupError, match="--service postgresql=URL"):
        psycopg_probe.probe(ProbeContext(delay=0.3))
    mysql = ProbeContext(delay=0.3, service_urls={"postgresql": "mysql://root@127.0.0.1/x"})
    with pytest.raises(ProbeSetupError, match="postgresql://"):
        psycopg_probe.probe(mysql)


@pytest.mark.parametrize(("without", "cooperative"), [((), True), (("psycopg",), False)])
def test_the_probe_cooperates_with_the_plugin_and_blocks_without(
    postgresql_url: str, without: tuple[str, ...], cooperative: bool
) -> None:
    result = run_probe(
        sys.executable,
        PROBE,
        concurrency=10,
        delay=0.2,
        service_urls={"postgresql": postgresql_url},
        http=False,
        without=without,
    )
    assert result["error"] is None, result
    assert result["cooperative"] is cooperative, result
