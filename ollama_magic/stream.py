"""The one loop that streams an answer from any backend into a sink and returns the result.

Every mode is built from :func:`stream_answer`: a single answer streams into the live view, a
comparison runs one per model into the columns of one view, ``--bg`` runs it on a worker thread
and ``--map`` runs it once per item. So a capability added here (an accumulator field, a
provenance entry, a way to stop) reaches every mode at once.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .context import check_context
from .errors import Interrupted, OllamaMagicError
from .events import AnswerDelta, Done, ThinkingDelta, ToolCall
from .lifecycle import claim_recent_stops
from .logprobs import Logprobs
from .result import OllamaResponse, decode_draining, provenance


class Sink(Protocol):
    """What receives an answer while it streams (a view, a column of one, or nothing)."""

    def start(self) -> None: ...

    def thinking(self, text: str) -> None: ...

    def answer(self, text: str) -> None: ...

    def trace(self, line: bytes, at: float) -> None: ...


class NullSink:
    """Receives nothing: ``--map`` items and quiet runs."""

    def start(self) -> None:
        pass

    def thinking(self, text: str) -> None:
        pass

    def answer(self, text: str) -> None:
        pass

    def trace(self, line: bytes, at: float) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class CancelToken:
    """Stops answers from another thread: ``.cancel()`` hangs up every stream it watches.

    The stop button reaches the main thread as ``KeyboardInterrupt``; worker threads
    (comparisons, ``--bg``, ``--map``) are stopped through this token instead.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._streams: set[Any] = set()
        #: Who stopped it: "" for the user; for a kernel shutdown, :data:`KERNEL_SHUTDOWN` and
        #: whether it was for a restart.
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "") -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.abort()

    def watch(self, stream: Any) -> None:
        with self._lock:
            self._streams.add(stream)
        if self.cancelled:
            stream.abort()

    def forget(self, stream: Any) -> None:
        with self._lock:
            self._streams.discard(stream)


#: The reason of a :class:`CancelToken` stopped because the kernel is shutting down (a restart).
KERNEL_SHUTDOWN = "kernel shutdown"


#: The answers this process is streaming (their stop tokens), so that a kernel shutdown can
#: stop them and wait until each has shown what arrived; notified whenever one ends.
_answering: list[CancelToken] = []
_answering_changed = threading.Condition()


@contextlib.contextmanager
def answering(token: CancelToken | None = None) -> Iterator[CancelToken]:
    """Register one answer (or comparison, or map) while it runs, views finished included."""
    token = token if token is not None else CancelToken()
    with _answering_changed:
        _answering.append(token)
    try:
        yield token
    finally:
        with _answering_changed:
            _answering.remove(token)
            _answering_changed.notify_all()


def stop_every_answer(reason: str, timeout: float) -> None:
    """Stop every answer in progress and wait up to ``timeout`` s for them to finish showing
    what arrived (their final output says why they stopped).

    Called when the kernel is told to shut down: the process ends soon after, and an answer
    finished here is saved with the notebook as a partial answer, marked as such.
    """
    with _answering_changed:
        tokens = list(_answering)
    for token in tokens:
        token.cancel(reason)
    deadline = time.monotonic() + timeout
    with _answering_changed:
        while _answering and (left := deadline - time.monotonic()) > 0:
            _answering_changed.wait(left)
    # A front end interrupts the kernel before it asks for a shutdown: answers ended by that
    # interrupt look like user stops until claimed here.
    claim_recent_stops(reason)


@dataclass(frozen=True)
class Journal:
    """Where answers are written while they stream, and whether earlier ones may be replayed.

    ``log`` is an :class:`ollama_magic.log.AnswerLog` (or None: nothing is written). With
    ``replay``, an identical earlier complete request is streamed from the log, not sent.
    """

    log: Any = None
    replay: bool = False
    kernel: str = ""
    cell: str = ""
    #: Write each record at its first flush or its end, not before the request: one write
    #: for a short answer (``--map`` items), still at most a second lost to a kill.
    defer: bool = False


#: Seconds between two writes of a streaming answer to the log (a kill loses at most this).
FLUSH_INTERVAL = 1.0


def stream_answer(
    backend: Any,
    body: dict[str, Any],
    sink: Sink,
    *,
    out_name: str,
    cancel: CancelToken | None = None,
    trace: bool = False,
    journal: Journal | None = None,
) -> OllamaResponse:
    """Stream one answer into ``sink``; return it with its error, interrupt and provenance.

    Failures do not raise: they end up on the result (``.error``, ``.interrupted``) with a
    message that says where the partial answer is, so every caller keeps what arrived.
    ``KeyboardInterrupt`` (the stop button on the main thread) and ``cancel`` both hang up.
    The caller starts and finishes the sink, so several rounds (tool calls) can share one.
    """
    # UTF-8 bytes, not a list of str: one small object per token would cost ~55 bytes each.
    answer = bytearray()
    thinking = bytearray()
    done: Done | None = None
    calls: list[ToolCall] = []
    error: OllamaMagicError | None = None
    interrupted = False
    stream = None
    model = str(body.get("model", ""))
    # --logprobs: the tokens go to one compact store, which a sink may read as it grows.
    logprobs: Logprobs | None = None
    on_logprobs = getattr(sink, "logprobs", None)
    source, replayed, entry = backend, None, None
    if journal is not None and journal.log is not None:
        digest = _digest(backend, model)
        if journal.replay:
            replayed = journal.log.lookup(
                body, backend=backend.kind, host=backend.base_url, digest=digest
            )
            if replayed is not None:
                source = _Replay(backend, replayed)
                started = replayed.started.strftime("%Y-%m-%d %H:%M")
                say = getattr(sink, "note", None) or print
                say(
                    f"Replayed from the answer log: the answer of {started} (record {replayed.id})."
                )
        if replayed is None:
            entry = journal.log.begin(
                body,
                backend=backend.kind,
                host=backend.base_url,
                digest=digest,
                kernel=journal.kernel,
                cell=journal.cell,
                defer=journal.defer,
            )
    try:
        if cancel is not None and cancel.cancelled:
            raise KeyboardInterrupt
        stream = source.stream_chat(body, trace=sink.trace if trace else None)
        if cancel is not None:
            cancel.watch(stream)
        flush_at = time.monotonic() + FLUSH_INTERVAL if entry is not None else math.inf
        with stream:
            for event in stream:
                kind = type(event)
                if kind is AnswerDelta:
                    if event.logprobs is not None:
                        logprobs = logprobs if logprobs is not None else Logprobs()
                        logprobs.extend(event.logprobs)
                        if on_logprobs is not None:
                            on_logprobs(logprobs)
                    answer += event.text.encode("utf-8", "surrogatepass")
                    sink.answer(event.text)
                elif kind is ThinkingDelta:
                    thinking += event.text.encode("utf-8", "surrogatepass")
                    sink.thinking(event.text)
                elif kind is ToolCall:
                    calls.append(event)
                else:
                    done = event
                if entry is not None and time.monotonic() >= flush_at:
                    entry.flush(answer, thinking)
                    flush_at = time.monotonic() + FLUSH_INTERVAL
        if cancel is not None and cancel.cancelled and done is None:
            interrupted = True  # hung up on purpose: the stream may just end
    except KeyboardInterrupt:
        interrupted = True
    except OllamaMagicError as exc:
        error = exc
        if cancel is not None and cancel.cancelled:
            interrupted, error = True, None  # hung up on purpose
    finally:
        if cancel is not None and stream is not None:
            cancel.forget(stream)
    trace_lines = getattr(sink, "trace_lines", None)
    # The buffer goes as soon as it is decoded: a long answer is held at most twice at a time.
    text = decode_draining(answer)
    del answer
    result = OllamaResponse(
        text,
        model=(done.model if done and done.model else model),
        thinking=thinking.decode("utf-8", "surrogatepass"),
        done_reason=done.done_reason if done and error is None else None,
        stats=done.stats if done else None,
        interrupted=interrupted and done is None,
        error=error,
        request=body,
        host=backend.base_url,
    )
    del text, thinking
    if result.interrupted and cancel is not None and cancel.cancelled:
        result.stopped_by = cancel.reason
    result.requested_calls = calls
    result.logprobs = logprobs
    check_context(backend, body, result)
    if trace_lines is not None:
        result.trace = list(trace_lines)
    _explain_ending(result, out_name)
    # The digest identifies the exact weights; it costs one cached model-list request.
    result.provenance = provenance(result, _digest(backend, result.model) if done else None)
    if replayed is not None:
        result.provenance["replayed_from"] = {
            "id": replayed.id,
            "started": replayed.started.isoformat(timespec="seconds"),
        }
    if entry is not None:
        entry.end(result)
    return result


def _digest(backend: Any, model: str) -> str | None:
    entry = backend.installed_models(timeout=1.0).get(model) or {}
    digest = entry.get("digest")
    return digest if isinstance(digest, str) else None


class _Replay:
    """A backend that streams an answer from the log instead of asking the server."""

    def __init__(self, backend: Any, record: Any) -> None:
        self.kind, self.base_url, self.record = backend.kind, backend.base_url, record

    def stream_chat(self, body: dict[str, Any], *, trace: Any = None) -> Any:
        from .log import replay_stream

        return replay_stream(self.record)


def _explain_ending(result: OllamaResponse, out_name: str) -> None:
    """Say where the partial answer went, once, in the error that ended it."""
    chars = len(result)
    if result.interrupted and result.stopped_by:
        result.error = Interrupted(
            f"The answer stopped at a {result.stopped_by} after {chars} characters; what had "
            "arrived is kept in the cell's output."
        )
    elif result.interrupted:
        if chars:
            message = (
                f"Stopped after {chars} characters of the answer; the partial answer is in "
                f"{out_name} ({out_name}.interrupted is True)."
            )
        elif result.thinking:
            message = (
                f"Stopped before the answer began; the thinking so far is in "
                f"{out_name}.thinking ({out_name}.interrupted is True)."
            )
        else:
            message = f"Stopped before the answer began; {out_name}.interrupted is True."
        result.error = Interrupted(message)
    elif result.error is not None and (chars or result.thinking):
        error = result.error
        error.message += (
            f" The {chars} characters received before that are kept in {out_name}."
            if chars
            else f" The thinking received before that is kept in {out_name}.thinking."
        )
        error.args = (error.message,)
