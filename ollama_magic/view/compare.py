"""A comparison in a Jupyter kernel: one section per model, each rendered as it streams.

The sections are the final Markdown's sections (a heading per model), so nothing moves when the
comparison ends: the first section's output becomes the whole comparison with its provenance,
the others become empty. Each section is re-sent whole when it changes, within the same byte
budget as a single answer (answers to compare are usually short), and a status line under them
says what each model is doing.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from ..lifecycle import stopped_just_now
from ..markdown import safe_markdown
from ..result import OllamaResponse
from .batching import _Batcher, make_batcher
from .common import answer_markdown, format_status, outcome_line, plain_text
from .kernel_io import CellOutput
from .live import BUDGET, BUDGET_SLACK, WAITING, _Shown, footer_text, quiet_line
from .pieces import unclosed_fence

#: Sections update less often than a single answer: each update re-sends a whole section.
COMPARE_INTERVAL = 0.1


def compare_markdown(answers: dict[str, OllamaResponse], out_name: str = "") -> str:
    """All answers of a comparison, one section per model, as safe Markdown."""
    sections = []
    for model, result in answers.items():
        name = safe_markdown(model).replace("*", "\\*").replace("_", "\\_")
        body = answer_markdown(result)
        note = outcome_line(result, f"{out_name}['{model}']")
        if result.error is not None and not result.interrupted:
            note = f"failed: {safe_markdown(result.error.message)}"  # server text
        if note:
            fence = unclosed_fence(body) if body else ""
            body = f"{body}\n{fence}" if fence else body
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

    def __init__(self, models: list[str], stream: Any = None) -> None:
        self.models = models
        self.stream = stream if stream is not None else sys.stdout

    def start(self) -> None:
        print(f"Asking {', '.join(self.models)}…", file=self.stream, flush=True)

    def finish(self, answers: dict[str, OllamaResponse], out_name: str) -> None:
        for model, result in answers.items():
            note = outcome_line(result, f"{out_name}['{model}']")
            text = f"\n── {model} ──\n{result.text}" + (f"\n[{note}]" if note else "")
            print(text, file=self.stream, flush=True)


class LiveCompareView:
    """Sections one under the other, one per model, with one status line for all."""

    def __init__(self, shell: Any, models: list[str]) -> None:
        self._shell = shell
        self._models = models
        self._chunks = [0] * len(models)
        self._phase = [WAITING] * len(models)
        self._texts: list[list[str]] = [[] for _ in models]
        self._shown_text = [""] * len(models)
        self._ids: list[str] = []
        self._received = 0
        self._cell: CellOutput | None = None
        self._shown: _Shown | None = None
        self._batcher: _Batcher | None = None
        self._started = 0.0

    def _heading(self, index: int) -> str:
        return "#### " + safe_markdown(self._models[index]).replace("*", "\\*").replace("_", "\\_")

    def start(self) -> None:
        self._cell = CellOutput(self._shell)
        self._started = time.monotonic()
        self._shown = _Shown(self._cell, quiet_line(self._status_text()))
        for index in range(len(self._models)):
            rule = "" if index == 0 else "---\n\n"
            markdown = f"{rule}{self._heading(index)}\n\n*{WAITING}*"
            self._ids.append(self._shown.insert({"text/markdown": markdown}))
        self._batcher = make_batcher(
            self._cell.io_loop, self._send_text, self._update_status, interval=COMPARE_INTERVAL
        )

    def _send_text(self, kind: str, text: str) -> None:
        assert self._cell is not None
        index = int(kind)
        parts = self._texts[index]
        parts.append(text)
        joined = "".join(parts)
        self._texts[index] = [joined]
        self._received += len(text)
        fence = unclosed_fence(joined)
        body = safe_markdown(joined + (f"\n{fence}\n" if fence else ""))
        rule = "" if index == 0 else "---\n\n"
        markdown = f"{rule}{self._heading(index)}\n\n{body}"
        first = not self._shown_text[index]
        if first or self._cell.sent + len(markdown) <= BUDGET * self._received + BUDGET_SLACK:
            self._cell.update(self._ids[index], {"text/markdown": markdown})
            self._shown_text[index] = markdown

    def _status_text(self) -> str:
        elapsed = time.monotonic() - self._started
        lines = []
        for index, model in enumerate(self._models):
            phase = self._phase[index]
            if phase in ("done", "stopped"):
                lines.append(f"{model} · {phase} · {self._chunks[index]} tokens")
            else:
                lines.append(format_status(model, elapsed, self._chunks[index], phase))
        return "  |  ".join(lines)

    def _update_status(self) -> None:
        if self._shown is not None:
            self._shown.status(quiet_line(self._status_text()))

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
        if self._shown is None or self._cell is None:
            return
        cell = self._cell
        first, *rest = self._ids
        cell.update(first, *_final_bundle(answers, out_name), flush=True)
        for section in rest:
            cell.update(section, {})
        elapsed = time.monotonic() - self._started
        footers = [
            footer_text(r, m, self._chunks[i], elapsed) for i, (m, r) in enumerate(answers.items())
        ]
        self._shown.status(quiet_line("  |  ".join(footers)))
        stopped = [r for r in answers.values() if r.interrupted and not r.stopped_by]
        if stopped:

            def restate(reason: str) -> None:
                for result in stopped:
                    result.stopped_by = reason
                cell.update(first, *_final_bundle(answers, out_name), flush=True)

            stopped_just_now(restate)  # a restart interrupts first: say so if that was it


def _final_bundle(
    answers: dict[str, OllamaResponse], out_name: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """The one output a saved notebook keeps of a comparison, with each answer's provenance."""
    markdown = compare_markdown(answers, out_name)
    text = "\n\n".join(f"== {m} ==\n{plain_text(r)}" for m, r in answers.items())
    metadata = {"ollama_magic": {m: r.provenance for m, r in answers.items()}}
    return {"text/markdown": markdown, "text/plain": text}, metadata
