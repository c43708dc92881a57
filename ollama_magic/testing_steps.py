"""The script of a fake server's reply: gates, chunks, pauses, hang-ups, and :class:`Reply`.

Standard library only, like the servers in :mod:`ollama_magic.testing` that play it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

NDJSON = "application/x-ndjson"
JSON_UTF8 = "application/json; charset=utf-8"
TEXT_UTF8 = "text/plain; charset=utf-8"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


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
    pairs) are what the chunk reports; left out, the fake makes them up
    (:func:`ollama_magic.testing_lens.fake_logprobs`).
    """

    text: str
    logprob: float | None = None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Thinking:
    """Step: one reasoning chunk (``message.thinking`` for chat, ``thinking`` for generate)."""

    text: str


@dataclass(frozen=True)
class Final:
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
    Mapping[str, Any] | bytes | str | Gate | Token | Thinking | Final | ErrorLine | Pause | Hangup
)


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
        """Prefer the classmethods; ``mode`` is stream, answer, fixed, echo, hangup or default."""
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
    def done(done_reason: str | None = "stop", text: str = "", **metrics: Any) -> Final:
        """The final chunk step; ``metrics`` override defaults (``None`` removes a key)."""
        return Final(done_reason, text, metrics)

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
        chunks: list[Step] = [Thinking(t) for t in thoughts]
        chunks += [Token(t) for t in pieces]
        for name, value in (("gate_after", gate_after), ("hangup_after", hangup_after)):
            if value is not None and not 0 <= value <= len(chunks):
                raise ValueError(f"{name} must be between 0 and {len(chunks)}, not {value}")
        last: Step = Final(done_reason, final_text, dict(stats or {}))
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
    def echo_request(
        cls, status: int = 200, content_type: str = "text/html; charset=utf-8"
    ) -> Reply:
        """An HTML page that shows the request's headers back (a misconfigured proxy does)."""
        return cls(status=status, content_type=content_type, mode="echo")

    @classmethod
    def hangup_before_headers(cls, *, before: Gate | float | None = None) -> Reply:
        """Read the request, then close the connection without sending a byte."""
        return cls(before=before, mode="hangup")

    @classmethod
    def stall(cls, gate: Gate) -> Reply:
        """Send nothing until ``gate`` opens, then give the default answer (a slow model load)."""
        return cls(before=gate, mode="default")
