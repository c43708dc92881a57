"""Model lists and model cards as values that display themselves: Markdown in a notebook,
aligned text in a terminal, plain lists and dicts in code.

Every string in them came from a server, so every one is escaped where it is shown: table cells
by :func:`md_text`, templates in fences they cannot close, terminal text without control
characters. No IPython here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .escape import markdown_cell_text, terminal_text

# --------------------------------------------------------------------------------------------
# Formatting


def format_size(size: float) -> str:
    """Bytes in decimal units, as Ollama's own CLI shows them.

    >>> format_size(2019393189), format_size(1429), format_size(512), format_size(0)
    ('2.0 GB', '1.4 KB', '512 B', '0 B')
    """
    if size < 1000:
        return f"{int(size)} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


def format_duration(seconds: float) -> str:
    """A short human duration for speeds and ETAs.

    >>> format_duration(4.2), format_duration(75), format_duration(3 * 3600 + 600)
    ('4 s', '1 min 15 s', '3 h 10 min')
    """
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_timestamp(value: Any) -> datetime | None:
    """Ollama's RFC 3339 times (nanoseconds, any offset) as an aware datetime; None if unusable.

    Python 3.10's ``fromisoformat`` rejects nine fractional digits, hence the regex.

    >>> parse_timestamp("2025-05-04T17:37:44.706015396-07:00").isoformat()
    '2025-05-04T17:37:44.706015-07:00'
    >>> parse_timestamp("0001-01-01T00:00:00Z").year, parse_timestamp("soon")
    (1, None)
    """
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        return None
    day, clock, fraction, offset = match.groups()
    micros = (fraction or "")[:6].ljust(6, "0")
    offset = "+00:00" if offset in (None, "Z") else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{micros}{offset}")
    except ValueError:
        return None


def format_expiry(expires_at: Any, now: datetime | None = None) -> str:
    """When a loaded model will be unloaded, relative to now.

    ``keep_alive`` < 0 makes Ollama put ``expires_at`` centuries ahead: that reads "forever".

    >>> now = datetime(2025, 10, 26, 18, 25, tzinfo=timezone.utc)
    >>> format_expiry("2025-10-26T18:30:00.123456789Z", now)
    'in 5 min'
    >>> format_expiry("2025-10-26T18:25:40Z", now), format_expiry("2318-01-01T00:00:00Z", now)
    ('in 40 s', 'forever')
    >>> format_expiry("2025-10-26T18:20:00Z", now), format_expiry("2025-10-28T06:25:00Z", now)
    ('stopping…', 'in 36 h')
    """
    when = parse_timestamp(expires_at)
    if when is None:
        return ""
    now = now or datetime.now(timezone.utc)
    seconds = (when - now).total_seconds()
    if seconds > 10 * 365 * 86400:
        return "forever"
    if seconds <= 0:
        return "stopping…"
    if seconds < 60:
        return f"in {round(seconds)} s"
    if seconds < 3600:
        return f"in {round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"in {round(seconds / 3600)} h"
    return f"in {round(seconds / 86400)} days"


def _date(value: Any) -> str:
    when = parse_timestamp(value)
    return when.date().isoformat() if when is not None else ""


def _printable(value: Any) -> str:
    """Text for a terminal: control characters (ANSI escapes, newlines) cannot sneak through."""
    return terminal_text(value)


#: Untrusted text as literal Markdown, safe inside a table cell.
md_text = markdown_cell_text


def _fenced(text: str) -> str:
    """A fenced code block that the text itself cannot close."""
    runs = [len(run) for run in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def canonical_name(name: str) -> str:
    """Ollama's identity of a model name: ``x`` is ``x:latest``; case does not matter.

    >>> canonical_name("Llama3.2"), canonical_name("qwen3:8b"), canonical_name("hf.co/a/b")
    ('llama3.2:latest', 'qwen3:8b', 'hf.co/a/b:latest')
    """
    name = name.strip().casefold()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


# --------------------------------------------------------------------------------------------
# Result objects


@dataclass(frozen=True)
class Column:
    """One table column: a header and how to show a row's value."""

    header: str
    value: Callable[[dict[str, Any]], Any]
    right: bool = False


class ModelTable(list[dict[str, Any]]):
    """Rows (``dict``) that display as a Markdown table in a notebook and aligned text elsewhere.

    It stays a plain list for code: ``[m["name"] for m in %ollama list]``.
    """

    def __init__(
        self, rows: Iterable[dict[str, Any]], columns: tuple[Column, ...], empty: str
    ) -> None:
        super().__init__(rows)
        self.columns = columns
        #: One line shown instead of the table when there are no rows (Markdown code spans
        #: allowed; the text form drops the backticks).
        self.empty = empty

    def _cells(self, row: dict[str, Any]) -> list[str]:
        cells = []
        for column in self.columns:
            value = column.value(row)
            cells.append("" if value is None else str(value))
        return cells

    def _repr_markdown_(self) -> str:
        if not self:
            return self.empty
        head = "| " + " | ".join(md_text(c.header) for c in self.columns) + " |"
        rule = "|" + "|".join("---:" if c.right else "---" for c in self.columns) + "|"
        body = ["| " + " | ".join(md_text(c) for c in self._cells(row)) + " |" for row in self]
        return "\n".join([head, rule, *body])

    def __repr__(self) -> str:
        if not self:
            return self.empty.replace("`", "")
        rows = [[c.header for c in self.columns]]
        rows += [[_printable(cell) for cell in self._cells(row)] for row in self]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        lines = []
        for row in rows:
            cells = [
                cell.rjust(width) if column.right else cell.ljust(width)
                for cell, width, column in zip(row, widths, self.columns, strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class ModelDetails(dict[str, Any]):
    """Ollama's ``/api/show`` answer for one model, displayed as a readable card."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.name = name

    @property
    def capabilities(self) -> list[str]:
        """What the model can do, e.g. ``["completion", "thinking"]``."""
        value = self.get("capabilities")
        return [str(c) for c in value] if isinstance(value, list) else []

    @property
    def context_length(self) -> int | None:
        """The longest context the model was trained for, from ``model_info``."""
        info = self.get("model_info")
        if not isinstance(info, dict):
            return None
        preferred = f"{info.get('general.architecture')}.context_length"
        value = info.get(preferred)
        if value is None:
            value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
        return int(value) if isinstance(value, (int, float)) else None

    def facts(self) -> list[tuple[str, str]]:
        """The short facts, as (label, text) pairs, in display order."""
        details = self.get("details")
        details = details if isinstance(details, dict) else {}
        context = self.context_length
        facts = [
            ("capabilities", ", ".join(self.capabilities)),
            ("family", details.get("family")),
            ("parameters", details.get("parameter_size")),
            ("quantization", details.get("quantization_level")),
            ("context length", f"{context:,} tokens" if context else ""),
            ("format", details.get("format")),
            ("modified", _date(self.get("modified_at"))),
        ]
        return [(label, str(value)) for label, value in facts if value]

    def _sections(self) -> list[tuple[str, str]]:
        sections = []
        for key, title in (
            ("parameters", "Parameters"),
            ("template", "Template"),
            ("system", "System prompt"),
        ):
            value = self.get(key)
            if isinstance(value, str) and value.strip():
                sections.append((title, value))
        return sections

    def _repr_markdown_(self) -> str:
        parts = [f"**{md_text(self.name)}**", "", "| | |", "|---|---|"]
        parts += [f"| {label} | {md_text(value)} |" for label, value in self.facts()]
        for title, text in self._sections():
            parts += ["", f"**{title}**", "", _fenced(text)]
        return "\n".join(parts)

    def __repr__(self) -> str:
        facts = self.facts()
        width = max((len(label) for label, _ in facts), default=0)
        lines = [_printable(self.name)]
        lines += [f"  {label.ljust(width)}  {_printable(value)}" for label, value in facts]
        for title, text in self._sections():
            lines.append(f"{title}:")
            lines += ["  " + _printable(line) for line in text.rstrip().splitlines()]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class ServerVersion(str):
    """The server's version string, remembering which server said it."""

    host: str
    label: str

    def __new__(cls, version: str, host: str, label: str = "Ollama") -> ServerVersion:
        self = super().__new__(cls, version)
        self.host, self.label = host, label
        return self

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        what = _printable(self) if self.label == "Ollama" else f"({_printable(self)})"
        printer.text(f"{self.label[:1].upper()}{self.label[1:]} {what} at {self.host}")


# --------------------------------------------------------------------------------------------
# Tables

_MODEL_COLUMNS = (
    Column("name", lambda r: r["name"]),
    Column("size", lambda r: format_size(r["size"]) if r.get("size") else "", right=True),
    Column("parameters", lambda r: r.get("parameter_size")),
    Column("quantization", lambda r: r.get("quantization_level")),
    Column("modified", lambda r: _date(r.get("modified_at"))),
)


def _processor(row: dict[str, Any]) -> str:
    """Where a loaded model sits, like ``ollama ps``: ``100% GPU``, ``48%/52% CPU/GPU``."""
    size, vram = row.get("size") or 0, row.get("size_vram") or 0
    if not size:
        return ""
    if vram <= 0:
        return "100% CPU"
    if vram >= size:
        return "100% GPU"
    gpu = round(100 * vram / size)
    return f"{100 - gpu}%/{gpu}% CPU/GPU"


_LOADED_COLUMNS = (
    Column("name", lambda r: r["name"]),
    Column("size", lambda r: format_size(r["size"]) if r.get("size") else "", right=True),
    Column("processor", _processor),
    Column("context", lambda r: r.get("context_length"), right=True),
    Column("unloads", lambda r: format_expiry(r.get("expires_at"))),
)


def _row(model: dict[str, Any], *keys: str) -> dict[str, Any]:
    details = model.get("details")
    details = details if isinstance(details, dict) else {}
    row: dict[str, Any] = {"name": str(model.get("name") or model.get("model") or "")}
    for key in keys:
        row[key] = model.get(key, details.get(key))
    return row
