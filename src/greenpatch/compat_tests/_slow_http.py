"""A loopback HTTP server that answers every GET after a fixed delay (the probes' target).

    python _slow_http.py --delay 0.3        # prints "port NNNNN", then serves

It is run as a plain, *unpatched* Python process, by path rather than with ``-m``,
so that it imports nothing of greenpatch: the server must not share a hub (or
even an interpreter) with the client being measured, or its own sleeps would
count against the client.  It exits when its standard input reaches end of file,
which happens when the process that started it dies for any reason; no server is
left behind by a probe that crashed or was killed.

Standard library only.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"


class _SlowHandler(BaseHTTPRequestHandler):
    delay = 0.3
    body = b"slow ok\n"

    def do_GET(self) -> None:
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr would drown the probe's own errors


class _SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops the SYNs of a burst of 20 connects; the
    # client then retransmits after a second and the probe measures the kernel's
    # retry timer instead of the library.
    request_queue_size = 256


def serve(delay: float, port: int = 0) -> None:
    """Serve until stdin is closed; prints ``port N`` once listening."""
    handler = type("Handler", (_SlowHandler,), {"delay": delay})
    server = _SlowServer((LOOPBACK, port), handler)
    # A short poll interval: shutdown() waits for one, and the probe waits for us.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="slow-http", daemon=True
    )
    thread.start()
    print(f"port {server.server_address[1]}", flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Answer every GET on 127.0.0.1 after a fixed delay."
    )
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    args = parser.parse_args(argv)
    serve(args.delay, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
