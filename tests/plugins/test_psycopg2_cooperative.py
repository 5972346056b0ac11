"""The psycopg2 plugin: libpq's waits go through the hub (a wait callback).

Every script runs patched in a fresh interpreter against the session's private
PostgreSQL.  "Cooperative" is shown by other greenlets running while psycopg2
waits: 20 ``pg_sleep(0.3)`` overlapping, a ticker greenlet that keeps ticking;
the same ticker does not tick at all with the plugin off, which is what the
tests would see if the callback were not installed.
"""

from __future__ import annotations

import pytest

from tests.plugins.conftest import run_patched

pytest.importorskip("psycopg2")

CONNECT = """
import psycopg2, psycopg2.extensions, psycopg2.extras
import greenpatch.plugins.psycopg2 as plugin
"""


def test_twenty_concurrent_queries_overlap(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
def one():
    conn = psycopg2.connect(URL)
    try:
        conn.cursor().execute("SELECT pg_sleep(0.3)")
    finally:
        conn.close()

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
conn = psycopg2.connect(URL)
cursor = conn.cursor()
outcome, seconds, ticks = ticks_during(cursor.execute, "SELECT 42 FROM pg_sleep(0.5)")
report(
    callback=psycopg2.extensions.get_wait_callback() is plugin.wait_callback,
    outcome=outcome, ticks=ticks, rows=cursor.fetchall(),
)
"""
    )
    result = run_patched(script, postgresql_url)
    assert result["callback"] is True and result["outcome"] is None
    assert result["rows"] == [[42]]
    assert result["ticks"] >= 10  # about 50 at one per 10 ms


def test_with_the_plugin_off_a_query_blocks_every_greenlet(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
conn = psycopg2.connect(URL)
_, _, control = ticks_during(time.sleep, 0.2)
outcome, seconds, ticks = ticks_during(conn.cursor().execute, "SELECT pg_sleep(0.5)")
report(callback=repr(psycopg2.extensions.get_wait_callback()), control=control, ticks=ticks)
"""
    )
    result = run_patched(script, postgresql_url, flags="psycopg2=False")
    assert result["callback"] == "None"
    assert result["control"] > 0  # the ticker runs whenever the hub does...
    assert result["ticks"] == 0  # ...and not once while libpq waits in C


INTERRUPTED_QUERY = """
conn = psycopg2.connect(URL)
cursor = conn.cursor()
cursor.execute("SELECT pg_backend_pid()")
(pid,) = cursor.fetchone()

def sigint():
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGINT)

start = time.monotonic()
try:
    if {how!r} == "timeout":
        with greenpatch.Timeout(0.3):
            cursor.execute("SELECT pg_sleep(10)")
    else:
        greenpatch.spawn(sigint)
        cursor.execute("SELECT pg_sleep(10)")
except BaseException as exc:
    raised = type(exc).__name__
seconds = time.monotonic() - start
other = psycopg2.connect(URL)
check = other.cursor()
check.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,))
(still_running,) = check.fetchone()
check.execute("SELECT 1")
report(raised=raised, seconds=seconds, closed=conn.closed, running=still_running,
       fresh=check.fetchone())
"""


@pytest.mark.parametrize(
    ("how", "exception"), [("timeout", "Timeout"), ("ctrl-c", "KeyboardInterrupt")]
)
def test_an_interrupted_query_is_cancelled_on_the_server_before_the_exception_propagates(
    postgresql_url: str, how: str, exception: str
) -> None:
    result = run_patched(CONNECT + INTERRUPTED_QUERY.format(how=how), postgresql_url)
    assert result["raised"] == exception
    assert result["seconds"] < 3.0  # not the 10 s of the query
    # Already stopped when the exception reached us: it does not run on.
    assert result["running"] == 0
    # psycopg2 closes a connection whose wait callback raised (its green_panic).
    assert result["closed"] != 0
    assert result["fresh"] == [1]


def test_cancel_from_another_greenlet_ends_the_query_and_keeps_the_connection(
    postgresql_url: str,
) -> None:
    script = (
        CONNECT
        + """
conn = psycopg2.connect(URL)
cursor = conn.cursor()

def cancel():
    time.sleep(0.3)
    conn.cancel()

greenpatch.spawn(cancel)
start = time.monotonic()
outcome, seconds, ticks = ticks_during(cursor.execute, "SELECT pg_sleep(10)")
conn.rollback()
cursor.execute("SELECT 1")
report(outcome=type(outcome).__name__, seconds=seconds, ticks=ticks, again=cursor.fetchone())
"""
    )
    result = run_patched(script, postgresql_url)
    assert result["outcome"] == "QueryCanceled"
    assert result["seconds"] < 3.0 and result["ticks"] > 0
    assert result["again"] == [1]


def test_listen_and_notify_between_greenlets(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
import select
listener = psycopg2.connect(URL)
listener.autocommit = True
listener.cursor().execute("LISTEN greenpatch_test")

def notify():
    time.sleep(0.2)
    sender = psycopg2.connect(URL)
    sender.autocommit = True
    sender.cursor().execute("NOTIFY greenpatch_test, 'hello'")
    sender.close()

def receive():
    while not listener.notifies:
        if select.select([listener], [], [], 10) == ([], [], []):
            raise RuntimeError("no notification in 10 s")
        listener.poll()
    return listener.notifies.pop()

greenpatch.spawn(notify)
got, seconds, ticks = ticks_during(receive)
report(channel=got.channel, payload=got.payload, ticks=ticks)
"""
    )
    result = run_patched(script, postgresql_url)
    assert (result["channel"], result["payload"]) == ("greenpatch_test", "hello")
    assert result["ticks"] > 0


def test_copy_methods_need_the_callback_lifted(postgresql_url: str) -> None:
    script = (
        CONNECT
        + """
import io
conn = psycopg2.connect(URL)
cursor = conn.cursor()
cursor.execute("CREATE TEMP TABLE t (n int, word text)")
try:
    cursor.copy_expert("COPY t TO STDOUT", io.StringIO())
    refused = None
except psycopg2.ProgrammingError as exc:
    refused = str(exc)
    conn.rollback()
    cursor.execute("CREATE TEMP TABLE t (n int, word text)")
with plugin.without_wait_callback():
    inside = psycopg2.extensions.get_wait_callback()
    cursor.copy_from(io.StringIO("".join(f"{n}\\tw{n}\\n" for n in range(1000))), "t")
    out = io.StringIO()
    cursor.copy_expert("COPY (SELECT sum(n), max(word) FROM t) TO STDOUT", out)
report(
    refused=refused, inside=repr(inside), copied=out.getvalue(),
    back=psycopg2.extensions.get_wait_callback() is plugin.wait_callback,
)
"""
    )
    result = run_patched(script, postgresql_url)
    assert "cannot be used with an asynchronous callback" in result["refused"]
    assert result["inside"] == "None"
    assert result["copied"] == "499500\tw999\n"
    assert result["back"] is True


SILENT_SERVER = """
import socket
silent = socket.create_server(("127.0.0.1", 0))  # accepts (in the kernel), never answers
port = silent.getsockname()[1]
"""


def test_connect_waits_on_the_hub_and_keeps_connect_timeout(postgresql_url: str) -> None:
    script = (
        CONNECT
        + SILENT_SERVER
        + """
dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=1"
outcome, seconds, ticks = ticks_during(psycopg2.connect, dsn)
report(outcome=repr(outcome), seconds=seconds, ticks=ticks)
"""
    )
    result = run_patched(script, postgresql_url)
    # libpq enforces connect_timeout only when it blocks; the plugin does it in green mode.
    assert "OperationalError" in result["outcome"] and "timeout expired" in result["outcome"]
    assert 0.9 < result["seconds"] < 5.0
    assert result["ticks"] > 10


def test_a_wait_callback_set_before_is_kept_with_a_warning(postgresql_url: str) -> None:
    script = """
import json, warnings
import psycopg2.extensions, psycopg2.extras
psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import greenpatch
    greenpatch.patch_all()  # psycopg2 is imported: the plugin applies now
kept = psycopg2.extensions.get_wait_callback() is psycopg2.extras.wait_select
messages = [f"{w.category.__name__}: {w.message}" for w in caught]
print(json.dumps({"kept": kept, "warnings": messages}))
"""
    result = run_patched(script, postgresql_url, prelude=False)
    assert result["kept"] is True
    (message,) = [m for m in result["warnings"] if "wait callback" in m]
    assert message.startswith("GreenpatchWarning: psycopg2 already has a wait callback")
    assert "psycopg2.extras.wait_select" in message
