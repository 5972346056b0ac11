"""WebSocket (RFC 6455) as a WSGI application on ``WSGIServer``.

    def echo(ws, environ):
        for message in ws:          # str for text, bytes for binary
            ws.send(message)

    WSGIServer(("127.0.0.1", 8000), WebSocketApp(echo)).serve_forever()

The handshake is checked here (GET, ``Upgrade: websocket``, version 13, a
16-byte base64 key) and answered through the ``greenpatch.upgrade`` hook that
``WSGIServer`` puts in the environ of requests asking to upgrade; after the 101
the connection belongs to the handler until it returns, then it is closed.

Protocol rules enforced (each closes the connection with the code in brackets):
client frames must be masked [1002], no reserved bits (no extension is
negotiated) and no reserved opcode [1002], control frames at most 125 bytes and never fragmented
[1002], no continuation without a start and no new message inside a fragmented
one [1002], text must be UTF-8 [1007], a message over ``max_message_size``
[1009].  Pings are answered with pongs automatically; a close frame is echoed
and ends the iteration.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterator
from typing import Any, Callable

from greenpatch.hub.locks import Lock
from greenpatch.server._http import ClientGone, HTTPError, Reader

__all__ = ["WebSocket", "WebSocketApp", "WebSocketError"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_KNOWN_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})
#: Close codes a peer may send (RFC 6455 7.4): the defined ones and 3000-4999.
_VALID_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class WebSocketError(Exception):
    """The peer broke the protocol; ``code`` is the close code sent to it."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def _unmask(data: bytes, mask: bytes) -> bytes:
    # XOR as one big integer: C-speed for any length, no per-byte Python loop.
    size = len(data)
    if not size:
        return data
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


class WebSocket:
    """One server-side WebSocket connection: ``receive``, ``send``, ``ping``, ``close``."""

    def __init__(
        self,
        sock: Any,
        reader: Reader,
        max_message_size: int | None,
        send_timeout: float | None = None,
    ) -> None:
        self._sock = sock
        self._reader = reader
        reader.timeout = None  # an idle WebSocket is normal; pings are the app's call
        # Not WSGIServer's read_timeout: a large message to a slow peer is
        # legitimate here.  send_timeout bounds each frame's send instead (None:
        # as long as it takes).
        settimeout = getattr(sock, "settimeout", None)
        if settimeout is not None:
            settimeout(send_timeout)
        self.max_message_size = max_message_size
        self._send_lock = Lock()
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""

    # -- receiving ---------------------------------------------------------------
    def _read_frame(self) -> tuple[bool, int, bytes]:
        read = self._reader.read_exact
        first, second = read(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            raise WebSocketError(1002, "reserved bits set without a negotiated extension")
        if not second & 0x80:
            raise WebSocketError(1002, "client frames must be masked")
        length = second & 0x7F
        if opcode not in _KNOWN_OPCODES:
            # 3-7 and 11-15 are reserved: an 11 must not pass as a data frame.
            raise WebSocketError(1002, f"unknown opcode {opcode}")
        if opcode >= 8 and (length > 125 or not fin):
            raise WebSocketError(1002, "control frames are at most 125 bytes, unfragmented")
        if length == 126:
            (length,) = struct.unpack("!H", read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", read(8))
            if length >> 63:
                raise WebSocketError(1002, "64-bit payload length with its high bit set")
        limit = self.max_message_size
        if limit is not None and length > limit:
            raise WebSocketError(1009, "message too big")
        mask = read(4)
        return fin, opcode, _unmask(read(length), mask)

    def receive(self) -> str | bytes | None:
        """The next message (str for text, bytes for binary); None once closed."""
        if self.closed:
            return None
        try:
            return self._receive()
        except WebSocketError as exc:
            self._fail(exc.code, exc.reason)
        except (ClientGone, HTTPError, OSError):
            self._gone()
        return None

    def _receive(self) -> str | bytes | None:
        parts: list[bytes] = []
        size = 0
        message_opcode = None
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self._on_close(payload)
                return None
            if opcode == OP_CONTINUATION:
                if message_opcode is None:
                    raise WebSocketError(1002, "continuation frame without a message")
            elif message_opcode is not None:
                raise WebSocketError(1002, "a new message inside a fragmented one")
            else:
                message_opcode = opcode
            size += len(payload)
            if self.max_message_size is not None and size > self.max_message_size:
                raise WebSocketError(1009, "message too big")
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if message_opcode == OP_BINARY:
                    return data
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    raise WebSocketError(1007, "text message is not valid UTF-8") from None

    def _on_close(self, payload: bytes) -> None:
        code = 1005  # "no status received" (never sent on the wire)
        reason = ""
        if len(payload) == 1:
            self._fail(1002, "close frame with a one-byte payload")
            return
        if payload:
            (code,) = struct.unpack("!H", payload[:2])
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                self._fail(1007, "close reason is not valid UTF-8")
                return
            if code not in _VALID_CODES and not 3000 <= code <= 4999:
                self._fail(1002, f"invalid close code {code}")
                return
        self.close_code, self.close_reason = code, reason
        self.close(1000 if code == 1005 else code)

    def __iter__(self) -> Iterator[str | bytes]:
        while True:
            message = self.receive()
            if message is None:
                return
            yield message

    # -- sending -----------------------------------------------------------------
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        # Frames from several greenlets must not interleave on the wire.
        with self._send_lock:
            try:
                self._sock.sendall(head + payload if length < 65536 else head)
                if length >= 65536:
                    self._sock.sendall(payload)
            except TimeoutError:
                # Part of a frame may be on the wire: the stream can carry no
                # other frame, not even a close.
                self._gone()
                raise WebSocketError(
                    1006, "the peer did not take the message within send_timeout"
                ) from None

    def send(self, message: str | bytes) -> None:
        """Send a text (str) or binary (bytes) message."""
        if self.closed:
            raise WebSocketError(1006, "the WebSocket is closed")
        if isinstance(message, str):
            self._send_frame(OP_TEXT, message.encode("utf-8"))
        else:
            self._send_frame(OP_BINARY, bytes(message))

    def ping(self, payload: bytes = b"") -> None:
        if len(payload) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        self._send_frame(OP_PING, payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once) and mark the connection closed."""
        if self.closed:
            return
        self.closed = True
        if self.close_code is None:
            self.close_code = code
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", code) + _close_reason_bytes(reason))
        except (OSError, WebSocketError):
            pass

    def _fail(self, code: int, reason: str) -> None:
        self.close_reason = reason
        self.close(code, reason)

    def _gone(self) -> None:
        self.closed = True
        if self.close_code is None:
            self.close_code = 1006  # abnormal closure: no close frame


Handler = Callable[[WebSocket, dict[str, Any]], Any]


class WebSocketApp:
    """A WSGI application that upgrades requests to WebSockets and runs ``handler(ws, environ)``.

    ``fallback``: a WSGI app for requests that are not WebSocket handshakes
    (default: answer 400).  ``max_message_size``: bytes per message (close 1009).
    ``send_timeout``: seconds a peer has to take each frame sent to it; after
    that ``send`` raises ``WebSocketError(1006)`` and the connection is dropped
    (default None: a peer that stops reading holds the handler for ever).
    """

    def __init__(
        self,
        handler: Handler,
        fallback: Callable[..., Any] | None = None,
        max_message_size: int | None = 16 * 1024 * 1024,
        send_timeout: float | None = None,
    ) -> None:
        self.handler = handler
        self.fallback = fallback
        self.max_message_size = max_message_size
        self.send_timeout = send_timeout

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        upgrade = environ.get("greenpatch.upgrade")
        wants = "websocket" in environ.get("HTTP_UPGRADE", "").lower()
        if not wants or upgrade is None:
            if self.fallback is not None:
                return self.fallback(environ, start_response)
            return _refuse(start_response, "400 Bad Request", "expected a WebSocket handshake")
        problem = _check_handshake(environ)
        if problem is not None:
            return _refuse(start_response, *problem)
        sock, reader = upgrade(
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept_key(environ["HTTP_SEC_WEBSOCKET_KEY"])),
            ]
        )
        ws = WebSocket(sock, reader, self.max_message_size, self.send_timeout)
        try:
            self.handler(ws, environ)
        finally:
            ws.close()
        return []


def _check_handshake(environ: dict[str, Any]) -> tuple[str, str] | None:
    if environ.get("REQUEST_METHOD") != "GET":
        return "405 Method Not Allowed", "WebSocket handshakes use GET"
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        return "426 Upgrade Required", "only WebSocket version 13 is supported"
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (ValueError, binascii.Error):
        return "400 Bad Request", "malformed Sec-WebSocket-Key"
    return None


def _refuse(start_response: Callable[..., Any], status: str, detail: str) -> list[bytes]:
    body = detail.encode() + b"\n"
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    if status.startswith("426"):
        headers.append(("Sec-WebSocket-Version", "13"))
    start_response(status, headers)
    return [body]


def _close_reason_bytes(reason: str) -> bytes:
    """``reason`` in UTF-8, cut to the 123 bytes a close frame holds on a character
    boundary (a reason cut inside a character is invalid UTF-8, which the peer
    must answer by failing the connection)."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= 123:
        return encoded
    return encoded[:123].decode("utf-8", "ignore").encode("utf-8")
