"""The HTTP core of the fake servers: recording, Go-like request decoding, chunked replies.

What every fake shares, whatever API it speaks: a threaded HTTP/1.1 server that can drop its
connections, a handler base that records each request, writes chunked or sized responses,
hangs up (FIN or RST) on cue and waits on gates while watching for the client to go away.
Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .testing_steps import JSON_UTF8, Gate, Reply, _dumps

_POLL = 0.01  # how often a blocked handler re-checks its gate, the client socket and stop()
_THINK_LEVELS = ("low", "medium", "high", "max")


# --------------------------------------------------------------------------------------------
# Recording


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    #: Path with query string, as sent (``/api/chat``).
    path: str
    headers: dict[str, str]
    body: bytes
    #: ``(host, port)`` of the client; the same port means the same (kept-alive) connection.
    client: tuple[str, int] = ("", 0)

    @property
    def client_port(self) -> int:
        """The client's port: equal ports mean the requests shared one kept-alive connection."""
        return self.client[1]

    def json(self) -> Any:
        """The parsed body, or ``None`` when it is empty or not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header value, looked up case-insensitively."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default


# --------------------------------------------------------------------------------------------
# Request decoding (Go-like error texts)


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds.get(type(value), "value")


def _go_syntax_error(exc: json.JSONDecodeError) -> str:
    """Roughly what Go's encoding/json says for the same malformed input."""
    doc, pos = exc.doc, exc.pos
    if pos >= len(doc.rstrip()) or exc.msg.startswith("Unterminated"):
        return "unexpected EOF"
    char = doc[pos]
    quoted = "'\\''" if char == "'" else f"'{char}'"
    where = {
        "Expecting value": "looking for beginning of value",
        "Expecting property name enclosed in double quotes": (
            "looking for beginning of object key string"
        ),
        "Expecting ',' delimiter": "after object key:value pair",
        "Expecting ':' delimiter": "after object key",
        "Extra data": "after top-level value",
        "Invalid control character at": "in string literal",
    }.get(exc.msg)
    if where is None:
        return f"invalid character {quoted} in string escape code"
    return f"invalid character {quoted} {where}"


def _decode(body: bytes, go_type: str) -> tuple[dict[str, Any], str | None]:
    """The request object, or ``({}, error text)`` as Ollama's ShouldBindJSON would fail."""
    if not body.strip():
        return {}, "missing request body"
    try:
        value = json.loads(body.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        return {}, _go_syntax_error(exc)
    if value is None:
        return {}, None
    if not isinstance(value, dict):
        return {}, f"json: cannot unmarshal {_go_kind(value)} into Go value of type api.{go_type}"
    for key, kind, go_kind in (
        ("model", str, "string"),
        ("prompt", str, "string"),
        ("stream", bool, "bool"),
        ("messages", list, "[]api.Message"),
    ):
        if value.get(key) is not None and not isinstance(value[key], kind):
            return value, (
                f"json: cannot unmarshal {_go_kind(value[key])} into Go struct field "
                f"{go_type}.{key} of type {go_kind}"
            )
    think = value.get("think")
    if think is not None and not isinstance(think, bool):
        if not isinstance(think, str):
            return value, "think must be a boolean or string"
        if think not in _THINK_LEVELS:
            return value, (
                f"invalid think value: {json.dumps(think)} "
                '(must be "high", "medium", "low", "max", true, or false)'
            )
    return value, None


# --------------------------------------------------------------------------------------------
# The HTTP server


class _AbortError(Exception):
    """The reply cannot go on: the client hung up, the script closed it, or stop() was called."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], fake: Any, handler: type[BaseHTTPRequestHandler]
    ) -> None:
        self.fake = fake
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), slow on some machines.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.stopping.is_set() or isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away, or our own shutdown: nothing to report
        super().handle_error(request, client_address)


class HttpHandler(BaseHTTPRequestHandler):
    """Records every request, then hands it to ``_route``; the plumbing replies are built of."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests should not spray access logs on stderr."""

    def version_string(self) -> str:
        return self.server_version

    def _route(self, path: str, body: bytes) -> None:
        raise NotImplementedError

    def _dispatch(self) -> None:
        """Every ``do_<METHOD>``: record the request, then route it (405/404 as Ollama)."""
        self._started = False
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        fake = self.server.fake
        fake._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers=dict(self.headers.items()),
                body=body,
                client=(str(self.client_address[0]), int(self.client_address[1])),
            )
        )
        path = urlsplit(self.path).path
        try:
            scripted = fake._next_reply_for(path)
            if scripted is not None:
                self._serve_scripted(scripted)
            else:
                self._route(path, body)
        except _AbortError:
            self.close_connection = True

    def _serve_scripted(self, reply: Reply) -> None:
        """A reply scripted for this path: fixed, an echo of the request, or a hang-up."""
        if reply.before is not None:
            self._wait(reply.before)
        if reply.mode == "hangup":
            self._hang_up()
        elif reply.mode == "echo":
            self._send(reply.status, self._echo(), reply.content_type, reply.headers)
        else:
            self._send(reply.status, reply.body or b"", reply.content_type, reply.headers)

    def _echo(self) -> bytes:
        """An HTML page showing the request line and headers, as debugging proxies send."""
        lines = [f"{self.command} {self.path}"] + [f"{k}: {v}" for k, v in self.headers.items()]
        return ("<html><body><pre>" + "\n".join(lines) + "</pre></body></html>").encode()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError:
            self._client_gone()

    def _client_gone(self) -> None:
        if not self.server.stopping.is_set():
            self.server.fake._note_hangup()
        raise _AbortError

    def _start(self, status: int, content_type: str, headers: Mapping[str, str]) -> None:
        """Send the status line and headers of a chunked response."""
        self._started = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        try:
            self.end_headers()
        except OSError:
            self._client_gone()

    def _chunk(self, reply: Reply, data: bytes) -> None:
        if not self._started:
            self._start(reply.status, reply.content_type, reply.headers)
        if data:  # an empty chunk would end the body
            self._write(b"%X\r\n%s\r\n" % (len(data), data))

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = JSON_UTF8,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A complete response with a Content-Length, so the connection can be kept alive."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
        except OSError:
            self._client_gone()
        if self.command != "HEAD":
            self._write(body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, _dumps(obj))

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _hang_up(self, reset: bool = False) -> None:
        """Drop the connection now (FIN, or RST with ``reset``); never counted as a hang-up."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            if reset:
                linger = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.rfile.close()  # the file holds a reference; the fd closes with the last one
                sock.close()
            else:
                sock.shutdown(socket.SHUT_RDWR)
        raise _AbortError

    def _wait(self, what: Gate | float) -> None:
        """Wait on a gate or for some seconds, watching the client for a hang-up meanwhile."""
        gate: Gate | None = None
        deadline: float | None = None
        if isinstance(what, Gate):
            gate = what
            gate._reached.set()
        else:
            deadline = time.monotonic() + what
        watching = True
        while True:
            if self.server.stopping.is_set():
                raise _AbortError
            if gate is not None and gate.is_open:
                return
            timeout = _POLL
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                timeout = min(timeout, remaining)
            if watching:
                watching = self._watch(timeout)
            else:
                time.sleep(timeout)

    def _watch(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for an EOF from the client; False once it sent data instead."""
        try:
            readable, _, _ = select.select([self.connection], [], [], timeout)
            if not readable:
                return True
            data = self.connection.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True
        except (OSError, ValueError):
            self._client_gone()
        if not data:
            self._client_gone()
        return False  # a pipelined request is waiting: stop polling the socket


for _method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
    setattr(HttpHandler, f"do_{_method}", HttpHandler._dispatch)


# --------------------------------------------------------------------------------------------
# Command line


def server_arguments(prog: str, description: str, port: int) -> argparse.ArgumentParser:
    """The options every fake server's command line has: where to listen, pacing, models."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"port, 0 = any free ({port})")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per chunk (0.05)")
    parser.add_argument("--models", default="llama3.2", help="comma-separated models")
    return parser


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def serve_until_interrupted(server: Any, banner: str) -> int:
    """Say ``banner`` and serve with the started ``server`` until Ctrl+C, then stop it."""
    print(banner, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
