"""The gevent-shaped modules: names, monkey's flags, pywsgi's arguments, queue.peek."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import greenpatch
from greenpatch.queue import Empty, Queue

#: What gevent's tutorial and everyday gevent code import from the top level.
TOP_LEVEL = (
    "Greenlet GreenletExit Timeout spawn spawn_later spawn_raw joinall killall kill sleep "
    "idle getcurrent with_timeout wait iwait get_hub reinit signal_handler fork"
).split()

#: Module -> names gevent users import from it.
MODULES = {
    "monkey": "patch_all patch_socket patch_select patch_thread patch_time patch_os patch_ssl "
    "patch_subprocess patch_signal patch_queue patch_dns patch_sys patch_builtins "
    "is_module_patched is_object_patched get_original",
    "queue": "Queue JoinableQueue LifoQueue PriorityQueue SimpleQueue Channel Empty Full",
    "pool": "Pool Group PoolFull",
    "event": "Event AsyncResult",
    "lock": "Semaphore BoundedSemaphore RLock",
    "local": "local",
    "socket": "socket create_connection socketpair wait_read wait_write AF_INET error",
    "select": "select poll error",
    "subprocess": "Popen PIPE STDOUT CalledProcessError check_output call run",
    "signal": "signal getsignal SIGUSR1",
    "pywsgi": "WSGIServer WSGIHandler",
    "server": "StreamServer DatagramServer",
}


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_names(name):
    assert getattr(greenpatch, name) is not None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_names(module):
    imported = importlib.import_module(f"greenpatch.{module}")
    assert getattr(greenpatch, module) is imported
    for name in MODULES[module].split():
        assert getattr(imported, name) is not None, f"greenpatch.{module}.{name}"


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_monkey_patch_all_takes_every_gevent_flag():
    out = _run(
        """
        from greenpatch import monkey
        print(monkey.patch_all(sys=True, Event=True, builtins=True, contextvars=True,
                               aggressive=True))
        import threading
        print(monkey.is_module_patched("threading"), monkey.is_module_patched("socket"))
        """
    )
    assert out.split() == ["True", "True", "True"]


def test_monkey_refuses_event_false_with_a_reason():
    out = _run(
        """
        from greenpatch import monkey
        try:
            monkey.patch_all(Event=False)
        except ValueError as exc:
            print(exc)
        print(monkey.is_anything_patched())
        monkey.patch_all(Event=False, thread=False)
        print(monkey.is_module_patched("threading"), monkey.is_module_patched("socket"))
        """
    )
    assert "threading.Event cooperative" in out and "thread=False" in out
    assert out.split()[-3:] == ["False", "False", "True"]


def test_monkey_patch_socket_patches_only_socket():
    out = _run(
        """
        from greenpatch import monkey
        monkey.patch_socket(dns=False)
        print(monkey.is_module_patched("socket"), monkey.is_module_patched("dns"),
              monkey.is_module_patched("time"))
        """
    )
    assert out.split() == ["True", "False", "False"]


def test_pywsgi_takes_gevents_arguments_and_refuses_handler_classes():
    from greenpatch.pywsgi import WSGIHandler, WSGIServer

    def app(environ, start_response):
        return []

    server = WSGIServer(("127.0.0.1", 0), app, 20, 5, None, handler_class=WSGIHandler)
    assert server.backlog == 20 and server.pool.size == 5  # type: ignore[attr-defined]
    assert server.access_log is None

    class Custom(WSGIHandler):
        pass

    with pytest.raises(TypeError, match="WebSocketApp"):
        WSGIServer(("127.0.0.1", 0), app, handler_class=Custom)
    with pytest.raises(TypeError, match=r"greenpatch\.server"):
        WSGIServer(("127.0.0.1", 0), app, error_log=None)


def test_queue_peek_leaves_the_item_and_wakes_the_next_getter():
    queue: Queue[str] = Queue()
    with pytest.raises(Empty):
        queue.peek(block=False)
    peeker = greenpatch.spawn(queue.peek)
    getter = greenpatch.spawn(queue.get)
    greenpatch.sleep(0)
    queue.put("item")
    assert peeker.get() == "item"
    assert getter.get() == "item"  # woken although the peek took the first turn
    assert queue.empty()
    with pytest.raises(Empty):
        queue.peek(timeout=0.01)


def test_cancel_wait_names_the_greenpatch_way():
    from greenpatch import socket

    with pytest.raises(TypeError, match="cancel_fd_waits"):
        socket.cancel_wait(object())
