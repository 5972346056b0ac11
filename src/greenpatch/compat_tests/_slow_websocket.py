"""A loopback WebSocket server that echoes every message after a fixed delay.

    python _slow_websocket.py --delay 0.3      # prints "port NNNNN", then serves

The target of the websocket-client probe (``library_probes/websocket_client.py``),
built like ``_slow_http.py`` and for the same reasons: run as a plain,
*unpatched* Python process, by path, so that it imports nothing of greenpatch
and its sleeps never count against the client being measured; it exits when
its standard input reaches end of file, i.e. when the process that started it
dies for any reason.

It speaks just enough of RFC 6455 for a client: the opening handshake (answered
at once), masked frames from the client, fragmented messages, ping (answered
with a pong at once) and close (answered with a close).  Each complete text or
binary message comes back, same opcode and payload, ``delay`` seconds after it
arrived: the client's ``recv()`` is the call that waits.

Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import socketserver
import struct
import sys
import threading
import time

LOOPBACK = "127.0.0.1"
# RFC 6455, section 1.3: appended to the client's key before hashing.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER = 64 * 1024
_MAX_MESSAGE = 1024 * 1024
_OP_CONTINUATION, _OP_TEXT, _OP_BINARY = 0x0, 0x1, 0x2
_OP_CLOSE, _OP_PING, _OP_PONG = 0x8, 0x9, 0xA


class _Closed(Exception):
    """The peer went away, or broke the protocol: end this connection."""


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` answer to a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.strip() + _ACCEPT_GUID).digest())


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (a server never masks)."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


class _EchoHandler(socketserver.BaseRequestHandler):
    delay = 0.3

    def handle(self) -> None:
        self._buffer = b""
        try:
            self._handshake()
            self._echo()
        except (_Closed, OSError):
            pass

    # -- reading ------------------------------------------------------------------
    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self.request.recv(65536)
            if not chunk:
                raise _Closed()
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._read(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read(8))
        if not second & 0x80 or size > _MAX_MESSAGE:
            raise _Closed()  # client frames must be masked; and bounded here
        mask = self._read(4)
        payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(self._read(size)))
        return bool(first & 0x80), first & 0x0F, payload

    # -- the protocol ---------------------------------------------------------------
    def _handshake(self) -> None:
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEADER:
                raise _Closed()
            chunk = self.request.recv(4096)
            if not chunk:
                raise _Closed()
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        key = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if not key:
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            raise _Closed()
        self.request.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
        )

    def _echo(self) -> None:
        opcode, parts = _OP_TEXT, list[bytes]()
        while True:
            final, frame_opcode, payload = self._read_frame()
            if frame_opcode == _OP_CLOSE:
                # Echo the status code (if any) and end the connection.
                self.request.sendall(encode_frame(_OP_CLOSE, payload[:2]))
                return
            if frame_opcode == _OP_PING:
                self.request.sendall(encode_frame(_OP_PONG, payload))
                continue
            if frame_opcode == _OP_PONG:
                continue
            if frame_opcode != _OP_CONTINUATION:
                opcode, parts = frame_opcode, list[bytes]()
            parts.append(payload)
            if final:
                time.sleep(self.delay)
                self.request.sendall(encode_frame(opcode, b"".join(parts)))


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A burst of 20 connects must not overflow the accept queue (see _slow_http.py).
    request_queue_size = 256


def serve(delay: float, port: int = 0) -> None:
    """Serve until stdin is closed; prints ``port N`` once listening."""
    handler = type("Handler", (_EchoHandler,), {"delay": delay})
    server = _EchoServer((LOOPBACK, port), handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="slow-websocket", daemon=True
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
        description="Echo every WebSocket message on 127.0.0.1 after a fixed delay."
    )
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before each echo")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    args = parser.parse_args(argv)
    serve(args.delay, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
