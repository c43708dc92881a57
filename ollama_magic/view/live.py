"""The live view of one answer in a Jupyter kernel: rendered Markdown while it streams.

The answer is a run of plain display outputs, no widget: any front end that speaks the Jupyter
display protocol shows it, and a saved notebook holds exactly what was on screen at every moment
(a kernel that dies mid-answer leaves the text shown so far). Completed pieces of the answer
(:mod:`.pieces`) are rendered once by ``safe_markdown`` and never sent again; only the piece
being written is replaced, at most every ``TEXT_INTERVAL`` and within a byte budget, so the bytes
stay linear in the answer however long its blocks. The status line is always the last output:
a new piece takes the status line's place and the status moves down, so nothing jumps. When the
answer ends, the first piece becomes the whole answer with its provenance (the one Markdown
output a notebook keeps), the other pieces become empty, and the status line becomes a quiet
footer.
"""

from __future__ import annotations

import collections
import html
import time
from typing import Any

from ..lifecycle import stopped_just_now
from ..markdown import safe_markdown
from ..result import OllamaResponse
from .batching import TEXT_INTERVAL, _Batcher, make_batcher
from .common import TRACE_LINES, code_fence, final_bundle, format_status, format_trace_line
from .kernel_io import CellOutput
from .pieces import Pieces

#: Live updates may send this many bytes of output per character of text received (finished
#: pieces included), plus BUDGET_SLACK: the final answer adds one more, so the total stays within
#: about three times the answer. A long piece is then updated less often, never re-sent per token.
BUDGET = 1.4
BUDGET_SLACK = 2048
#: At most this many output messages in any second (the front end re-renders on each).
UPDATES_PER_SECOND = 26
#: Completed pieces become an output of their own at most this often (seconds); until then they
#: are shown in the output of the piece being written. A fast answer then ends with a handful
#: of outputs to clear, not one per piece.
PIECE_GAP = 0.3
#: Thinking shows only its newest characters while it streams (all of it once collapsed).
THINKING_SHOWN = 1500
#: Trace lines shown while the answer streams (the newest ones).
TRACE_SHOWN = 12
TRACE_INTERVAL = 0.25
#: What the status says before the first token: the server may be loading the model, or busy
#: with another answer (a comparison, a --bg cell); the view cannot tell which.
WAITING = "waiting for the server…"


def quiet_line(text: str, plain: bool = True) -> dict[str, str]:
    """A small line (status, footer) as display data; ``text`` may hold a model's name.

    The live status leaves out ``text/plain`` (it changes every second: half its bytes).
    """
    escaped = html.escape(text, quote=False)
    for char in "\\`*_[]~|#":
        escaped = escaped.replace(char, "\\" + char)
    data = {"text/markdown": f"<small>{escaped}</small>"}
    if plain:
        data["text/plain"] = text
    return data


def footer_text(result: OllamaResponse, fallback_model: str, chunks: int, elapsed: float) -> str:
    """``mistral · 5.3 s · 600 tokens · 116 tokens/s`` (and how it ended, if not normally)."""
    stats = result.stats
    seconds = stats.wall_time if stats.wall_time is not None else elapsed
    tokens = stats.eval_count if stats.eval_count is not None else chunks
    parts = [result.model or fallback_model, f"{seconds:.1f} s"]
    if tokens:
        parts.append(f"{tokens:,} token{'s' if tokens != 1 else ''}")
    if stats.tokens_per_second:
        parts.append(f"{stats.tokens_per_second:.0f} tokens/s")
    if result.interrupted:
        parts.append("stopped")
    elif result.error is not None:
        parts.append("failed")
    return " · ".join(parts)


class _Shown:
    """Output ids of one cell in screen order, with the status line always last."""

    def __init__(self, cell: CellOutput, status: dict[str, str]) -> None:
        self.cell = cell
        self.status_id = cell.new_id()
        cell.display(self.status_id, status, flush=True)
        self._status = status

    def insert(self, data: dict[str, Any], metadata: Any = None, flush: bool = False) -> str:
        """A new output just above the status line; returns its id."""
        taken = self.status_id
        self.cell.update(taken, data, metadata, flush=flush)
        self.status_id = self.cell.new_id()
        self.cell.display(self.status_id, self._status)
        return taken

    def status(self, data: dict[str, str]) -> None:
        if data != self._status:
            self._status = data
            self.cell.update(self.status_id, data)


class LiveView:
    """Status line, thinking, streamed Markdown answer, trace, then final Markdown and footer."""

    def __init__(self, shell: Any, model: str, trace: bool = False, smooth: bool = False) -> None:
        """``smooth``: no byte budget, every update re-sends the piece being written (the
        message rate is still capped)."""
        self._shell = shell
        self._model = model
        self._tracing = trace
        self._smooth = smooth
        self._started = self._started_perf = 0.0
        self._chunks = 0
        self._phase = WAITING
        self._first_token_at: float | None = None
        self._cell: CellOutput | None = None
        self._shown: _Shown | None = None
        self._batcher: _Batcher | None = None
        self._pieces = Pieces()
        self._piece_ids: list[str] = []
        self._live_id: str | None = None  # the output of the piece being written
        self._live_shown = ""  # what that output shows
        self._received = 0  # characters of text handed to the front end so far
        self._stale = False  # the piece being written shows less than has arrived
        self._completed: list[str] = []  # completed pieces not yet an output of their own
        self._inserted_at = 0.0
        self._received_at_tick = 0
        self._code_language: str | None = None
        self._thinking: list[str] = []
        self._thinking_id: str | None = None
        self._thinking_since: float | None = None
        self._thinking_open = False
        self._trace_id: str | None = None
        self._trace_at = 0.0
        self._status_phase = ""
        self.trace_lines: collections.deque[str] = collections.deque(maxlen=TRACE_LINES)

    def expect_format(self, answer_format: Any) -> None:
        """A ``--format`` answer is JSON: show it as a JSON code block while it streams."""
        if answer_format is not None:
            self._code_language = "json"

    # -- View --------------------------------------------------------------------------------

    def start(self) -> None:
        self._cell = CellOutput(self._shell)
        self._started = time.monotonic()
        self._started_perf = time.perf_counter()
        self._shown = _Shown(self._cell, quiet_line(self._status_text(), plain=False))
        if self._code_language is not None:
            self._pieces.add(code_fence("", self._code_language)[0])
        self._batcher = make_batcher(self._cell.io_loop, self._send, self._update_status)

    def thinking(self, text: str) -> None:
        self._chunks += 1
        if self._thinking_since is None:
            self._thinking_since = self._first_token_at = time.monotonic()
            self._phase = "thinking…"
        assert self._batcher is not None
        self._batcher.add("thinking", text)

    def answer(self, text: str) -> None:
        self._chunks += 1
        if self._phase != "answering":
            self._phase = "answering"
            if self._first_token_at is None:
                self._first_token_at = time.monotonic()
        assert self._batcher is not None
        self._batcher.add("answer", text)

    def trace(self, line: bytes, at: float) -> None:
        assert self._batcher is not None
        # Kept here, on the reading thread: the result takes its copy as soon as the stream ends.
        self.trace_lines.append(format_trace_line(line, at - self._started_perf))
        self._batcher.add("trace", "")

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        if self._batcher is not None:
            self._batcher.close()
        shown, cell = self._shown, self._cell
        if shown is None or cell is None:  # stopped before anything was shown
            return
        if self._thinking_open or (self._thinking_id is None and result.thinking):
            self._close_thinking(result.thinking)
        if self.trace_lines:
            self._show_trace(final=True)
        if self._nothing_arrived(result):
            # The error under the cell says it all; an empty answer and a footer would only
            # repeat it.
            shown.status({})
            if result.interrupted:

                def note(reason: str) -> None:
                    result.stopped_by = reason
                    cell.update(shown.status_id, *final_bundle(result, out_name), flush=True)

                stopped_just_now(note)  # a restart interrupts first: then say so
            return
        data, metadata = final_bundle(result, out_name)
        if self._piece_ids:
            first, *rest = self._piece_ids
            cell.update(first, data, metadata, flush=True)
            for piece_id in rest:
                cell.update(piece_id, {})
        else:
            first = shown.insert(data, metadata, flush=True)
        elapsed = time.monotonic() - self._started
        shown.status(quiet_line(footer_text(result, self._model, self._chunks, elapsed)))
        if result.interrupted and not result.stopped_by:

            def restate(reason: str) -> None:
                result.stopped_by = reason
                cell.update(first, *final_bundle(result, out_name), flush=True)

            stopped_just_now(restate)  # a restart interrupts first: say so if that was it

    def _nothing_arrived(self, result: OllamaResponse) -> bool:
        """Whether the answer failed or was stopped before any of it was shown."""
        shown_any = self._piece_ids or self._thinking_id is not None or self._trace_id is not None
        return (
            result.error is not None
            and not result.stopped_by
            and not result
            and not result.thinking
            and not shown_any
        )

    # -- sending (on the batcher's thread) ---------------------------------------------------

    def _send(self, kind: str, text: str) -> None:
        if kind == "answer":
            if self._thinking_open:
                self._close_thinking("".join(self._thinking))
            self._add_answer(text)
        elif kind == "thinking":
            self._thinking.append(text)
            self._received += len(text)
            self._show_thinking()
        else:
            if time.monotonic() - self._trace_at >= TRACE_INTERVAL:
                self._show_trace()
        if self._phase != self._status_phase:
            self._update_status()  # say "answering" at once; counts follow on the status tick

    def _affordable(self, size: int) -> bool:
        assert self._cell is not None
        if self._smooth:
            return True
        return self._cell.sent + size <= BUDGET * self._received + BUDGET_SLACK

    def _add_answer(self, text: str) -> None:
        assert self._shown is not None and self._cell is not None
        self._received += len(text)
        self._completed.extend(self._pieces.add(text))
        # A piece completed costs up to three messages (it, the new tail, the status moved).
        if self._cell.recent_messages() > UPDATES_PER_SECOND - 3:
            self._stale = True
            return
        if self._completed and time.monotonic() - self._inserted_at >= PIECE_GAP:
            self._publish_completed()
        self._show_tail(force=False)

    def _publish_completed(self) -> None:
        """Pieces completed since the last update, as one output (they end at a boundary)."""
        if self._completed:
            joined = "".join(self._completed)
            self._completed.clear()
            self._show_piece({"text/markdown": safe_markdown(joined)}, final=True)
            self._inserted_at = time.monotonic()

    def _show_tail(self, force: bool) -> None:
        source = "".join(self._completed) + self._pieces.closed_tail()
        if not source:
            return
        markdown = safe_markdown(source)
        if markdown == self._live_shown:
            self._stale = False
            return
        if self._live_id is not None and not force and not self._affordable(len(markdown)):
            self._stale = True
            return
        self._show_piece({"text/markdown": markdown}, final=False)
        self._live_shown = markdown
        self._stale = False

    def _show_piece(self, data: dict[str, str], final: bool) -> None:
        assert self._shown is not None and self._cell is not None
        if self._live_id is None:
            self._live_id = self._shown.insert(data)
            self._piece_ids.append(self._live_id)
        else:
            self._cell.update(self._live_id, data)
        if final:
            self._live_id, self._live_shown = None, ""

    def _show_thinking(self) -> None:
        assert self._shown is not None and self._cell is not None
        text = "".join(self._thinking)
        self._thinking = [text]
        if len(text) > THINKING_SHOWN:
            start = text.find("\n", len(text) - THINKING_SHOWN)
            text = "…" + text[start if start >= 0 else len(text) - THINKING_SHOWN :]
        data = {
            "text/markdown": (
                f"<details open><summary>Thinking…</summary>\n\n{safe_markdown(text)}\n\n</details>"
            ),
            "text/plain": "Thinking…",
        }
        if self._thinking_id is None:
            self._thinking_id = self._shown.insert(data)
            self._thinking_open = True
        elif self._affordable(len(data["text/markdown"])):
            self._cell.update(self._thinking_id, data)

    def _close_thinking(self, thinking: str) -> None:
        assert self._shown is not None and self._cell is not None
        self._thinking_open = False
        since = self._thinking_since if self._thinking_since is not None else self._started
        title = f"Thought for {time.monotonic() - since:.1f} s"
        data = {
            "text/markdown": (
                f"<details><summary>{title}</summary>\n\n{safe_markdown(thinking)}\n\n</details>"
            ),
            "text/plain": title,
        }
        if self._thinking_id is None:
            self._thinking_id = self._shown.insert(data)
        else:
            self._cell.update(self._thinking_id, data)

    def _show_trace(self, final: bool = False) -> None:
        assert self._shown is not None and self._cell is not None
        lines = list(self.trace_lines)
        shown = lines if final else lines[-TRACE_SHOWN:]
        title = f"Trace: {len(lines)} raw lines" + (" (newest)" if not final else "")
        rows = html.escape("\n".join(shown))
        state = "" if final else " open"
        data = {
            "text/html": f"<details{state}><summary>{title}</summary><pre>{rows}</pre></details>",
            "text/plain": "\n".join(shown),
        }
        self._trace_at = time.monotonic()
        if self._trace_id is None:
            self._trace_id = self._shown.insert(data)
        else:
            self._cell.update(self._trace_id, data)

    def _status_text(self) -> str:
        chunks, phase = self._chunks, self._phase
        elapsed = time.monotonic() - self._started
        rate = None
        if self._first_token_at is not None and chunks > 1:
            span = time.monotonic() - self._first_token_at
            rate = (chunks - 1) / span if span > 0 else None
        self._status_phase = phase
        return format_status(self._model, elapsed, chunks, phase, rate)

    def _update_status(self) -> None:
        if self._stale and self._received == self._received_at_tick:
            self._show_tail(force=True)  # the model paused: show what arrived
        self._received_at_tick = self._received
        if self._shown is not None:
            self._shown.status(quiet_line(self._status_text(), plain=False))


__all__ = ["TEXT_INTERVAL", "LiveView", "footer_text", "quiet_line"]
