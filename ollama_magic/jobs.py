"""The modes, each composed from :func:`~ollama_magic.stream.stream_answer`.

- :func:`run_single`: one answer into a live view (also what a ``--bg`` worker runs);
- :func:`run_compare`: one answer per model, on threads, into the columns of one view;
- :func:`run_map`: one answer per item through a bounded pool, into a progress view;
- :class:`BackgroundJob`: any of them on a worker thread that writes into its own cell.

Nothing here imports IPython: views, the namespace and the conversation store are passed in.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import Any

from .conversation import Conversations, Exchange
from .errors import CompareError, Interrupted, OllamaMagicError
from .request import ChatRequest
from .result import OllamaResponse
from .stream import CancelToken, NullSink, stream_answer

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


def record_turn(conversations: Conversations, request: ChatRequest, result: OllamaResponse) -> None:
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
        )
    )


def run_single(
    backend: Any,
    request: ChatRequest,
    view: Any,
    namespace: MutableMapping[str, Any],
    conversations: Conversations,
    cancel: CancelToken | None = None,
) -> OllamaResponse:
    """Stream one answer, store it, record the turn, show the final output; raise its error."""
    result = stream_answer(
        backend,
        request.body(),
        view,
        out_name=request.out,
        cancel=cancel,
        trace=request.trace,
    )
    namespace[request.out] = result
    record_turn(conversations, request, result)
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


def run_map(
    backend: Any,
    request: ChatRequest,
    view: Any,
    namespace: MutableMapping[str, Any],
    cancel: CancelToken | None = None,
) -> MappedAnswers:
    """Ask once per item through a pool of ``request.concurrency`` workers.

    ``request.out`` gets a list aligned with the items; a failed item never loses the others,
    and the stop button keeps every answer so far (items not reached are marked interrupted).
    """
    cancel = cancel or CancelToken()
    prompts = request.map_prompts
    results: list[OllamaResponse | None] = [None] * len(prompts)
    sink = NullSink()

    def ask(index: int) -> OllamaResponse:
        return stream_answer(
            backend,
            request.body(prompt=prompts[index]),
            sink,
            out_name=f"{request.out}[{index}]",
            cancel=cancel,
        )

    interrupted = False
    view.start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=request.concurrency) as pool:
        futures = {pool.submit(ask, i): i for i in range(len(prompts))}
        pending = set(futures)
        try:
            while pending:
                finished, pending = concurrent.futures.wait(
                    pending, timeout=_POLL, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in finished:
                    index = futures[future]
                    results[index] = future.result()
                    view.progress(index, results[index])
                if cancel.cancelled:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
            cancel.cancel()
            for future in pending:
                future.cancel()
            concurrent.futures.wait(pending)
            for future in pending:
                if not future.cancelled():
                    results[futures[future]] = future.result()
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
                self.result = work(self.token)
            except OllamaMagicError as exc:
                self.error = exc
                self.result = self._namespace.get(self.out_name)  # what arrived is kept
                print(f"{exc.title}: {exc.message}", file=sys.stderr, flush=True)
            finally:
                self._finished.set()

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
