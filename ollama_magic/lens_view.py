"""The live teaching lens (``--logprobs``): the answer tinted token by token while it streams.

Cost model: everything sent to the front end stays within the bytes the server streamed. The
answer is a run of plain display outputs, no widget, so every front end that speaks the Jupyter
display protocol shows it: *frozen pieces*, each sent exactly once, and below them a short
*growing tail* (with the status line) that is replaced (``update_display_data``) as it grows.
Sends happen at most every :data:`INTERVAL` seconds, two messages at most: a tail long enough
(:data:`FREEZE_AT` tokens up to a line end, or twice that anywhere) becomes a piece in its own
output and the rest goes on in a new output below. A tail re-send waits while the bytes sent
live exceed :data:`LIVE_SHARE` of an under-estimate of what the server sent; the rest of the
budget is the final output. When the answer ends, the first output becomes the lens itself
(HTML with a tooltip per token) plus the answer as Markdown and plain text, which is what the
notebook saves, and the other outputs become empty.
"""

from __future__ import annotations

import html
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .context import context_line
from .lens import compare_lens_html, lens_bundle, no_logprobs_line, summary_text, token_spans
from .logprobs import Logprobs
from .render import outcome_line
from .result import OllamaResponse

#: Shortest gap between two sends (seconds); each sends a piece and the tail at most.
INTERVAL = 0.08
#: Tokens in the tail before it freezes at the next line end (and twice that: anywhere); each
#: piece frozen raises that by GROWTH, up to LARGEST_FREEZE, so a long answer ends with a few
#: dozen outputs to clear, not one per line.
FREEZE_AT = 48
GROWTH = 1.25
LARGEST_FREEZE = 384
#: Pieces are frozen at most this often (seconds): a fast answer makes a handful of outputs.
PIECE_GAP = 0.3
#: Share of the server's bytes the live updates may use; the final output needs the rest.
LIVE_SHARE = 0.4
_PIECE = '<div style="white-space:pre-wrap;line-height:1.7;font-family:monospace">{}</div>'


def wire_estimate(logprobs: Logprobs, start: int, end: int) -> int:
    """Fewer bytes than any server sends for tokens ``start:end`` with their logprobs.

    An Ollama chunk line carries ~100 bytes of fields around each token, each logprob entry
    ~30 more and each alternative ~30; OpenAI-compatible chunks carry more.
    """
    total = 0
    for i in range(start, end):
        total += 100 + 2 * len(logprobs.token(i)) + 30 * len(logprobs.top(i)) + 30
    return total


class QuietLensView:
    """``--quiet``: nothing shown; the tokens are on the result."""

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


class TerminalLensView(QuietLensView):
    """Outside a notebook: the answer as plain text, then the lens summary in one line."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._thinking = False

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
        self.stream.write(text)
        self.stream.flush()

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        lines = [outcome_line(result, out_name), context_line(result)]
        if result.logprobs:
            lines.append(f"{summary_text(result.logprobs)} (tokens in {out_name}.logprobs)")
        else:
            lines.append(no_logprobs_line(result))
        self.stream.write("\n" + "".join(f"[{line}]\n" for line in lines if line))
        self.stream.flush()


class LiveLensView:
    """The lens in a Jupyter kernel: frozen pieces, a growing tail, then the saved lens."""

    def __init__(self, shell: Any, model: str) -> None:
        self._shell = shell
        self._model = model
        self._seen = 0  # tokens rendered so far
        self._chunks = 0  # tokens (or text chunks, without logprobs) so far
        self._tail: list[str] = []
        self._line_end = 0  # how much of the tail ends with a line end
        self._text_only = True  # until the first logprobs arrive
        self._estimate = 0  # under-estimate of the server's bytes so far
        self._last_update = 0.0
        self._frozen_at = 0.0
        self._freeze_at = FREEZE_AT
        self._started = 0.0
        self._tail_shown = False
        self._cell: _CellDisplays | None = None
        self._tail_id = ""
        self._output_ids: list[str] = []  # every output of the cell, in order; the tail last
        #: UTF-8 bytes of everything this view sent to the front end (live and final).
        self.sent_bytes = 0
        self.updates = 0

    # -- Sink ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._cell = _CellDisplays(self._shell.kernel)
        self._started = time.monotonic()
        self._tail_id = self._cell.new_id()
        self._output_ids.append(self._tail_id)
        self._send(self._cell.display, self._status("loading model…"), flush=True)

    def thinking(self, text: str) -> None:
        self._estimate += 100 + 2 * len(text)
        if not self._tail and time.monotonic() - self._last_update >= 1.0:
            self._last_update = time.monotonic()
            self._update(self._status("thinking…"))

    def trace(self, line: bytes, at: float) -> None:
        pass

    def logprobs(self, store: Logprobs) -> None:
        """New tokens arrived (called before their text): tint them into the tail."""
        self._text_only = False
        end = len(store)
        self._estimate += wire_estimate(store, self._seen, end)
        for i in range(self._seen, end):
            self._tail.append(token_spans(store, i, i + 1, live=True))
            if store.token(i).endswith("\n"):
                self._line_end = len(self._tail)
        self._chunks += end - self._seen
        self._seen = end

    def answer(self, text: str) -> None:
        if self._text_only and text:
            self._chunks += 1
            self._estimate += 100 + 2 * len(text)
            self._tail.append(html.escape(text, quote=False))
            if text.endswith("\n"):
                self._line_end = len(self._tail)
        self._tick()

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        """The first output becomes the lens the notebook keeps; the others become empty."""
        cell = self._cell
        if cell is None:
            return
        note = " ".join(n for n in (outcome_line(result, out_name), context_line(result)) if n)
        data = lens_bundle(result, out_name, note)
        self.sent_bytes += _size(data)
        first, *rest = self._output_ids
        cell.update(first, data, flush=True)
        for output_id in rest:
            cell.update(output_id, {})

    # -- sending -------------------------------------------------------------------------------

    def _status(self, phase: str) -> str:
        elapsed = time.monotonic() - self._started if self._started else 0.0
        return (
            '<div style="font-size:small;color:#666">'
            f"{html.escape(self._model)} · {phase} · {elapsed:.1f} s · {self._chunks:,} tokens"
            "</div>"
        )

    def _tick(self) -> None:
        """At most every INTERVAL: freeze a long tail into a piece, then show the tail.

        A tick sends at most two messages (the piece in the tail's place, and the new tail), so
        the front end gets at most ``2 / INTERVAL`` updates a second however fast tokens come.
        A tail long enough to freeze is not re-sent before PIECE_GAP allows that, so re-sends
        stay as small as the pieces are.
        """
        now = time.monotonic()
        if now - self._last_update < INTERVAL:
            return
        cut = self._line_end if self._line_end >= self._freeze_at else 0
        if not cut and len(self._tail) >= 2 * self._freeze_at:
            cut = len(self._tail)
        if cut and now - self._frozen_at < PIECE_GAP:
            return  # a long tail is not re-sent: it waits to become a piece
        self._last_update = now
        if cut:
            self._freeze(cut)
            self._frozen_at = now
            return
        value = _PIECE.format("".join(self._tail)) + self._status("answering")
        over = self.sent_bytes + len(value) > LIVE_SHARE * self._estimate
        if self._tail_shown and over:
            self._last_update = 0.0  # over budget: try again when more has arrived
            return
        self._tail_shown = True  # the first text shows at once
        self._update(value)

    def _send(self, send: Callable[..., None], html_text: str, flush: bool = False) -> None:
        assert self._cell is not None
        data = {"text/html": html_text}
        self.updates += 1
        self.sent_bytes += _size(data)
        send(self._tail_id, data, flush=flush)

    def _update(self, value: str) -> None:
        assert self._cell is not None
        self._send(self._cell.update, value)

    def _freeze(self, cut: int) -> None:
        """The tail's first ``cut`` tokens become a piece, sent once in the tail's output; the
        rest goes on in a new output below it."""
        assert self._cell is not None
        self._update(_PIECE.format("".join(self._tail[:cut])))
        del self._tail[:cut]
        self._line_end = 0
        self._freeze_at = min(LARGEST_FREEZE, int(self._freeze_at * GROWTH))
        self._tail_id = self._cell.new_id()
        self._output_ids.append(self._tail_id)
        tail = _PIECE.format("".join(self._tail)) if self._tail else ""
        self._send(self._cell.display, tail + self._status("answering"))


class _CellDisplays:
    """Display outputs of the running cell, created and replaced by display id.

    Sent straight to the kernel's IOPub socket with the cell's request as parent, taken when the
    answer starts, so a ``--bg`` answer lands in its own cell while later cells run.
    """

    def __init__(self, kernel: Any) -> None:
        self._kernel = kernel
        self._parent = kernel.get_parent("shell")
        self._prefix = uuid.uuid4().hex[:12]
        self._count = 0

    def new_id(self) -> str:
        self._count += 1
        return f"ollama-lens-{self._prefix}-{self._count}"

    def display(self, display_id: str, data: dict[str, str], flush: bool = False) -> None:
        """A new output at the end of the cell (``flush``: after what the cell printed)."""
        self._send("display_data", display_id, data, flush)

    def update(self, display_id: str, data: dict[str, str], flush: bool = False) -> None:
        """Replace the output shown under ``display_id``, wherever it is in the cell."""
        self._send("update_display_data", display_id, data, flush)

    def _send(self, kind: str, display_id: str, data: dict[str, str], flush: bool) -> None:
        if flush:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        content = {"data": data, "metadata": {}, "transient": {"display_id": display_id}}
        self._kernel.session.send(
            self._kernel.iopub_socket, kind, content, parent=self._parent, ident=kind.encode()
        )


def _size(data: Mapping[str, str]) -> int:
    return sum(len(value.encode("utf-8", "replace")) for value in data.values())


def with_compare_lens(
    shell: Any, compare: Callable[[Any], Any], namespace: Mapping[str, Any], out: str
) -> Callable[[Any], Any]:
    """Run a comparison, then show every model's lens side by side (also when one failed)."""

    def run(cancel: Any) -> Any:
        try:
            return compare(cancel)
        finally:
            answers = namespace.get(out)
            if isinstance(answers, dict) and answers:
                show_compare_lens(shell, answers)

    return run


def show_compare_lens(shell: Any, answers: dict[str, OllamaResponse]) -> None:
    """The lenses of a comparison in one output: one column per model (a line each outside
    a notebook)."""
    if getattr(shell, "kernel", None) is None:
        for model, result in answers.items():
            line = summary_text(result.logprobs) if result.logprobs else no_logprobs_line(result)
            print(f"[{model}: {line or 'no answer'}]")
        return
    from IPython.display import display

    text = "\n".join(
        f"{model}: {summary_text(r.logprobs)}" for model, r in answers.items() if r.logprobs
    )
    display({"text/html": compare_lens_html(answers), "text/plain": text}, raw=True)


def choose_lens_view(shell: Any, model: str, quiet: bool) -> Any:
    """The live lens in a Jupyter kernel, plain text elsewhere, or nothing."""
    if quiet:
        return QuietLensView()
    if getattr(shell, "kernel", None) is not None:
        return LiveLensView(shell, model)
    return TerminalLensView()
