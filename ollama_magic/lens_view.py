"""The live teaching lens (``--logprobs``): the answer tinted token by token while it streams.

Cost model: everything sent to the front end stays within the bytes the server streamed. The
answer is shown as *frozen pieces*, each sent exactly once into an ``ipywidgets.Output``, and a
short *growing tail* (an ``ipywidgets.HTML``) that is re-sent as it grows. Sends happen at most
every :data:`INTERVAL` seconds, two messages at most: a tail of :data:`FREEZE_AT` tokens or more
up to a line end (or of twice that, anywhere) goes out as a piece, then the rest of the tail.
A tail re-send waits while the bytes sent live exceed :data:`LIVE_SHARE` of an under-estimate
of what the server sent; the rest of the budget is the final output. When the answer ends, the
widget is replaced in place (``update_display_data``) by the lens itself (HTML with a tooltip
per token) plus the answer as Markdown and plain text, which is what the notebook saves.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from .context import context_line
from .lens import compare_lens_html, lens_bundle, no_logprobs_line, summary_text, token_spans
from .logprobs import Logprobs
from .result import OllamaResponse

#: Shortest gap between two sends (seconds); each sends a piece and the tail at most.
INTERVAL = 0.08
#: Tokens in the tail before it freezes at the next line end (and twice that: anywhere).
FREEZE_AT = 48
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


def _outcome(result: OllamaResponse, out_name: str) -> str:
    chars = len(result)
    kept = f"after {chars:,} characters; the partial answer is in {out_name}"
    if result.interrupted:
        return f"interrupted {kept}" if chars else "interrupted before the answer began"
    if result.error is not None:
        return f"failed {kept}" if chars else "failed before the answer began"
    if result.done_reason == "length":
        return "cut off at the token limit (done_reason 'length'; raise num_predict)"
    return ""


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
        lines = [_outcome(result, out_name), context_line(result)]
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
        self._started = 0.0
        self._box: Any = None
        self._handle: Any = None
        #: UTF-8 bytes of everything this view sent to the front end (live and final).
        self.sent_bytes = 0
        self.updates = 0

    # -- Sink ----------------------------------------------------------------------------------

    def start(self) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        kernel = self._shell.kernel
        self._kernel = kernel
        self._parent = kernel.get_parent("shell")
        self._pieces = widgets.Output()
        self._tail_widget = widgets.HTML(value=self._status("loading model…"))
        self._box = widgets.VBox([self._pieces, self._tail_widget])
        self._handle = display(self._box, display_id=True)
        # Display first: once the Output widget owns the cell's message id, front ends route
        # the cell's outputs into it, which is how the frozen pieces get there.
        self._pieces.msg_id = self._parent["header"]["msg_id"]
        self._started = time.monotonic()

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
        if self._box is None:
            return
        self._pieces.msg_id = ""  # the final output must reach the cell, not the widget
        note = " ".join(n for n in (_outcome(result, out_name), context_line(result)) if n)
        data = lens_bundle(result, out_name, note)
        self.sent_bytes += sum(len(value.encode("utf-8", "replace")) for value in data.values())
        self._handle.update(data, raw=True)
        for widget in (self._pieces, self._tail_widget, self._box):
            widget.close()

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

        A tick sends at most two messages (a piece and the tail), so the front end gets at most
        ``2 / INTERVAL`` updates a second however fast the tokens come.
        """
        now = time.monotonic()
        if now - self._last_update < INTERVAL:
            return
        froze = False
        cut = self._line_end if self._line_end >= FREEZE_AT else 0
        if not cut and len(self._tail) >= 2 * FREEZE_AT:
            cut = len(self._tail)
        if cut:
            self._freeze(cut)
            froze = True
        value = _PIECE.format("".join(self._tail)) + self._status("answering")
        over = self.sent_bytes + len(value) > LIVE_SHARE * self._estimate
        if self.updates and over and not froze:
            return  # over budget: wait until more has arrived (a frozen tail must be cleared)
        self._last_update = now
        self._update(value)

    def _update(self, value: str) -> None:
        self.updates += 1
        self.sent_bytes += len(value.encode("utf-8", "replace"))
        self._tail_widget.value = value

    def _freeze(self, cut: int) -> None:
        """Send the tail's first ``cut`` tokens once, as a piece of their own."""
        piece = _PIECE.format("".join(self._tail[:cut]))
        del self._tail[:cut]
        self._line_end = 0
        self.sent_bytes += len(piece.encode("utf-8", "replace"))
        self.updates += 1
        self._kernel.session.send(
            self._kernel.iopub_socket,
            "display_data",
            {"data": {"text/html": piece}, "metadata": {}, "transient": {}},
            parent=self._parent,
            ident=b"display_data",
        )


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
    """The live lens in a Jupyter kernel with ipywidgets, plain text elsewhere, or nothing."""
    if quiet:
        return QuietLensView()
    if getattr(shell, "kernel", None) is not None:
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return TerminalLensView()
        return LiveLensView(shell, model)
    return TerminalLensView()
