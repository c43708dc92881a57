"""Records read back from the answer log: as data, as a table, and as exported files."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import OllamaUsageError
from ..markdown import safe_markdown

#: What a record's status can be. ``lost``: it says ``streaming`` but its writer is gone.
STATUSES = ("streaming", "complete", "interrupted", "failed", "lost")
#: Rows a table shows; the list itself holds every record found.
SHOWN = 50


@dataclass
class Record:
    """One logged answer: the request that was sent and what came back."""

    id: int
    prompt: str
    text: str
    thinking: str
    model: str
    status: str
    started: datetime
    ended: datetime | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    host: str = ""
    digest: str | None = None
    kernel: str = ""
    cell: str = ""
    done_reason: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (times as ISO 8601 strings)."""
        data = dict(self.__dict__)
        data["started"] = self.started.isoformat(timespec="seconds")
        data["ended"] = self.ended.isoformat(timespec="seconds") if self.ended else None
        return data

    def __repr__(self) -> str:
        return (
            f"<Record #{self.id} {self.status} from {_printable(self.model) or '?'} at "
            f"{_when(self.started)}: {_printable(_start(self.text, 50))!r}>"
        )


class Records(list[Record]):
    """Records, newest first: a table in a notebook, aligned text in a terminal.

    ``note`` is one line shown above the table (what an export or a deletion did).
    """

    def __init__(self, records: Any = (), note: str = "") -> None:
        super().__init__(records)
        self.note = note

    def _rows(self) -> list[list[str]]:
        return [
            [
                str(r.id),
                _when(r.started),
                r.model,
                r.status,
                _start(r.prompt, 40),
                _start(r.text or r.thinking, 60),
            ]
            for r in self[:SHOWN]
        ]

    def _more(self) -> str:
        hidden = len(self) - SHOWN
        return f"… and {hidden} older (all of them are in this list)." if hidden > 0 else ""

    def _repr_markdown_(self) -> str:
        lines = [_cell(self.note), ""] if self.note else []
        if not self:
            return "\n".join(lines) if lines else "No answers in the log match."
        lines.append("| # | time | model | status | prompt | answer |")
        lines.append("|---:|---|---|---|---|---|")
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in self._rows()]
        if self._more():
            lines += ["", self._more()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        lines = [_printable(self.note)] if self.note else []
        if not self:
            return "\n".join(lines) if lines else "No answers in the log match."
        rows = [["#", "time", "model", "status", "prompt", "answer"]]
        rows += [[_printable(c) for c in row] for row in self._rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
            cells[0] = row[0].rjust(widths[0])
            lines.append("  ".join(cells).rstrip())
        if self._more():
            lines.append(self._more())
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _start(text: str, width: int) -> str:
    """The first ``width`` characters on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _printable(value: Any) -> str:
    """Text for a terminal: control characters (ANSI escapes, newlines) cannot sneak through."""
    return "".join(c if c.isprintable() else "\ufffd" for c in str(value))


_CELL_SPECIAL = re.compile(r"[\\`*_\[\]~#!&<>|$]")
_CELL_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "$": "&#36;"}


def _cell(value: Any) -> str:
    """Untrusted text as literal Markdown in a table cell: no HTML, links, code, math or ``|``.

    >>> _cell("a|<img src=x onerror=alert(1)>[x](javascript:y) $x$")
    'a\\\\|&lt;img src=x onerror=alert(1)&gt;\\\\[x\\\\](javascript:y) &#36;x&#36;'
    """
    text = _printable(" ".join(str(value).split()))
    return _CELL_SPECIAL.sub(lambda m: _CELL_ESCAPES.get(m[0], "\\" + m[0]), text)


def _fenced(text: str) -> str:
    """A fenced code block that the text itself cannot close."""
    runs = [len(run) for run in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def record_markdown(record: Record) -> str:
    """One record as a Markdown section: the prompt verbatim, the answer as safe Markdown."""
    parts = [
        f"## #{record.id} · {_cell(_when(record.started))} · {_cell(record.model)} · "
        f"{_cell(record.status)}",
        "",
        "**Prompt**",
        "",
        _fenced(record.prompt),
    ]
    if record.thinking:
        parts += ["", "**Thinking**", "", _fenced(record.thinking)]
    parts += ["", "**Answer**", "", safe_markdown(record.text) or "*(empty)*"]
    if record.error:
        parts += ["", f"*{_cell(record.error)}*"]
    return "\n".join(parts)


def export_records(records: list[Record], path: str | os.PathLike[str]) -> int:
    """Write records to ``path``: ``.md`` as Markdown, ``.jsonl`` as JSON Lines; return count."""
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    if suffix in (".md", ".markdown"):
        content = "\n\n---\n\n".join(record_markdown(r) for r in records) + "\n"
    elif suffix == ".jsonl":
        content = "".join(json.dumps(r.as_dict(), ensure_ascii=False) + "\n" for r in records)
    else:
        raise OllamaUsageError(
            f"Cannot export to {str(target)!r}: name the file with .md (Markdown) or .jsonl "
            "(JSON Lines), e.g. `%ollama log --export answers.md`."
        )
    try:
        with open(target, "w", encoding="utf-8", errors="replace", newline="\n") as file:
            file.write(content)
    except OSError as exc:
        raise OllamaUsageError(
            f"Could not write {str(target)!r} ({exc.strerror or exc}); choose a folder you can "
            "write to."
        ) from None
    return len(records)
