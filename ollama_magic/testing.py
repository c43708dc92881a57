"""An Ollama-compatible HTTP server for tests and demos: scripted, streamed, standard library only.

Why a real socket server rather than a mocked ``requests``: the bugs worth catching in a
streaming client live in the transport. A JSON line split across two chunks (even inside a
multi-byte character), an error line after the status is already 200, a connection dropped
mid-answer, a server that stalls before its first byte, a user who interrupts the cell and
hangs up: :class:`FakeOllama` produces each of these on purpose, over real HTTP/1.1 with
chunked encoding, flushing every chunk as it is written.

Tests script answers with :class:`Reply` and synchronise with :class:`Gate` instead of
sleeping::

    from ollama_magic.testing import FakeOllama, Gate, Reply

    with FakeOllama(models=("llama3.2", "qwen3:8b"), thinking_models=("qwen3:8b",)) as server:
        server.enqueue(Reply.answer(["Hel", "lo"]))
        ...  # point the client at server.url (or OLLAMA_HOST=server.host)
        assert server.requests[-1].json()["model"] == "llama3.2"

Without a scripted reply the server echoes the prompt (``"You said: ..."``, or the JSON
``{"you_said": ...}`` when the request asks for a ``format``), validates
model names and ``think`` like Ollama does, and answers the small endpoints (``/``,
``/api/version``, ``/api/tags``, ``/api/ps``, ``/api/show``, ``/api/pull``).

``python -m ollama_magic.testing --delay 0.05`` serves a paced fake for demos and benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import select
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeAlias
from urllib.parse import urlsplit

__all__ = [
    "FakeOllama",
    "Gate",
    "RecordedRequest",
    "Reply",
    "Step",
    "main",
]

#: What ``GET /api/version`` reports.
VERSION = "0.33.0"
NDJSON = "application/x-ndjson"
JSON_UTF8 = "application/json; charset=utf-8"
TEXT_UTF8 = "text/plain; charset=utf-8"

_POLL = 0.01  # how often a blocked handler re-checks its gate, the client socket and stop()
_THINK_LEVELS = ("low", "medium", "high", "max")
_DEFAULT_THINKING = ("Let me think.", " The user wants their words echoed back.")
_MODIFIED_AT = "2025-11-01T10:12:03.550123Z"
_CONTEXT_HEAD = (128006, 882, 128007, 271)
_TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten "
    "the prompt, adjust the context length in settings, or use a model with a longer context "
    "length"
)


# --------------------------------------------------------------------------------------------
# Scripting: gates, steps, replies


class Gate:
    """A latch a scripted reply waits on until the test opens it.

    Gates make pacing deterministic without sleeping in tests: the server blocks at the gate,
    the test observes what the client has seen so far (or hangs up), then calls :meth:`open`.
    While blocked, the server watches the client socket, so a hang-up is recorded at once.
    A gate stays open once opened and may be shared by several replies.
    """

    def __init__(self) -> None:
        self._open = threading.Event()
        self._reached = threading.Event()

    def open(self) -> None:
        """Let every handler waiting here (now or later) continue."""
        self._open.set()

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` has been called."""
        return self._open.is_set()

    @property
    def reached(self) -> bool:
        """Whether a handler has arrived at this gate."""
        return self._reached.is_set()

    def wait_reached(self, timeout: float = 5.0) -> bool:
        """Block until a handler arrives here: the client has then seen everything before it."""
        return self._reached.wait(timeout)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "reached" if self.reached else "waiting"
        return f"<Gate {state}>"


@dataclass(frozen=True)
class Token:
    """Step: one answer chunk (``message.content`` for chat, ``response`` for generate).

    When the request asks for ``logprobs``, ``logprob`` and ``top`` (``(token, logprob)``
    pairs) are what the chunk reports; left out, :func:`fake_logprobs` makes them up.
    """

    text: str
    logprob: float | None = None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Thinking:
    """Step: one reasoning chunk (``message.thinking`` for chat, ``thinking`` for generate)."""

    text: str


@dataclass(frozen=True)
class Done:
    """Step: the final ``done: true`` chunk with metrics.

    ``metrics`` overrides or adds keys of the final object; a key mapped to ``None`` is left
    out. ``done_reason=None`` leaves ``done_reason`` out (servers before v0.1.35).
    """

    done_reason: str | None = "stop"
    text: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorLine:
    """Step: the line ``{"error": message}`` on a 200 stream; it ends the reply (as Ollama)."""

    message: str


@dataclass(frozen=True)
class Pause:
    """Step: a real server-side sleep (a client hang-up during it is still detected)."""

    seconds: float


@dataclass(frozen=True)
class Hangup:
    """Step: close the TCP connection right here; no terminating zero-length chunk.

    ``reset=True`` aborts with a TCP RST (the client sees "connection reset") instead of FIN.
    """

    reset: bool = False


#: One element of :meth:`Reply.stream`: a dict is sent as one JSON line; ``bytes``/``str`` are
#: written raw as one chunk; the other types are described on their classes.
Step: TypeAlias = (
    Mapping[str, Any] | bytes | str | Gate | Token | Thinking | Done | ErrorLine | Pause | Hangup
)


#: The probabilities the fake gives its answer tokens in turn, when asked for logprobs.
FAKE_PROBABILITIES = (0.9, 0.6, 0.95, 0.3, 0.75)


def fake_logprobs(text: str, index: int, top: int) -> dict[str, Any]:
    """The deterministic ``logprobs`` entry of the ``index``-th answer token (from 0).

    The token's probability is ``FAKE_PROBABILITIES[index % 5]``; with ``top`` alternatives,
    the first is the token itself and alternative ``k`` (``"alt{k}"``) has half the
    probability of the one before, starting from half of what the token leaves.

    >>> entry = fake_logprobs("Hi", 1, 3)
    >>> [(alt["token"], round(math.exp(alt["logprob"]), 2)) for alt in entry["top_logprobs"]]
    [('Hi', 0.6), ('alt1', 0.2), ('alt2', 0.1)]
    """
    probability = FAKE_PROBABILITIES[index % len(FAKE_PROBABILITIES)]
    alternatives = [(text, math.log(probability))]
    rest = 1.0 - probability
    for k in range(1, top):
        rest /= 2
        alternatives.append((f"alt{k}", math.log(rest)))
    alternatives.sort(key=lambda pair: -pair[1])  # most likely first, as servers send them
    return _logprob_entry(text, math.log(probability), alternatives[:top])


def _logprob_entry(text: str, logprob: float, top: Iterable[tuple[str, float]]) -> dict[str, Any]:
    """One entry in Ollama's shape (``bytes`` and ``top_logprobs`` omitted when empty)."""
    entry: dict[str, Any] = {"token": text, "logprob": logprob}
    if text:
        entry["bytes"] = list(text.encode())
    alternatives = [
        {"token": t, "logprob": lp, **({"bytes": list(t.encode())} if t else {})} for t, lp in top
    ]
    if alternatives:
        entry["top_logprobs"] = alternatives
    return entry


def render_template(messages: Sequence[Any]) -> tuple[str, int]:
    """The prompt the test server's models "see": a Llama-3-style chat template.

    Returns the text and the number of images (each shows as ``[img-N]``).

    >>> text, images = render_template([{"role": "user", "content": "Hi", "images": ["aGk="]}])
    >>> images, text.startswith("<|start_header_id|>user<|end_header_id|>\\n\\n[img-0]Hi")
    (1, True)
    """
    parts, images = [], 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        placeholders = ""
        for _ in message.get("images") or ():
            placeholders += f"[img-{images}]"
            images += 1
        role, content = message.get("role", ""), message.get("content") or ""
        parts.append(
            f"<|start_header_id|>{role}<|end_header_id|>\n\n{placeholders}{content}<|eot_id|>"
        )
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts), images


def split_tokens(text: str) -> list[str]:
    """Split text into word-ish pieces that keep their whitespace (``"a b"`` → ``["a", " b"]``)."""
    return re.findall(r"\s*\S+|\s+", text)


class Reply:
    """A scripted response to the next ``/api/chat`` or ``/api/generate`` request.

    Build one with the classmethods. Every reply accepts ``before``: a :class:`Gate` to wait
    on, or seconds to sleep, before anything (even the status line) is sent; this is how a
    cold model load looks to a client.
    """

    #: Step: close the connection abruptly (FIN) mid-stream.
    HANGUP: ClassVar[Hangup] = Hangup()
    #: Step: abort the connection with a TCP reset mid-stream.
    RESET: ClassVar[Hangup] = Hangup(reset=True)

    def __init__(
        self,
        *,
        steps: Sequence[Step] = (),
        status: int = 200,
        content_type: str = NDJSON,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        before: Gate | float | None = None,
        model: str | None = None,
        mode: str = "stream",
    ) -> None:
        """Prefer the classmethods; ``mode`` is stream, answer, fixed, hangup or default."""
        self.steps = tuple(steps)
        self.status = status
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.body = body
        self.before = before
        self.model = model
        self.mode = mode

    def __repr__(self) -> str:
        return f"<Reply {self.mode} status={self.status} steps={len(self.steps)}>"

    # -- step constructors (rendered per endpoint at serve time) ----------------------------

    @staticmethod
    def token(text: str) -> Token:
        """An answer chunk step."""
        return Token(text)

    @staticmethod
    def thinking(text: str) -> Thinking:
        """A thinking chunk step."""
        return Thinking(text)

    @staticmethod
    def done(done_reason: str | None = "stop", text: str = "", **metrics: Any) -> Done:
        """The final chunk step; ``metrics`` override defaults (``None`` removes a key)."""
        return Done(done_reason, text, metrics)

    @staticmethod
    def error_line(message: str) -> ErrorLine:
        """A mid-stream ``{"error": ...}`` line; the stream then ends without ``done``."""
        return ErrorLine(message)

    @staticmethod
    def pause(seconds: float) -> Pause:
        """A server-side sleep step."""
        return Pause(seconds)

    # -- replies -----------------------------------------------------------------------------

    @classmethod
    def answer(
        cls,
        tokens: str | Iterable[str],
        *,
        thinking: str | Iterable[str] = (),
        delay: float = 0.0,
        done_reason: str | None = "stop",
        final_text: str = "",
        stats: Mapping[str, Any] | None = None,
        model: str | None = None,
        error: str | None = None,
        gate: Gate | None = None,
        gate_after: int = 1,
        hangup_after: int | None = None,
        before: Gate | float | None = None,
    ) -> Reply:
        """A normal streamed answer: thinking chunks, then answer chunks, then the final chunk.

        ``tokens``/``thinking`` may be a string (split with :func:`split_tokens`) or a list of
        pieces. ``delay`` seconds pass between chunks. ``stats`` overrides keys of the final
        chunk (``None`` removes one); ``eval_count`` defaults to the number of answer chunks.
        ``error`` replaces the final chunk by an ``{"error": ...}`` line (T5).

        ``gate`` blocks after ``gate_after`` chunks have been sent (thinking and answer chunks
        both count; 0 means before the headers, ``len(chunks)`` before the final chunk).
        ``hangup_after`` closes the connection after that many chunks in the same way.

        A request with ``"stream": false`` gets the whole answer as one JSON object (an
        ``error`` becomes HTTP 500), after the same gates and pauses.
        """
        pieces = split_tokens(tokens) if isinstance(tokens, str) else list(tokens)
        thoughts = split_tokens(thinking) if isinstance(thinking, str) else list(thinking)
        chunks: list[Step] = [Thinking(t) for t in thoughts] + [Token(t) for t in pieces]
        for name, value in (("gate_after", gate_after), ("hangup_after", hangup_after)):
            if value is not None and not 0 <= value <= len(chunks):
                raise ValueError(f"{name} must be between 0 and {len(chunks)}, not {value}")
        last: Step = Done(done_reason, final_text, dict(stats or {}))
        if error is not None:
            last = ErrorLine(error)
        steps: list[Step] = []
        for index, chunk in enumerate([*chunks, last]):
            if gate is not None and index == gate_after:
                steps.append(gate)
            if index == hangup_after:
                steps.append(cls.HANGUP)
                break
            if index and delay > 0:
                steps.append(Pause(delay))
            steps.append(chunk)
        return cls(steps=steps, before=before, model=model, mode="answer")

    @classmethod
    def stream(
        cls,
        *steps: Step,
        status: int = 200,
        content_type: str = NDJSON,
        headers: Mapping[str, str] | None = None,
        model: str | None = None,
        before: Gate | float | None = None,
    ) -> Reply:
        """A fully scripted chunked body; see :data:`Step`. Sent as is, even if not streaming.

        Headers go out lazily with the first chunk, as Ollama does, so a leading gate or pause
        stalls before the status line.
        """
        return cls(
            steps=steps,
            status=status,
            content_type=content_type,
            headers=headers,
            model=model,
            before=before,
        )

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        json: bool = True,
        headers: Mapping[str, str] | None = None,
        before: Gate | float | None = None,
    ) -> Reply:
        """An HTTP error before any stream: ``{"error": message}``, or plain text."""
        if json:
            return cls.raw(status, _dumps({"error": message}), JSON_UTF8, headers, before=before)
        return cls.raw(status, message.encode(), TEXT_UTF8, headers, before=before)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str = b"",
        content_type: str = JSON_UTF8,
        headers: Mapping[str, str] | None = None,
        *,
        before: Gate | float | None = None,
    ) -> Reply:
        """Any non-streamed response with a Content-Length (e.g. a 403 with an empty body)."""
        data = body.encode() if isinstance(body, str) else bytes(body)
        return cls(
            status=status,
            content_type=content_type,
            headers=headers,
            body=data,
            before=before,
            mode="fixed",
        )

    @classmethod
    def hangup_before_headers(cls, *, before: Gate | float | None = None) -> Reply:
        """Read the request, then close the connection without sending a byte."""
        return cls(before=before, mode="hangup")

    @classmethod
    def stall(cls, gate: Gate) -> Reply:
        """Send nothing until ``gate`` opens, then give the default answer (a slow model load)."""
        return cls(before=gate, mode="default")


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
# Rendering


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _line(obj: Any) -> bytes:
    return _dumps(obj) + b"\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class _Call:
    """What the handler knows about one chat/generate request."""

    endpoint: str  # "chat" or "generate"
    request: dict[str, Any]
    error: str | None = None  # why the body is unusable (400), if it is

    @property
    def model(self) -> str:
        model = self.request.get("model")
        return model if isinstance(model, str) else ""

    @property
    def streaming(self) -> bool:
        return self.request.get("stream") is not False

    @property
    def prompt(self) -> str:
        if self.endpoint == "generate":
            prompt = self.request.get("prompt")
            return prompt if isinstance(prompt, str) else ""
        messages = self.request.get("messages")
        for message in reversed(messages if isinstance(messages, list) else []):
            if isinstance(message, dict) and str(message.get("role", "")).lower() == "user":
                content = message.get("content")
                return content if isinstance(content, str) else ""
        return ""


class _Renderer:
    """Turns endpoint-neutral steps into Ollama's chat or generate chunk objects."""

    def __init__(self, call: _Call, model: str | None) -> None:
        self.call = call
        self.model = call.model if model is None else model
        self.tokens = 0
        self.fake: Any = None  # the FakeOllama, whose settings some chunks depend on

    def _head(self) -> dict[str, Any]:
        return {"model": self.model, "created_at": _now()}

    def _text(self, content: str, thinking: str = "") -> dict[str, Any]:
        obj = self._head()
        if self.call.endpoint == "chat":
            message = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            obj["message"] = message
        else:
            obj["response"] = content
            if thinking:
                obj["thinking"] = thinking
        return obj

    def chunk(self, step: Token | Thinking) -> dict[str, Any]:
        if isinstance(step, Token):
            self.tokens += 1
            obj = self._text(step.text)
        else:
            obj = self._text("", step.text)
        obj["done"] = False
        if isinstance(step, Token) and self.logprobs:
            obj["logprobs"] = [self.logprob_entry(step)]
        return obj

    @property
    def logprobs(self) -> bool:
        """The request asked for logprobs and this server returns them."""
        fake = self.fake
        return self.call.request.get("logprobs") is True and (fake is None or fake.logprobs)

    def logprob_entry(self, step: Token) -> dict[str, Any]:
        top = self.call.request.get("top_logprobs")
        count = top if isinstance(top, int) and 0 <= top <= 20 else 0
        if step.logprob is not None:
            return _logprob_entry(step.text, step.logprob, step.top[:count])
        return fake_logprobs(step.text, self.tokens - 1, count)

    def final(self, done: Done, content: str, thinking: str = "") -> dict[str, Any]:
        obj = self._text(content, thinking)
        obj["done"] = True
        if done.done_reason is not None:
            obj["done_reason"] = done.done_reason
        if self.call.endpoint == "generate" and not self.call.request.get("raw"):
            obj["context"] = [*_CONTEXT_HEAD, *range(1000, 1000 + self.tokens)]
        words = len(self.call.prompt.split())
        load, prompt_eval = 12_000_000, 20_000_000 + words * 1_000_000
        evaluation = self.tokens * 25_000_000  # 40 tokens/s
        defaults = {
            "total_duration": load + prompt_eval + evaluation + 3_000_000,
            "load_duration": load,
            "prompt_eval_count": 10 + words,
            "prompt_eval_duration": prompt_eval,
            "eval_count": self.tokens,
            "eval_duration": evaluation,
        }
        obj.update((key, value) for key, value in defaults.items() if value)  # Go omitempty
        for key, value in done.metrics.items():
            if value is None:
                obj.pop(key, None)
            else:
                obj[key] = value
        return obj

    def step_bytes(self, step: Step) -> bytes:
        if isinstance(step, bytes):
            return step
        if isinstance(step, str):
            return step.encode()
        if isinstance(step, (Token, Thinking)):
            return _line(self.chunk(step))
        if isinstance(step, Done):
            return _line(self.final(step, step.text))
        if isinstance(step, ErrorLine):
            return _line({"error": step.message})
        if isinstance(step, Mapping):
            return _line(dict(step))
        raise TypeError(f"not a Reply step: {step!r}")


# --------------------------------------------------------------------------------------------
# Request decoding (Go-like error texts)


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


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


_FOREVER = 10**10  # seconds: Ollama reports a negative keep_alive as a far-future expiry
_DURATION_PART = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _keep_alive_seconds(value: Any) -> float:
    """Seconds a model stays loaded for a request's ``keep_alive`` (number or Go duration)."""
    if value is None:
        return 300.0
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        parts = _DURATION_PART.findall(str(value).strip())
        if not parts:
            return 300.0
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    return _FOREVER if seconds < 0 else seconds


def _canonical(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _details(name: str) -> dict[str, Any]:
    base = name.rsplit("/", 1)[-1].split(":")[0]
    family = re.sub(r"\d+\.\d+$", "", base) or base  # llama3.2 -> llama, qwen3 -> qwen3
    tag = name.rsplit(":", 1)[-1] if ":" in name else ""
    size = re.fullmatch(r"(\d+(?:\.\d+)?)b", tag.lower())
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": f"{size.group(1)}B" if size else "3.2B",
        "quantization_level": "Q4_K_M",
    }


def _digest(name: str) -> str:
    return hashlib.sha256(_canonical(name).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# The HTTP server


class _AbortError(Exception):
    """The reply cannot go on: the client hung up, the script closed it, or stop() was called."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeOllama) -> None:
        self.fake = fake
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOllama/" + VERSION
    server: _Server

    _ROUTES: ClassVar[dict[str, tuple[str, ...]]] = {
        "/": ("GET", "HEAD"),
        "/api/version": ("GET", "HEAD"),
        "/api/tags": ("GET", "HEAD"),
        "/api/ps": ("GET",),
        "/api/show": ("POST",),
        "/api/chat": ("POST",),
        "/api/generate": ("POST",),
        "/api/pull": ("POST",),
    }

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests should not spray access logs on stderr."""

    def version_string(self) -> str:
        return self.server_version

    # -- plumbing --------------------------------------------------------------------------

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
                client=tuple(self.client_address[:2]),
            )
        )
        try:
            self._route(urlsplit(self.path).path, body)
        except _AbortError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
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

    # -- routes ------------------------------------------------------------------------------

    def _route(self, path: str, body: bytes) -> None:
        methods = self._ROUTES.get(path)
        if methods is None:
            self._send(404, b"404 page not found", "text/plain")
        elif self.command not in methods:
            self._send(405, b"405 method not allowed", "text/plain")
        elif path == "/":
            self._send(200, b"Ollama is running", TEXT_UTF8)
        elif path == "/api/version":
            self._send_json(200, {"version": self.server.fake.version})
        elif path == "/api/tags":
            self._send_json(200, {"models": [self._tag(name) for name in self.server.fake.models]})
        elif path == "/api/ps":
            self._send_json(200, {"models": self.server.fake._ps_rows()})
        elif path == "/api/show":
            self._show(body)
        elif path == "/api/pull":
            self._pull(body)
        else:
            endpoint = path.rsplit("/", 1)[-1]
            go_type = "ChatRequest" if endpoint == "chat" else "GenerateRequest"
            request, error = _decode(body, go_type)
            call = _Call(endpoint, request, error)
            if not error:
                self.server.fake._note_use(call.model, request.get("keep_alive"))
                self.server.fake._note_window(call.model, request.get("options"))
            if request.get("_debug_render_only") is True and not error:
                return self._render_only(call)
            reply = self.server.fake._next_reply()
            if reply is None:
                self._default(call)
            else:
                self._serve(reply, call)

    @staticmethod
    def _tag(name: str) -> dict[str, Any]:
        digest = _digest(name)
        return {
            "name": _canonical(name),
            "model": _canonical(name),
            "modified_at": _MODIFIED_AT,
            "size": 1_000_000_000 + int(digest[:8], 16) % 4_000_000_000,
            "digest": digest,
            "details": _details(name),
        }

    def _show(self, body: bytes) -> None:
        request, error = _decode(body, "ShowRequest")
        if error:
            return self._send_error(400, error)
        name = request.get("model") or request.get("name") or ""
        fake = self.server.fake
        if not name:
            return self._send_error(400, "model is required")
        if not fake.has_model(name):
            return self._send_error(404, f"model '{name}' not found")
        details = _details(name)
        family = details["family"]
        capabilities = ["completion", "thinking"] if fake.thinks(name) else ["completion"]
        self._send_json(
            200,
            {
                "modelfile": f"# Modelfile generated by FakeOllama\nFROM {_canonical(name)}\n",
                "parameters": "temperature 0.8",
                "template": "{{ .Prompt }}",
                "details": details,
                "model_info": {
                    "general.architecture": family,
                    f"{family}.context_length": 131072,
                },
                "capabilities": capabilities,
                "modified_at": _MODIFIED_AT,
            },
        )

    def _pull(self, body: bytes) -> None:
        request, error = _decode(body, "PullRequest")
        if error:
            return self._send_error(400, error)
        fake = self.server.fake
        name = request.get("model") or request.get("name") or ""
        ok = fake.has_model(name) or fake.can_pull(name)
        if request.get("stream") is False:
            if not ok:
                return self._send_error(500, "pull model manifest: file does not exist")
            fake._add_model(name)
            return self._send_json(200, {"status": "success"})
        digest = "sha256:" + _digest(name)
        steps: list[Step] = [{"status": "pulling manifest"}]
        if ok:
            total = 2_019_377_376
            layer = {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total}
            steps += [
                layer,
                {**layer, "completed": total // 2},
                {**layer, "completed": total},
                {"status": "verifying sha256 digest"},
                {"status": "writing manifest"},
                {"status": "success"},
            ]
        else:
            steps.append(ErrorLine("pull model manifest: file does not exist"))
        delay = fake.default_delay
        paced: list[Step] = []
        for step in steps:
            if paced and delay > 0:
                paced.append(Pause(delay))
            paced.append(step)
        fake._add_model(name)  # installed before the client can read "success"
        self._stream(Reply.stream(*paced), _Call("pull", request))

    # -- chat / generate -----------------------------------------------------------------------

    def _default(self, call: _Call) -> None:
        """Answer like Ollama would, echoing the prompt."""
        fake = self.server.fake
        if call.error:
            return self._send_error(400, call.error)
        model = call.model
        if not model and call.endpoint == "chat":
            return self._send_error(400, "model is required")
        if not fake.has_model(model):
            return self._send_error(404, f"model '{model}' not found")
        think = call.request.get("think")
        if (think is True or isinstance(think, str)) and not fake.thinks(model):
            return self._send_error(400, f'"{model}" does not support thinking')
        top_logprobs = call.request.get("top_logprobs")
        if isinstance(top_logprobs, int) and not 0 <= top_logprobs <= 20:
            return self._send_error(400, "top_logprobs must be between 0 and 20")
        window = fake.window(model)
        prompt_tokens = 10 + len(call.prompt.split())  # as the final chunk counts them
        if prompt_tokens > window and not fake.context_shift:
            return self._send_error(400, _TOO_LONG)
        empty = not call.request.get("messages") if call.endpoint == "chat" else not call.prompt
        if empty:
            keep_alive = call.request.get("keep_alive")
            reason = "unload" if keep_alive in (0, "0", "0s", "0m", "0h") else "load"
            final = {**_Renderer(call, None)._text(""), "done": True, "done_reason": reason}
            return self._send_json(200, final)
        if call.request.get("format"):
            # Structured output was asked for: answer with JSON, as a real model would.
            tokens = split_tokens(json.dumps({"you_said": call.prompt}, ensure_ascii=False))
        else:
            tokens = split_tokens("You said: " + call.prompt)
        done_reason = "stop"
        options = call.request.get("options")
        limit = options.get("num_predict") if isinstance(options, dict) else None
        if isinstance(limit, (int, float)) and 0 < limit < len(tokens):
            tokens, done_reason = tokens[: int(limit)], "length"
        thinking = _DEFAULT_THINKING if fake.thinks(model) and think is not False else ()
        reply = Reply.answer(
            tokens, thinking=thinking, delay=fake.default_delay, done_reason=done_reason
        )
        if prompt_tokens > window:  # cut to the window, silently, as Ollama does
            reply = Reply.answer(
                tokens,
                thinking=thinking,
                delay=fake.default_delay,
                done_reason=done_reason,
                stats={"prompt_eval_count": window},
            )
        self._serve(reply, call)

    def _render_only(self, call: _Call) -> None:
        """``_debug_render_only``: the prompt as the template renders it; nothing generated."""
        if not self.server.fake.has_model(call.model):
            return self._send_error(404, f"model '{call.model}' not found")
        messages = call.request.get("messages")
        if call.endpoint == "generate":
            messages = [{"role": "user", "content": call.prompt}]
        rendered, images = render_template(messages if isinstance(messages, list) else [])
        info: dict[str, Any] = {"rendered_template": rendered}
        if images:
            info["image_count"] = images
        message = {"role": "", "content": ""}
        self._send_json(
            200,
            {"model": call.model, "created_at": _now(), "message": message, "done": False}
            | {"_debug_info": info},
        )

    def _serve(self, reply: Reply, call: _Call) -> None:
        if reply.before is not None:
            self._wait(reply.before)
        if reply.mode == "hangup":
            self._hang_up()
        elif reply.mode == "default":
            self._default(call)
        elif reply.mode == "fixed":
            self._send(reply.status, reply.body or b"", reply.content_type, reply.headers)
        elif reply.mode == "answer" and not call.streaming:
            self._whole(reply, call)
        else:
            self._stream(reply, call)

    def _run(self, step: Step) -> bool:
        """Carry out a control step; False if ``step`` is content to send."""
        if isinstance(step, Gate):
            self._wait(step)
        elif isinstance(step, Pause):
            self._wait(step.seconds)
        elif isinstance(step, Hangup):
            self._hang_up(step.reset)
        else:
            return False
        return True

    def _stream(self, reply: Reply, call: _Call) -> None:
        renderer = _Renderer(call, reply.model)
        renderer.fake = self.server.fake
        for step in reply.steps:
            if not self._run(step):
                self._chunk(reply, renderer.step_bytes(step))
                if isinstance(step, ErrorLine):
                    break
        self._chunk(reply, b"")
        self._write(b"0\r\n\r\n")

    def _whole(self, reply: Reply, call: _Call) -> None:
        """The non-streamed form of an answer: one object with all the text (T10, T11)."""
        renderer = _Renderer(call, reply.model)
        content: list[str] = []
        thinking: list[str] = []
        for step in reply.steps:
            if self._run(step):
                continue
            if isinstance(step, ErrorLine):
                return self._send_error(500, step.message)
            if isinstance(step, Token):
                renderer.tokens += 1
                content.append(step.text)
            elif isinstance(step, Thinking):
                thinking.append(step.text)
            elif isinstance(step, Done):
                text = "".join(content) + step.text
                return self._send_json(200, renderer.final(step, text, "".join(thinking)))


for _method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
    setattr(_Handler, f"do_{_method}", _Handler._dispatch)


# --------------------------------------------------------------------------------------------
# Public server object


class FakeOllama:
    """A local Ollama look-alike on a free port, for tests, notebooks and demos.

    ``models`` are the installed models (``thinking_models`` are installed too, and can
    think); names match with or without ``:latest``. ``pullable`` models can be installed
    through ``/api/pull``. ``default_delay`` paces default answers (seconds per chunk).
    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        models: Iterable[str] = ("llama3.2",),
        thinking_models: Iterable[str] = ("qwen3:8b",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default_delay: float = 0.0,
        pullable: Iterable[str] = (),
        version: str = VERSION,
        logprobs: bool = True,
        context_length: int = 4096,
        context_shift: bool = True,
    ) -> None:
        self.thinking_models = list(thinking_models)
        self.models = list(models) + [m for m in self.thinking_models if m not in models]
        self.pullable = list(pullable)
        self.default_delay = default_delay
        self.version = version
        #: Whether ``logprobs`` requests get them (False: like Ollama before 0.12.11).
        self.logprobs = logprobs
        #: The window a model loads with unless a request sets ``num_ctx`` (``/api/ps``).
        self.context_length = context_length
        #: True: an over-long prompt is cut to the window silently (Ollama's default);
        #: False: it is refused with Ollama's HTTP 400.
        self.context_shift = context_shift
        self._windows: dict[str, int] = {}
        self._bind = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._hangups = 0
        self._changed = threading.Condition()
        self._loaded: dict[str, datetime] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeOllama:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is not None:
            return self
        self._server = _Server(self._bind, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeOllama:{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every connection; handlers blocked on gates give up at once."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FakeOllama {where} models={self.models!r}>"

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (a free one when constructed with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("FakeOllama is not running: call start() or use `with`")
        return self._server.server_port

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, suitable for ``OLLAMA_HOST``."""
        return f"{self._bind[0]}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    # -- scripting and inspection ------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies for the next ``/api/chat``/``/api/generate`` requests, in order."""
        with self._changed:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many enqueued replies no request has consumed yet."""
        with self._changed:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in order."""
        with self._changed:
            return list(self._requests)

    @property
    def hangups(self) -> int:
        """How many times a client closed the connection before its reply was finished."""
        with self._changed:
            return self._hangups

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` requests have arrived; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= n, timeout)

    def wait_for_hangup(self, timeout: float = 5.0, count: int = 1) -> bool:
        """Block until ``count`` client hang-ups have been recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._hangups >= count, timeout)

    def reset(self) -> None:
        """Forget queued replies, recorded requests and hang-ups (between tests)."""
        with self._changed:
            self._queue.clear()
            self._requests.clear()
            self._hangups = 0

    @property
    def loaded(self) -> dict[str, datetime]:
        """Models in memory (as ``/api/ps`` lists them) and when each would be unloaded."""
        now = datetime.now(timezone.utc)
        with self._changed:
            return {name: until for name, until in self._loaded.items() if until > now}

    def _note_use(self, name: str, keep_alive: Any) -> None:
        """A chat/generate request loads the model for ``keep_alive`` (default 5 minutes)."""
        if not self.has_model(name):
            return
        seconds = _keep_alive_seconds(keep_alive)
        with self._changed:
            if seconds == 0:
                self._loaded.pop(_canonical(name), None)
            else:
                self._loaded[_canonical(name)] = datetime.now(timezone.utc) + timedelta(
                    seconds=seconds
                )

    def _ps_rows(self) -> list[dict[str, Any]]:
        rows = []
        for name, until in sorted(self.loaded.items(), key=lambda item: item[1], reverse=True):
            tag = _Handler._tag(name)
            rows.append(
                {
                    "name": name,
                    "model": name,
                    "size": tag["size"],
                    "digest": tag["digest"],
                    "details": tag["details"],
                    "expires_at": until.isoformat().replace("+00:00", "Z"),
                    "size_vram": tag["size"],
                    "context_length": self._windows.get(name, self.context_length),
                }
            )
        return rows

    def window(self, name: str) -> int:
        """The window ``name`` runs with: its last request's ``num_ctx``, or the default."""
        with self._changed:
            return self._windows.get(_canonical(name), self.context_length)

    def _note_window(self, name: str, options: Any) -> None:
        num_ctx = options.get("num_ctx") if isinstance(options, dict) else None
        if self.has_model(name):
            with self._changed:
                window = num_ctx if isinstance(num_ctx, int) and num_ctx > 0 else None
                self._windows[_canonical(name)] = window or self.context_length

    def has_model(self, name: str) -> bool:
        """Whether ``name`` is installed (``x`` and ``x:latest`` are the same model)."""
        return bool(name) and _canonical(name) in {_canonical(m) for m in self.models}

    def thinks(self, name: str) -> bool:
        """Whether ``name`` has the thinking capability."""
        return bool(name) and _canonical(name) in {_canonical(m) for m in self.thinking_models}

    def can_pull(self, name: str) -> bool:
        """Whether ``/api/pull`` would install ``name``."""
        return bool(name) and _canonical(name) in {_canonical(m) for m in self.pullable}

    # -- called by handlers ------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _next_reply(self) -> Reply | None:
        with self._changed:
            return self._queue.popleft() if self._queue else None

    def _note_hangup(self) -> None:
        with self._changed:
            self._hangups += 1
            self._changed.notify_all()

    def _add_model(self, name: str) -> None:
        with self._changed:
            if self.can_pull(name) and not self.has_model(name):
                self.models.append(name)


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


def serve_until_interrupted(server: FakeOllama, banner: str) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake Ollama until Ctrl+C, for demos and benchmarks without a GPU."""
    parser = server_arguments(
        "python -m ollama_magic.testing",
        "Serve an Ollama-compatible fake that echoes prompts, paced per token.",
        port=11434,
    )
    parser.add_argument(
        "--thinking-models", default="qwen3:8b", help="comma-separated models that think"
    )
    args = parser.parse_args(argv)
    server = FakeOllama(
        comma_list(args.models),
        comma_list(args.thinking_models),
        host=args.host,
        port=args.port,
        default_delay=args.delay,
    ).start()  # the address is known from here on (port 0 picks one)
    return serve_until_interrupted(
        server, f"Fake Ollama at {server.url} serving {', '.join(server.models)}"
    )


if __name__ == "__main__":
    sys.exit(main())
