"""``--map`` views: a progress line with an ETA, and a table of item → start of its answer.

The table is one display output, so the saved notebook keeps it; it holds at most ``MAP_ROWS``
rows (the first ones, then a count), each answer cut to its first words, so a long list stays
small. The whole answers are in the variable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from ..escape import markdown_cell_text, terminal_text
from ..lifecycle import stopped_just_now
from ..markdown import safe_markdown
from ..result import OllamaResponse
from .kernel_io import CellOutput

#: Rows of the item table, and the characters of each answer shown in it.
MAP_ROWS = 20
MAP_CELL = 80
#: Shortest gap between two updates of the live table (seconds).
MAP_INTERVAL = 0.5


def map_summary(results: list[OllamaResponse], out_name: str = "") -> str:
    """One line about a --map run (how many answered, which failed or stopped), as Markdown."""
    failed = [i for i, r in enumerate(results) if not r.complete]
    stopped = any(r.interrupted for r in results)
    reason = next((r.stopped_by for r in results if r.interrupted and r.stopped_by), "")
    answered = len(results) - len(failed)
    where = f" in `{out_name}`" if out_name else ""
    if stopped:
        how = f"the kernel stopped ({reason})" if reason else "stopped"
        line = f"**Mapped {answered} of {len(results)} items**{where}: {how}"
    else:
        line = f"**Mapped {len(results)} items**{where}: {answered} answered"
    if failed:
        shown = ", ".join(str(i) for i in failed[:20]) + (" …" if len(failed) > 20 else "")
        line += f", {len(failed)} failed or stopped (items {shown}; see `.error` on each)"
    return line + "."


def _cell_text(text: str, limit: int) -> str:
    """One table cell: the text on one line, cut at ``limit`` characters, made safe."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return safe_markdown(flat).replace("|", "\\|") or " "


def map_table(labels: list[str], results: list[OllamaResponse | None]) -> str:
    """The first ``MAP_ROWS`` items with the start of each answer, as a Markdown table."""
    rows = ["| # | item | answer |", "|---|---|---|"]
    for index, result in enumerate(results[:MAP_ROWS]):
        label = _cell_text(labels[index], 40) if index < len(labels) else " "
        if result is None:
            answer = "…"
        elif result.complete:
            answer = _cell_text(result.text, MAP_CELL)
        else:
            answer = "*" + ("stopped" if result.interrupted else "failed") + "*"
            if result.text:
                answer = f"{_cell_text(result.text, MAP_CELL - 10)} {answer}"
        rows.append(f"| {index} | {label} | {answer} |")
    if len(results) > MAP_ROWS:
        rows.append(f"| … | {len(results) - MAP_ROWS:,} more items | |")
    return "\n".join(rows)


class MapView(Protocol):
    def start(self) -> None: ...

    def progress(self, index: int, result: OllamaResponse) -> None: ...

    def finish(self, results: list[OllamaResponse], out_name: str) -> None: ...


class TerminalMapView:
    """A progress line rewritten in place, then the summary."""

    def __init__(self, total: int, quiet: bool = False, stream: Any = None) -> None:
        self.total, self.quiet, self.done, self.failed = total, quiet, 0, 0
        self.stream = stream if stream is not None else sys.stdout
        self.tokens = 0
        self.by_host: dict[str, int] = {}
        self._began = time.monotonic()

    def _count(self, result: OllamaResponse) -> None:
        self.done += 1
        self.failed += not result.complete
        self.tokens += result.stats.eval_count or 0
        if result.complete and result.host:
            self.by_host[result.host] = self.by_host.get(result.host, 0) + 1

    def progress_line(self) -> str:
        return eta_text(
            self.done,
            self.total,
            time.monotonic() - self._began,
            self.failed,
            self.tokens,
            self.by_host,
        )

    def describe_items(self, labels: list[str]) -> None:
        pass

    def start(self) -> None:
        self.progress(-1, None)

    def progress(self, index: int, result: OllamaResponse | None) -> None:
        if result is not None:
            self._count(result)
        now = time.monotonic()
        due = now - getattr(self, "_printed_at", 0.0) >= MAP_INTERVAL
        if not self.quiet and (due or self.done == self.total):
            self._printed_at = now
            print(f"\r{terminal_text(self.progress_line())}", end="", file=self.stream, flush=True)

    def finish(self, results: list[OllamaResponse], out_name: str) -> None:
        if not self.quiet:
            summary = map_summary(results, out_name).replace("**", "")
            print("\n" + summary, file=self.stream, flush=True)


def eta_text(
    done: int,
    total: int,
    elapsed: float,
    failed: int = 0,
    tokens: int = 0,
    by_host: dict[str, int] | None = None,
) -> str:
    """``3/8 answered · 4.1 s · about 7 s left`` and, once known, the rates and the servers.

    No estimate before the first answer; the servers are named when there are several.

    >>> eta_text(2, 8, 4.0)
    '2/8 answered · 4.0 s · about 12 s left · 0.5 items/s'
    >>> eta_text(4, 9, 2.0, failed=1, tokens=300, by_host={"http://a:1": 3, "http://b:1": 1})
    '4/9 answered (1 failed) · 2.0 s · about 2 s left · 2.0 items/s · 150 tokens/s · a:1 3, b:1 1'
    """
    line = f"{done}/{total} answered" + (f" ({failed} failed)" if failed else "")
    line += f" · {elapsed:.1f} s"
    if 0 < done < total:
        line += f" · about {elapsed / done * (total - done):.0f} s left"
    if done and elapsed > 0:
        line += f" · {done / elapsed:.1f} items/s"
        if tokens:
            line += f" · {tokens / elapsed:.0f} tokens/s"
    if by_host and len(by_host) > 1:
        line += " · " + ", ".join(
            f"{host.split('://', 1)[-1]} {count}" for host, count in sorted(by_host.items())
        )
    return line


class LiveMapView(TerminalMapView):
    """A progress line with an ETA and the item table, ending as the summary and the table."""

    def __init__(self, shell: Any, total: int) -> None:
        super().__init__(total)
        self._shell = shell
        self._labels: list[str] = []
        self._results: list[OllamaResponse | None] = [None] * total
        self._cell: CellOutput | None = None
        self._id = ""
        self._started = 0.0
        self._sent_at = 0.0

    def describe_items(self, labels: list[str]) -> None:
        self._labels = list(labels)

    def start(self) -> None:
        self._cell = CellOutput(self._shell)
        self._id = self._cell.new_id()
        self._started = self._began = time.monotonic()
        self._cell.display(self._id, self._data(), flush=True)

    def _data(self, head: str | None = None) -> dict[str, str]:
        line = head or markdown_cell_text(self.progress_line())
        table = map_table(self._labels, self._results)
        return {"text/markdown": f"{line}\n\n{table}", "text/plain": line.replace("**", "")}

    def progress(self, index: int, result: OllamaResponse | None) -> None:
        if result is None:
            return
        self._count(result)
        if 0 <= index < len(self._results):
            self._results[index] = result
        now = time.monotonic()
        if self._cell is not None and (now - self._sent_at >= MAP_INTERVAL or self.done == 1):
            self._sent_at = now
            self._cell.update(self._id, self._data())

    def finish(self, results: list[OllamaResponse], out_name: str) -> None:
        if self._cell is None:
            return
        self._results = list(results)
        elapsed = time.monotonic() - self._started
        cell = self._cell

        def show() -> None:
            summary = map_summary(results, out_name)
            cell.update(self._id, self._data(f"{summary} ({elapsed:.1f} s)"), flush=True)

        show()
        stopped = [r for r in results if r.interrupted and not r.stopped_by]
        if stopped:

            def restate(reason: str) -> None:
                for result in stopped:
                    result.stopped_by = reason
                show()

            stopped_just_now(restate)  # a restart interrupts first: say so if that was it
