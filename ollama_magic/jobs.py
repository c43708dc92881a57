"""The modes, each composed from :func:`~ollama_magic.stream.stream_answer`.

- :func:`run_single`: one answer into a live view (also what a ``--bg`` worker runs);
- :func:`run_compare`: one answer per model, on threads, into the columns of one view;
- :func:`run_map`: one answer per item through a bounded pool, into a progress view;
- :class:`BackgroundJob`: any of them on a worker thread that writes into its own cell.

Nothing here imports IPython: views, the namespace and the conversation store are passed in.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextvars
import dataclasses
import queue
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from .conversation import Conversations, Exchange
from .errors import (
    CompareError,
    Interrupted,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaMagicError,
    OllamaResponseError,
    OllamaStreamError,
    StreamErrorLine,
)
from .request import ChatRequest
from .result import OllamaResponse
from .stream import CancelToken, Journal, NullSink, answering, stream_answer
from .tool_loop import Ask, answer_with_tools

#: How often a waiting main thread wakes so that the stop button gets through.
_POLL = 0.1


class Answers(dict[str, OllamaResponse]):
    """Model name → :class:`OllamaResponse`, for ``%%ollama m1 m2`` comparisons."""

    def _repr_markdown_(self) -> str:
        from .view import compare_markdown

        return compare_markdown(self)


class MappedAnswers(list[OllamaResponse]):
    """Answers of ``--map``, aligned with the input items; failures are kept per item."""

    @property
    def answered(self) -> int:
        return sum(1 for r in self if r.complete)

    @property
    def failed(self) -> list[int]:
        """Indexes of the items whose answer failed or was interrupted."""
        return [i for i, r in enumerate(self) if not r.complete]

    def _repr_markdown_(self) -> str:
        from .view import map_summary

        return map_summary(self)


def record_turn(
    conversations: Conversations,
    request: ChatRequest,
    result: OllamaResponse,
    tool_messages: list[dict[str, Any]] | None = None,
) -> None:
    """Add a complete answer to its conversation, under the cell that asked (never a partial)."""
    if request.chat is None or not result.complete:
        return
    conversations.get_or_create(request.chat).record(
        Exchange(
            key=request.cell_key,
            prompt=request.prompt,
            answer=result.text,
            model=result.model,
            images=list(request.images),
            thinking=result.thinking,
            tool_messages=list(tool_messages or ()),
        )
    )


def run_single(
    backend: Any,
    request: ChatRequest,
    view: Any,
    namespace: MutableMapping[str, Any],
    conversations: Conversations,
    cancel: CancelToken | None = None,
    journal: Journal | None = None,
    ask: Ask | None = None,
) -> OllamaResponse:
    """Stream one answer (with its tool rounds), store it, record the turn, show the final
    output; raise its error."""
    expect_format = getattr(view, "expect_format", None)
    if expect_format is not None:
        expect_format(request.format)
    view.start()
    tool_messages: list[dict[str, Any]] = []
    if request.tools:
        result, tool_messages = answer_with_tools(
            backend, request, view, cancel=cancel, journal=journal, ask=ask
        )
    else:
        result = stream_answer(
            backend,
            request.body(),
            view,
            out_name=request.out,
            cancel=cancel,
            trace=request.trace,
            journal=journal,
        )
    namespace[request.out] = result
    record_turn(conversations, request, result, tool_messages)
    view.finish(result, request.out)
    if result.error is not None:
        raise result.error
    return result


class _Column:
    """One model's share of a comparison view, as a sink."""

    def __init__(self, view: Any, index: int) -> None:
        self.view, self.index = view, index

    def start(self) -> None:
        pass

    def thinking(self, text: str) -> None:
        self.view.thinking(self.index, text)

    def answer(self, text: str) -> None:
        self.view.answer(self.index, text)

    def trace(self, line: bytes, at: float) -> None:
        pass


def _wait_all(futures: list[concurrent.futures.Future[Any]]) -> None:
    """Wait in short steps, so ``KeyboardInterrupt`` reaches the main thread."""
    pending = set(futures)
    while pending:
        _, pending = concurrent.futures.wait(pending, timeout=_POLL)


def run_compare(
    backends: list[Any],
    request: ChatRequest,
    view: Any,
    namespace: MutableMapping[str, Any],
    cancel: CancelToken | None = None,
    journal: Journal | None = None,
) -> Answers:
    """Ask every model at once; ``request.out`` maps model → answer; failures keep the rest."""
    cancel = cancel or CancelToken()
    models = request.models
    results: list[OllamaResponse | None] = [None] * len(models)

    def ask(index: int) -> None:
        column = _Column(view, index)
        try:
            results[index] = stream_answer(
                backends[index],
                request.body(models[index]),
                column,
                out_name=f"{request.out}[{models[index]!r}]",
                cancel=cancel,
                journal=journal,
            )
        finally:
            view.ended(index)

    interrupted = False
    view.start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(models)) as pool:
        futures = [pool.submit(contextvars.copy_context().run, ask, i) for i in range(len(models))]
        try:
            _wait_all(futures)
        except KeyboardInterrupt:
            interrupted = True
            cancel.cancel()
            concurrent.futures.wait(futures)
    answers = Answers()
    for model, result in zip(models, results, strict=True):
        answers[model] = result if result is not None else OllamaResponse(model=model)
    namespace[request.out] = answers
    view.finish(answers, request.out)
    if interrupted or cancel.cancelled:
        raise Interrupted(
            f"Stopped all {len(models)} answers; the partial answers are in {request.out} "
            f"(a dict: {request.out}[{models[0]!r}])."
        )
    failed = {m: r.error for m, r in answers.items() if r.error is not None}
    if failed:
        details = " ".join(f"{m}: {e.message}" for m, e in failed.items())
        raise CompareError(
            f"{len(failed)} of {len(models)} models failed; the other answers are in "
            f"{request.out}. {details}"
        )
    return answers


#: Longest a failing server rests before it is given another item (seconds).
MAX_COOLDOWN = 30.0


def _server_failed(error: OllamaMagicError | None) -> bool:
    """Failures that say nothing about the item: another server may well answer it."""
    if isinstance(error, (OllamaConnectionError, OllamaStreamError)):
        return not isinstance(error, StreamErrorLine)
    return isinstance(error, OllamaResponseError) and error.status_code >= 500


class _Pool:
    """The shared queue of ``--map`` items and the health of each server.

    Each server's workers take the next item when they are free, so a fast server does more.
    A server that fails at the connection level rests (1 s, doubling up to
    :data:`MAX_COOLDOWN`) and its item goes back to the queue; one without the model leaves
    the map.
    """

    def __init__(self, items: int, servers: int, cancel: CancelToken) -> None:
        self.changed = threading.Condition()
        self.queue: collections.deque[int] = collections.deque(range(items))
        self.open_items = items
        self.tries = [0] * items
        self.max_tries = 2 * servers
        self.active = set(range(servers))
        self.rest_until = [0.0] * servers
        self.rest = [0.0] * servers
        self.cancel = cancel
        self.finished: queue.SimpleQueue[tuple[int, OllamaResponse]] = queue.SimpleQueue()

    def take(self, server: int) -> int | None:
        """The next item for ``server``, once it has rested; None when there is no more work."""
        with self.changed:
            while True:
                if self.cancel.cancelled or not self.open_items or server not in self.active:
                    return None
                wait = self.rest_until[server] - time.monotonic()
                if wait <= 0 and self.queue:
                    index = self.queue.popleft()
                    self.tries[index] += 1
                    return index
                self.changed.wait(timeout=wait if wait > 0 else None)

    def done(self, index: int, result: OllamaResponse) -> None:
        with self.changed:
            self.open_items -= 1
            self.finished.put((index, result))
            self.changed.notify_all()

    def answered(self, server: int) -> None:
        self.rest[server] = 0.0

    def failed(self, server: int, index: int, result: OllamaResponse) -> None:
        """A server-level failure: the server rests, the item is tried elsewhere (bounded)."""
        with self.changed:
            self.rest[server] = min(max(self.rest[server] * 2, 1.0), MAX_COOLDOWN)
            self.rest_until[server] = time.monotonic() + self.rest[server]
            others = len(self.active) > 1
            if others and self.tries[index] < self.max_tries and not self.cancel.cancelled:
                self.queue.appendleft(index)
                self.changed.notify_all()
                return
        self.done(index, result)

    def leave(self, server: int, index: int, result: OllamaResponse) -> None:
        """The server lacks the model: it leaves this map; its item goes to the others."""
        with self.changed:
            self.active.discard(server)
            if self.active:
                self.queue.appendleft(index)
                self.changed.notify_all()
                return
            stranded = [index, *self.queue]
            self.queue.clear()
        for item in stranded:
            self.done(item, result)


def run_map(
    backends: list[Any],
    request: ChatRequest,
    view: Any,
    namespace: MutableMapping[str, Any],
    cancel: CancelToken | None = None,
    journal: Journal | None = None,
) -> MappedAnswers:
    """Ask once per item, spread over every server, ``request.concurrency`` at a time on each.

    ``request.out`` gets a list aligned with the items. A failed item never loses the others; an
    answer cut off by a failing server is asked again from the start on another one (a partial
    answer is never stored as complete); the stop button keeps every answer so far.
    """
    cancel = cancel or CancelToken()
    if journal is not None:
        journal = dataclasses.replace(journal, defer=True)  # many short answers: one write each
    prompts = request.map_prompts
    results: list[OllamaResponse | None] = [None] * len(prompts)
    pool = _Pool(len(prompts), len(backends), cancel)
    sink = NullSink()

    def work(server: int) -> None:
        backend = backends[server]
        while (index := pool.take(server)) is not None:
            result = stream_answer(
                backend,
                request.body(prompt=prompts[index]),
                sink,
                out_name=f"{request.out}[{index}]",
                cancel=cancel,
                journal=journal,
            )
            if isinstance(result.error, ModelNotFoundError) and len(backends) > 1:
                print(
                    f"{backend.base_url} does not have {request.model}; it is left out of "
                    "this --map.",
                    file=sys.stderr,
                    flush=True,
                )
                pool.leave(server, index, result)
                return
            if _server_failed(result.error) and not cancel.cancelled:
                pool.failed(server, index, result)
            else:
                pool.answered(server)
                pool.done(index, result)

    workers = [
        threading.Thread(target=contextvars.copy_context().run, args=(work, server), daemon=True)
        for server in range(len(backends))
        for _ in range(request.concurrency)
    ]
    interrupted = False
    describe_items = getattr(view, "describe_items", None)
    if describe_items is not None:
        describe_items(prompts)
    view.start()
    for worker in workers:
        worker.start()
    try:
        while any(worker.is_alive() for worker in workers) or not pool.finished.empty():
            try:
                index, result = pool.finished.get(timeout=_POLL)
            except queue.Empty:
                continue
            results[index] = result
            view.progress(index, result)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if interrupted or cancel.cancelled:
            interrupted = True
            cancel.cancel()
            with pool.changed:
                pool.changed.notify_all()
            for worker in workers:
                worker.join()
            while not pool.finished.empty():
                index, result = pool.finished.get()
                results[index] = result
    mapped = MappedAnswers(
        result if result is not None else OllamaResponse(model=request.model, interrupted=True)
        for result in results
    )
    namespace[request.out] = mapped
    view.finish(mapped, request.out)
    if interrupted:
        raise Interrupted(
            f"Stopped after {mapped.answered} of {len(prompts)} items; {request.out} holds the "
            "answers so far (items not reached are empty and marked .interrupted)."
        )
    return mapped


#: ``--bg`` answers still running in this kernel (``python -m ollama_magic run`` waits for them).
_RUNNING: set[BackgroundJob] = set()
_RUNNING_LOCK = threading.Lock()


def wait_for_background(timeout: float | None = None) -> int:
    """Wait until every ``--bg`` answer of this kernel has ended; return how many there were.

    A notebook run headless ends when its last cell does: without this, an answer still
    streaming in the background would be missing from the saved notebook.
    """
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    deadline = None if timeout is None else time.monotonic() + timeout
    for job in running:
        job.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return len(running)


class BackgroundJob:
    """Handle of a ``--bg`` answer: ``.done``, ``.wait(timeout)``, ``.cancel()``, ``.result``.

    The worker runs in a copy of the cell's context, so its output (the live view, the final
    Markdown) goes to that cell even while other cells run.
    """

    def __init__(self, out_name: str, namespace: MutableMapping[str, Any]) -> None:
        self.out_name = out_name
        self._namespace = namespace
        self.result: Any = None
        self.error: OllamaMagicError | None = None
        self.token = CancelToken()
        self.thread: threading.Thread | None = None
        self._finished = threading.Event()

    def start(self, work: Callable[[CancelToken], Any]) -> None:
        context = contextvars.copy_context()

        def run() -> None:
            try:
                with answering(self.token):
                    self.result = work(self.token)
            except OllamaMagicError as exc:
                self.error = exc
                self.result = self._namespace.get(self.out_name)  # what arrived is kept
                print(f"{exc.title}: {exc.message}", file=sys.stderr, flush=True)
            finally:
                with _RUNNING_LOCK:
                    _RUNNING.discard(self)
                self._finished.set()

        with _RUNNING_LOCK:
            _RUNNING.add(self)
        self.thread = threading.Thread(target=context.run, args=(run,), daemon=True)
        self.thread.start()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the answer is complete (or ``timeout`` seconds); return it."""
        self._finished.wait(timeout)
        return self.result

    def cancel(self) -> None:
        """Stop the answer and hang up; the partial text is kept in the variable."""
        self.token.cancel()

    def __repr__(self) -> str:
        state = "done" if self.done else ("cancelling" if self.cancelled else "running")
        return f"<ollama background answer → {self.out_name}: {state}>"
