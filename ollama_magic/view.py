"""Views render an answer's events: live in a notebook, in a terminal, or not at all.

The live view is built around one cost model. Re-sending the whole text on every update (an
``HTML.value`` or ``Output.append_stdout`` per token) makes the bytes sent to the browser grow
with the square of the answer. Instead, new text goes out as ``stream`` messages that carry only
the new characters, routed by the front end into an ``ipywidgets.Output`` (the widget captures
messages whose parent is the cell's request), and batched so the browser gets at most ~22
updates a second, the first one as soon as it arrives. When the answer ends, the widget is
replaced in place (``update_display``) by a plain Markdown output that the saved notebook,
nbconvert and GitHub show without widget state.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import json
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from .markdown import safe_markdown
from .result import OllamaResponse

#: Shortest gap between two text updates sent to the front end (seconds).
TEXT_INTERVAL = 0.045
#: Gap between two status-line updates while nothing else changes (seconds).
STATUS_INTERVAL = 1.0


class View(Protocol):
    """What the magic drives: ``start``, then any number of deltas, then ``finish``."""

    def start(self) -> None: ...

    def thinking(self, text: str) -> None: ...

    def answer(self, text: str) -> None: ...

    def trace(self, line: bytes, at: float) -> None: ...

    def finish(self, result: OllamaResponse, out_name: str) -> None: ...


class QuietView:
    """Shows nothing (``--quiet``): the answer only lands in the variable."""

    def start(self) -> None:
        pass

    def thinking(self, text: str) -> None:
        pass

    def answer(self, text: str) -> None:
        pass

    def trace(self, line: bytes, at: float) -> None:
        pass

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        pass


#: Lines kept in the --trace panel, and the longest line shown in full.
TRACE_LINES = 200
TRACE_WIDTH = 400


def format_trace_line(line: bytes, elapsed: float) -> str:
    """One --trace row: arrival time since the request, then the raw line (shortened).

    >>> format_trace_line(b'{"done":false}', 0.0123)
    '+0.012 s  {"done":false}'
    """
    text = line.decode("utf-8", "replace")
    if len(text) > TRACE_WIDTH:
        text = f"{text[:TRACE_WIDTH]}… ({len(line)} bytes)"
    return f"+{elapsed:.3f} s  {text}"


def format_status(
    model: str,
    elapsed: float,
    chunks: int,
    phase: str,
    tokens_per_second: float | None = None,
) -> str:
    """The one-line status, e.g. ``llama3.2 · answering · 3.1 s · 52 tokens · 16.8 tokens/s``.

    >>> format_status("llama3.2", 0.4, 0, "loading model…")
    'llama3.2 · loading model… · 0.4 s'
    >>> format_status("m", 2.0, 10, "answering", 5.0)
    'm · answering · 2.0 s · 10 tokens · 5.0 tokens/s'
    """
    parts = [model, phase, f"{elapsed:.1f} s"]
    if chunks:
        parts.append(f"{chunks} token{'s' if chunks != 1 else ''}")
    if tokens_per_second:
        parts.append(f"{tokens_per_second:.1f} tokens/s")
    return " · ".join(parts)


def outcome_line(result: OllamaResponse, out_name: str) -> str:
    """A short closing remark for answers that did not finish normally ('' when complete)."""
    chars = len(result)
    kept = f"after {chars} characters; the partial answer is in `{out_name}`"
    if result.interrupted:
        return f"interrupted {kept}" if chars else "interrupted before the answer began"
    if result.error is not None:
        return f"failed {kept}" if chars else "failed before the answer began"
    if result.done_reason == "length":
        return "cut off at the token limit (done_reason 'length'; raise num_predict)"
    return ""


#: Answers up to this many characters are saved whole in text/plain too; longer ones only begin
#: there (the Markdown beside it always holds the whole answer).
PLAIN_LIMIT = 2000


def plain_text(text: str, out_name: str) -> str:
    """The ``text/plain`` of a final output: the answer if short, else its start and a pointer.

    Every notebook front end, nbconvert and GitHub show the ``text/markdown`` beside it; plain
    text is the fallback of text-only readers. Keeping a long answer there too would send and
    save it twice (three times with the live text), so a long one is cut at a line or word.

    >>> plain_text("short answer", "r")
    'short answer'
    >>> plain_text("word " * 1000, "r").splitlines()[-1]
    '… [3,001 more characters; the whole answer is in `r`]'
    """
    if len(text) <= PLAIN_LIMIT:
        return str.__str__(text)
    cut = text.rfind("\n", 0, PLAIN_LIMIT)
    if cut < PLAIN_LIMIT // 2:
        cut = text.rfind(" ", 0, PLAIN_LIMIT)
    if cut < PLAIN_LIMIT // 2:
        cut = PLAIN_LIMIT
    where = f"; the whole answer is in `{out_name}`" if out_name else ""
    return f"{text[:cut].rstrip()}\n… [{len(text) - cut:,} more characters{where}]"


def final_bundle(result: OllamaResponse, out_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The persistent display output: safe Markdown for people, plain text for text-only readers.

    The Markdown is made from the result itself (no copy), and is the result itself when the
    answer needs no escaping.
    """
    body = safe_markdown(result) if result else ""
    note = outcome_line(result, out_name)
    if note:
        body = f"{body}\n\n*{note}*" if body else f"*{note}*"
    elif not body and result.error is None:
        body = "*(empty answer)*"
    data = {"text/markdown": body, "text/plain": plain_text(result, out_name)}
    metadata = {"ollama_magic": result.provenance or provenance(result)}
    return data, metadata


def provenance(result: OllamaResponse, digest: str | None = None) -> dict[str, Any]:
    """What produced an answer, saved with it so a notebook says how to reproduce it."""
    from . import __version__

    request = result.request or {}
    options = request.get("options") or {}
    messages = request.get("messages") or []
    system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
    return {
        "model": result.model,
        "digest": digest,
        "host": result.host,
        "options": options,
        "seed": options.get("seed"),
        "system": system,
        "format": request.get("format"),
        "think": request.get("think"),
        "done_reason": result.done_reason,
        "interrupted": result.interrupted,
        "error": result.error.message if result.error is not None else None,
        "stats": result.stats.as_dict(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ollama_magic": __version__,
    }


class TerminalView:
    """Plain streaming to stdout with flush: terminal IPython and ``ipython script.ipy``."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._thinking = False
        self._wrote = False
        self._started = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()

    def trace(self, line: bytes, at: float) -> None:
        print(format_trace_line(line, at - self._started), file=sys.stderr, flush=True)

    def thinking(self, text: str) -> None:
        if not self._thinking:
            self._thinking = True
            self.stream.write("\x1b[2mThinking: ")
        self.stream.write(text)
        self.stream.flush()

    def answer(self, text: str) -> None:
        if self._thinking:
            self._thinking = False
            self.stream.write("\x1b[0m\n\n")
        self._wrote = True
        self.stream.write(text)
        self.stream.flush()

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        if self._thinking:
            self.stream.write("\x1b[0m")
        note = outcome_line(result, out_name)
        end = f"\n[{note}]\n" if note else "\n"
        self.stream.write(end if self._wrote or note else "")
        self.stream.flush()


class _Batcher:
    """Collects text from the reading thread(s) and sends it at a bounded rate.

    Sending on a timer rather than on the next token means a stall in the model never leaves
    already-received words unseen, while a fast model still causes at most one update per
    ``interval``. The first text after a quiet period goes out immediately.

    The reading thread takes no lock: an interrupt (KeyboardInterrupt) can strike at any
    bytecode, and one that lands just after a lock is acquired leaves it held forever. It only
    appends to a deque and, when the sender has nothing scheduled, asks for a wake-up.
    Subclasses decide where the sending runs (:func:`make_batcher` picks one).
    """

    def __init__(
        self,
        send_text: Callable[[str, str], None],
        send_status: Callable[[], None],
        interval: float = TEXT_INTERVAL,
        status_interval: float = STATUS_INTERVAL,
    ) -> None:
        self._send_text = send_text
        self._send_status = send_status
        self._interval = interval
        self._status_interval = status_interval
        # One queue of plain strings per kind of text, kinds in the order they first appeared
        # (thinking before the answer). A token waiting here costs its str and a slot.
        self._queues: dict[str, collections.deque[str]] = {}
        self._kinds: list[str] = []
        self._closed = False
        self._idle = False
        self._start()

    def _start(self) -> None:
        raise NotImplementedError

    def add(self, kind: str, text: str) -> None:
        queue = self._queues.get(kind)
        if queue is None:  # each kind has one producer thread, so this cannot race
            queue = self._queues[kind] = collections.deque()
            self._kinds.append(kind)
        queue.append(text)
        if len(queue) > COMPACT_AFTER:
            _compact_tail(queue, COMPACT_AFTER)
        if self._idle:
            self._idle = False
            self._wake()

    def _wake(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop sending on the timer; what is still pending goes out before this returns."""
        raise NotImplementedError

    def _has_pending(self) -> bool:
        return any(self._queues[kind] for kind in self._kinds[:])

    def _send_pending(self) -> None:
        """One message per kind with everything that kind has waiting (none if nothing is)."""
        for kind in self._kinds[:]:
            queue = self._queues[kind]
            parts = []
            with contextlib.suppress(IndexError):  # the producer may be compacting the tail
                for _ in range(len(queue)):
                    parts.append(queue.popleft())
            if parts:
                self._send_text(kind, "".join(parts))


#: Waiting tokens of one kind are joined in runs of this many. When the sender is held up (it
#: needs the GIL, and a fast stream keeps the reading thread busy), thousands of tokens may wait;
#: as separate strings they would cost about ten times their text.
COMPACT_AFTER = 256


def _compact_tail(queue: collections.deque[str], count: int) -> None:
    """Join the newest ``count`` strings of ``queue`` into one, in place and in order.

    Only the producer appends, and it pops from the right while the sender pops from the left,
    so the joined run goes back exactly where it was taken from.
    """
    parts = []
    with contextlib.suppress(IndexError):  # the sender took the rest meanwhile
        for _ in range(count):
            parts.append(queue.pop())
    if parts:
        parts.reverse()
        queue.append("".join(parts))


class _LoopBatcher(_Batcher):
    """Sends from timers on the kernel's IOPub event loop, the thread that owns the socket.

    At 100 tokens/s the cost of an update is mostly threads waking up, not the bytes. Here an
    update is one wake-up of the IOPub thread, which then writes to its own socket
    (``_CellOutput.send_text``); a helper thread would add two wake-ups and a hand-over to that
    thread for each update.
    """

    def __init__(self, io_loop: Any, *args: Any, **kwargs: Any) -> None:
        self._loop = io_loop
        super().__init__(*args, **kwargs)

    def _start(self) -> None:
        self._timer: Any = None  # the next text tick; touched on the loop's thread only
        self._last_text = float("-inf")
        self._flushed = threading.Event()
        self._idle = True
        # Callbacks run in a copy of the caller's context: widget updates sent from them carry
        # the cell's parent header (ipykernel keeps it in a context variable).
        self._loop.add_callback(self._schedule_status)

    def _wake(self) -> None:
        self._loop.add_callback(self._woken)

    def _woken(self) -> None:
        if self._timer is None and not self._closed:
            self._tick()

    def _tick(self) -> None:
        self._timer = None
        if self._closed:
            return
        wait = self._last_text + self._interval - time.monotonic()
        if wait > 0:
            self._timer = self._loop.call_later(wait, self._tick)
        elif self._has_pending():
            self._last_text = time.monotonic()
            # Look again one interval later rather than going idle: while the model streams,
            # that is the only wake-up per update.
            self._timer = self._loop.call_later(self._interval, self._tick)
            self._send_pending()
        else:
            # Declare idleness first, then look again, so an append between the two steps is
            # never missed.
            self._idle = True
            if self._has_pending():
                self._idle = False
                self._timer = self._loop.call_later(0, self._tick)

    def _schedule_status(self) -> None:
        if not self._closed:
            self._loop.call_later(self._status_interval, self._status_tick)

    def _status_tick(self) -> None:
        if not self._closed:
            self._send_status()
            self._schedule_status()

    def _flush(self) -> None:
        try:
            self._send_pending()
        finally:
            self._flushed.set()

    def close(self) -> None:
        self._closed = True
        self._loop.add_callback(self._flush)
        # The loop answers within microseconds; a kernel shutting down may not answer at all.
        if not self._flushed.wait(2.0):
            self._send_pending()


class _ThreadBatcher(_Batcher):
    """Sends from a helper thread: for kernels whose IOPub thread this package cannot use."""

    def _start(self) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        # Run in a copy of the caller's context, so that widget updates sent from the helper
        # thread carry the cell's parent header (ipykernel keeps it in a context variable).
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="ollama-magic-view", daemon=True
        )
        self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"!")

    def _run(self) -> None:
        last_text = 0.0
        next_status = time.monotonic() + self._status_interval
        try:
            while not self._closed:
                now = time.monotonic()
                if self._has_pending():
                    wait = last_text + self._interval - now
                    if wait <= 0:
                        last_text = now
                        self._send_pending()
                        continue
                else:
                    # Declare idleness first, then look again, so an append between the two
                    # steps is never missed.
                    self._idle = True
                    if self._has_pending():
                        self._idle = False
                        continue
                    wait = next_status - now
                if now >= next_status:
                    self._send_status()
                    next_status = time.monotonic() + self._status_interval
                    continue
                wait = min(wait, next_status - now)
                ready, _, _ = select.select([self._wake_read], [], [], max(wait, 0.0))
                if ready:
                    os.read(self._wake_read, 4096)
        finally:
            self._idle = False

    def close(self) -> None:
        """Stop the helper thread, then send what is still pending from the caller's thread."""
        self._closed = True
        self._wake()
        self._thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)
        self._send_pending()


def make_batcher(
    cell: _CellOutput,
    send_text: Callable[[str, str], None],
    send_status: Callable[[], None],
    interval: float = TEXT_INTERVAL,
) -> _Batcher:
    """The cheapest batcher the kernel allows: on its IOPub loop, else on a helper thread."""
    if cell.io_loop is not None:
        return _LoopBatcher(cell.io_loop, send_text, send_status, interval)
    return _ThreadBatcher(send_text, send_status, interval)


class LiveView:
    """Live widget in a Jupyter kernel: status line, thinking, streamed answer, final Markdown."""

    def __init__(self, shell: Any, model: str, trace: bool = False) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._shell = shell
        self._model = model
        self._widgets = widgets
        self._display = display
        self._started = 0.0
        self._chunks = 0
        self._phase = "loading model…"
        self._thinking_since: float | None = None
        self._answer_started = False
        self._cell: _CellOutput | None = None
        self._batcher: _Batcher | None = None
        # The thinking panel is made when thinking arrives: four widgets fewer to open and
        # close for the many models that do not think.
        self._thinking_out: Any = None
        self._thinking_box: Any = None
        self._first_token_at: float | None = None
        self._handle: Any = None
        self._box: Any = None
        self._status_phase = ""
        self._tracing = trace
        self._trace_lines: collections.deque[str] = collections.deque(maxlen=TRACE_LINES)

    # -- View --------------------------------------------------------------------------------

    def start(self) -> None:
        widgets = self._widgets
        self._cell = _CellOutput(self._shell)
        self._status = widgets.Label(value=f"{self._model} · loading model…")
        self._answer_out = widgets.Output()
        children = [self._status, self._answer_out]
        if self._tracing:
            self._trace_area = widgets.Textarea(
                value="",
                placeholder="raw stream lines appear here",
                disabled=True,
                layout=widgets.Layout(width="100%", height="12em"),
            )
            children.append(self._trace_area)
        self._box = widgets.VBox(children, _dom_classes=("ollama-magic-live",))
        # Display first: once an Output widget owns the cell's message id, front ends route
        # every output of the cell into it, including this display itself.
        self._handle = self._display(self._box, display_id=True)
        self._cell.capture_into(self._answer_out)
        self._started = time.monotonic()
        self._started_perf = time.perf_counter()
        self._batcher = make_batcher(self._cell, self._send_text, self._update_status)

    def _send_text(self, kind: str, text: str) -> None:
        if kind == "trace":
            self._trace_lines.extend(text.splitlines())
            self._trace_area.value = "\n".join(self._trace_lines)
            return
        if kind == "thinking":
            if self._thinking_box is None:
                self._add_thinking_panel()
            self._cell.capture_into(self._thinking_out)
        else:
            if not self._answer_started:
                self._answer_started = True
                if self._thinking_box is not None and self._thinking_since is not None:
                    seconds = time.monotonic() - self._thinking_since
                    self._thinking_box.titles = (f"Thought for {seconds:.1f} s",)
                    self._thinking_box.selected_index = None
            self._cell.capture_into(self._answer_out)
        self._cell.send_text(text)
        if self._phase != self._status_phase:
            self._update_status()  # say "answering" at once; counts follow on the status tick

    def _add_thinking_panel(self) -> None:
        widgets = self._widgets
        self._thinking_out = widgets.Output(
            layout=widgets.Layout(max_height="16em", overflow="auto")
        )
        self._thinking_box = widgets.Accordion(
            children=[self._thinking_out], titles=("Thinking…",), selected_index=0
        )
        status, *rest = self._box.children
        self._box.children = (status, self._thinking_box, *rest)

    def _update_status(self) -> None:
        chunks, phase = self._chunks, self._phase
        self._status_phase = phase
        elapsed = time.monotonic() - self._started
        rate = None
        if self._first_token_at is not None and chunks > 1:
            span = time.monotonic() - self._first_token_at
            rate = (chunks - 1) / span if span > 0 else None
        self._status.value = format_status(self._model, elapsed, chunks, phase, rate)

    def thinking(self, text: str) -> None:
        self._chunks += 1
        if self._thinking_since is None:
            self._thinking_since = self._first_token_at = time.monotonic()
            self._phase = "thinking…"
        assert self._batcher is not None
        self._batcher.add("thinking", text)

    def trace(self, line: bytes, at: float) -> None:
        elapsed = at - self._started_perf
        assert self._batcher is not None
        self._batcher.add("trace", format_trace_line(line, elapsed) + "\n")

    def answer(self, text: str) -> None:
        self._chunks += 1
        if self._phase != "answering":
            self._phase = "answering"
            if self._first_token_at is None:
                self._first_token_at = time.monotonic()
        assert self._batcher is not None
        self._batcher.add("answer", text)

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        if self._batcher is not None:
            self._batcher.close()
        if self._box is None or self._cell is None:  # interrupted before the widget existed
            return
        self._cell.release()
        data, metadata = final_bundle(result, out_name)
        if self._handle is not None:
            self._cell.replace(self._handle, data, metadata)
        else:
            self._display(data, metadata=metadata, raw=True)
        close_tree(self._box)


class _CellOutput:
    """What the live views send to the front end on behalf of the running cell.

    New text goes out as ``stream`` messages with the cell's request as parent; the Output
    widget that holds that request's id (``capture_into``) shows them. ``replace`` sends the
    final output in place of the widget.
    """

    def __init__(self, shell: Any) -> None:
        self._shell = shell
        self._kernel = shell.kernel
        self._parent = self._kernel.get_parent("shell")
        self._capturing: Any = None
        self._iopub = _usable_iopub_thread(self._kernel)

    @property
    def io_loop(self) -> Any:
        """The event loop of the thread that owns the IOPub socket, if it can be used."""
        return self._iopub.io_loop if self._iopub is not None else None

    def capture_into(self, output: Any) -> None:
        """Route the cell's output into ``output`` (and out of the widget that had it)."""
        if self._capturing is output:
            return
        self.release()
        output.msg_id = self._parent["header"]["msg_id"]
        self._capturing = output

    def release(self) -> None:
        if self._capturing is not None:
            self._capturing.msg_id = ""
            self._capturing = None

    def send_text(self, text: str) -> None:
        """Publish new text only.

        On the IOPub thread itself the message goes straight to the socket, after whatever
        other threads queued for it (widget updates among them), so the order is kept.
        """
        socket = self._kernel.iopub_socket
        iopub = self._iopub
        if iopub is not None and threading.current_thread() is iopub.thread:
            iopub._handle_event(None)
            socket = iopub.socket
        self._kernel.session.send(
            socket,
            "stream",
            {"name": "stdout", "text": text},
            parent=self._parent,
            ident=b"stream.stdout",
        )

    def replace(self, handle: Any, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Send the final output in place of the widget (``update_display_data``).

        This is the one big message of an answer, so it is serialised here, in slices: the
        kernel's serialiser may be orjson, which reserves about 2.8 times a long answer for it,
        and ``str.encode`` reserves twice the text. A display publisher without a socket (one
        that captures output) or content that JSON cannot encode takes IPython's usual path.
        """
        topic = getattr(self._shell.display_pub, "topic", None)
        packed = None
        if isinstance(topic, bytes):
            content = {
                "data": data,
                "metadata": metadata,
                "transient": {"display_id": handle.display_id},
            }
            with contextlib.suppress(TypeError, ValueError):
                packed = _utf8_json(content)
        if packed is None:
            handle.update(data, metadata=metadata, raw=True)
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what the cell printed before stays before the answer
        self._kernel.session.send(
            self._kernel.iopub_socket,
            "update_display_data",
            packed,
            parent=self._parent,
            ident=topic,
        )


def _usable_iopub_thread(kernel: Any) -> Any:
    """ipykernel's IOPub thread if it offers what :class:`_LoopBatcher` needs, else None.

    Those are ipykernel internals (a queue of pending sends, and the handler that drains it),
    so anything unexpected means the portable helper-thread batcher instead.
    """
    iopub = getattr(getattr(kernel, "iopub_socket", None), "io_thread", None)
    needed = ("io_loop", "socket", "thread", "_events", "_handle_event")
    if iopub is None or not all(hasattr(iopub, name) for name in needed):
        return None
    thread = iopub.thread
    if not isinstance(thread, threading.Thread) or not thread.is_alive() or iopub.socket is None:
        return None
    return iopub


def _utf8_json(content: dict[str, Any]) -> bytes:
    """``content`` as UTF-8 JSON, holding about twice its size at most while encoding.

    >>> _utf8_json({"text/plain": "café"})
    b'{"text/plain": "caf\\xc3\\xa9"}'
    """
    # Piece by piece: one str for the whole message would take 2 or 4 bytes per character as
    # soon as any string in it (the "…" of text/plain, an emoji) is beyond Latin-1.
    step = 1 << 16
    parts = []
    for chunk in json.JSONEncoder(ensure_ascii=False, allow_nan=False).iterencode(content):
        parts.extend(chunk[i : i + step].encode() for i in range(0, len(chunk), step))
    return b"".join(parts)


def close_tree(widget: Any) -> None:
    """Close a widget with its children, layout and style, so no widget state is left behind."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    for part in ("layout", "style"):
        sub = getattr(widget, part, None)
        if sub is not None:
            sub.close()
    widget.close()


def choose_view(shell: Any, model: str, quiet: bool, trace: bool = False) -> View:
    """The live widget in a Jupyter kernel, plain stdout elsewhere, nothing with --quiet."""
    if quiet:
        return QuietView()
    if getattr(shell, "kernel", None) is not None:
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return TerminalView()
        return LiveView(shell, model, trace=trace)
    return TerminalView()


# -- comparing several models ----------------------------------------------------------------

#: Comparisons switch the capturing Output widget between columns, two small messages per
#: switch, so they update less often than a single answer.
COMPARE_INTERVAL = 0.1


def compare_markdown(answers: dict[str, OllamaResponse], out_name: str = "") -> str:
    """All answers of a comparison, one section per model, as safe Markdown."""
    sections = []
    for model, result in answers.items():
        name = safe_markdown(model).replace("*", "\\*").replace("_", "\\_")
        body = safe_markdown(result.text) if result else ""
        note = outcome_line(result, f"{out_name}['{model}']") if out_name else ""
        if result.error is not None and not result.interrupted and not note:
            note = f"failed: {result.error.message}"
        if note:
            body = f"{body}\n\n*{note}*" if body else f"*{note}*"
        sections.append(f"#### {name}\n\n{body or '*(empty answer)*'}")
    return "\n\n---\n\n".join(sections)


class CompareView(Protocol):
    """What a comparison drives: one column per model, fed from several threads."""

    def start(self) -> None: ...

    def thinking(self, index: int, text: str) -> None: ...

    def answer(self, index: int, text: str) -> None: ...

    def ended(self, index: int) -> None: ...

    def finish(self, answers: dict[str, OllamaResponse], out_name: str) -> None: ...


class QuietCompareView:
    """--quiet: nothing shown."""

    def start(self) -> None:
        pass

    def thinking(self, index: int, text: str) -> None:
        pass

    def answer(self, index: int, text: str) -> None:
        pass

    def ended(self, index: int) -> None:
        pass

    def finish(self, answers: dict[str, OllamaResponse], out_name: str) -> None:
        pass


class TerminalCompareView(QuietCompareView):
    """Terminal: interleaved tokens would be unreadable, so each answer is printed whole."""

    def __init__(self, models: list[str]) -> None:
        self.models = models

    def start(self) -> None:
        print(f"Asking {', '.join(self.models)}…", flush=True)

    def finish(self, answers: dict[str, OllamaResponse], out_name: str) -> None:
        for model, result in answers.items():
            note = outcome_line(result, f"{out_name}['{model}']")
            print(f"\n── {model} ──\n{result.text}" + (f"\n[{note}]" if note else ""), flush=True)


class LiveCompareView:
    """Columns side by side, each with its own status line, streamed as deltas."""

    def __init__(self, shell: Any, models: list[str]) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._widgets = widgets
        self._display = display
        self._models = models
        self._chunks = [0] * len(models)
        self._phase = ["loading model…"] * len(models)
        self._shell = shell
        self._cell: _CellOutput | None = None
        self._batcher: _Batcher | None = None
        self._box: Any = None
        self._handle: Any = None

    def start(self) -> None:
        widgets = self._widgets
        self._cell = _CellOutput(self._shell)
        self._status = [widgets.Label(value=f"{m} · loading model…") for m in self._models]
        self._outs = [widgets.Output() for _ in self._models]
        columns = [
            widgets.VBox(
                [status, out],
                layout=widgets.Layout(flex="1 1 0", min_width="0", padding="0 8px"),
            )
            for status, out in zip(self._status, self._outs, strict=True)
        ]
        self._box = widgets.HBox(columns, layout=widgets.Layout(width="100%"))
        self._box.add_class("ollama-magic-compare")
        self._handle = self._display(self._box, display_id=True)
        self._started = time.monotonic()
        self._batcher = make_batcher(
            self._cell, self._send_text, self._update_status, interval=COMPARE_INTERVAL
        )

    def _send_text(self, kind: str, text: str) -> None:
        assert self._cell is not None
        self._cell.capture_into(self._outs[int(kind)])
        self._cell.send_text(text)

    def _update_status(self) -> None:
        elapsed = time.monotonic() - self._started
        for index, model in enumerate(self._models):
            value = format_status(model, elapsed, self._chunks[index], self._phase[index])
            if self._phase[index] in ("done", "stopped"):
                value = f"{model} · {self._phase[index]} · {self._chunks[index]} tokens"
            self._status[index].value = value

    def thinking(self, index: int, text: str) -> None:
        self._chunks[index] += 1
        self._phase[index] = "thinking…"

    def answer(self, index: int, text: str) -> None:
        self._chunks[index] += 1
        self._phase[index] = "answering"
        assert self._batcher is not None
        self._batcher.add(str(index), text)

    def ended(self, index: int) -> None:
        self._phase[index] = "done"

    def finish(self, answers: dict[str, OllamaResponse], out_name: str) -> None:
        if self._batcher is not None:
            self._batcher.close()
        if self._box is None or self._cell is None:
            return
        self._cell.release()
        markdown = compare_markdown(answers, out_name)
        text = "\n\n".join(
            f"== {m} ==\n{plain_text(r, f'{out_name}[{m!r}]' if out_name else '')}"
            for m, r in answers.items()
        )
        metadata = {"ollama_magic": {m: r.provenance for m, r in answers.items()}}
        data = {"text/markdown": markdown, "text/plain": text}
        if self._handle is not None:
            self._cell.replace(self._handle, data, metadata)
        close_tree(self._box)


def choose_compare_view(shell: Any, models: list[str], quiet: bool) -> CompareView:
    """Columns in a Jupyter kernel, whole answers printed elsewhere, nothing with --quiet."""
    if quiet:
        return QuietCompareView()
    if getattr(shell, "kernel", None) is not None:
        return LiveCompareView(shell, models)
    return TerminalCompareView(models)


# -- mapping a prompt over data -----------------------------------------------------------------


def map_summary(results: list[OllamaResponse], out_name: str = "") -> str:
    """One line about a --map run (how many answered, which failed), as Markdown."""
    failed = [i for i, r in enumerate(results) if not r.complete]
    answered = len(results) - len(failed)
    where = f" in `{out_name}`" if out_name else ""
    line = f"**Mapped {len(results)} items**{where}: {answered} answered"
    if failed:
        shown = ", ".join(str(i) for i in failed[:20]) + (" …" if len(failed) > 20 else "")
        line += f", {len(failed)} failed or stopped (items {shown}; see `.error` on each)"
    return line + "."


class MapView(Protocol):
    def start(self) -> None: ...

    def progress(self, index: int, result: OllamaResponse) -> None: ...

    def finish(self, results: list[OllamaResponse], out_name: str) -> None: ...


class TerminalMapView:
    """A progress line rewritten in place, then the summary."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total, self.quiet, self.done, self.failed = total, quiet, 0, 0

    def start(self) -> None:
        self.progress(-1, None)

    def progress(self, index: int, result: OllamaResponse | None) -> None:
        if result is not None:
            self.done += 1
            self.failed += not result.complete
        if not self.quiet:
            failed = f", {self.failed} failed" if self.failed else ""
            print(f"\r{self.done}/{self.total} answered{failed}", end="", flush=True)

    def finish(self, results: list[OllamaResponse], out_name: str) -> None:
        if not self.quiet:
            print("\n" + map_summary(results, out_name).replace("**", ""), flush=True)


class LiveMapView(TerminalMapView):
    """A progress bar, replaced by the summary line when the run ends."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        import ipywidgets as widgets
        from IPython.display import display

        self._bar = widgets.IntProgress(value=0, min=0, max=max(total, 1), description="ollama")
        self._label = widgets.Label(value=f"0/{total} answered")
        self._box = widgets.HBox([self._bar, self._label])
        self._display = display

    def start(self) -> None:
        self._handle = self._display(self._box, display_id=True)

    def progress(self, index: int, result: OllamaResponse | None) -> None:
        if result is None:
            return
        self.done += 1
        self.failed += not result.complete
        self._bar.value = self.done
        failed = f", {self.failed} failed" if self.failed else ""
        self._label.value = f"{self.done}/{self.total} answered{failed}"

    def finish(self, results: list[OllamaResponse], out_name: str) -> None:
        summary = map_summary(results, out_name)
        self._handle.update({"text/markdown": summary, "text/plain": summary}, raw=True)
        close_tree(self._box)


def choose_map_view(shell: Any, total: int, quiet: bool) -> MapView:
    if getattr(shell, "kernel", None) is not None and not quiet:
        return LiveMapView(total)
    return TerminalMapView(total, quiet=quiet)
