"""Model management subcommands of ``%ollama``: list, pull, ps, show, unload, version.

Each subcommand returns data that renders itself, so the same value reads well in a notebook
(Markdown), in a terminal (an aligned text table) and in later cells (``models = %ollama list``
is a plain ``list`` of ``dict``). ``pull`` shows live progress while Ollama downloads, then
leaves a one-line summary that a saved notebook keeps without any widget state.
"""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .commands import CommandContext, Subcommand
from .errors import (
    Interrupted,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaMagicError,
    OllamaStreamError,
    OllamaUsageError,
    PullError,
    StreamErrorLine,
    TruncatedStreamError,
    UnexpectedDataError,
)
from .local import list_local_models
from .openai_compat import OpenAIClient
from .view import close_tree

#: Shortest gap between two progress redraws while bytes arrive (seconds): ~10 updates a second.
PROGRESS_INTERVAL = 0.1
#: How far back the download speed is measured (seconds).
SPEED_WINDOW = 5.0
#: The model suggested when nothing is installed.
EXAMPLE_MODEL = "llama3.2"


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
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


_MD_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|"}
_MD_SPECIAL = re.compile(r"[\\`*_\[\]~#!&<>|]")


def md_text(value: Any) -> str:
    """Untrusted text as literal Markdown, safe inside a table cell.

    HTML cannot start (``<``, ``&``), the cell cannot be split (``|``) and emphasis, links or
    code spans cannot form.

    >>> md_text("evil|<img src=x onerror=1>&[x](javascript:y)")
    'evil\\\\|&lt;img src=x onerror=1&gt;&amp;\\\\[x\\\\](javascript:y)'
    """
    text = _printable(" ".join(("" if value is None else str(value)).split()))
    return _MD_SPECIAL.sub(lambda m: _MD_ESCAPES.get(m[0], "\\" + m[0]), text)


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

    def __new__(cls, version: str, host: str) -> ServerVersion:
        self = super().__new__(cls, version)
        self.host = host
        return self

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"Ollama {self} at {self.host}")


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


def _models_in(data: Any, ctx: CommandContext, path: str) -> list[dict[str, Any]]:
    """The ``models`` array of ``/api/tags`` or ``/api/ps``, checked."""
    if data is None:
        return []
    models = data.get("models") if isinstance(data, dict) else None
    if models is None and isinstance(data, dict):
        return []
    if not isinstance(models, list):
        raise UnexpectedDataError(
            f"{ctx.client.base_url}{path} did not answer with a model list. "
            "Is this an Ollama server? Check --host / OLLAMA_HOST."
        )
    return [m for m in models if isinstance(m, dict)]


def _row(model: dict[str, Any], *keys: str) -> dict[str, Any]:
    details = model.get("details")
    details = details if isinstance(details, dict) else {}
    row: dict[str, Any] = {"name": str(model.get("name") or model.get("model") or "")}
    for key in keys:
        row[key] = model.get(key, details.get(key))
    return row


def installed_models(ctx: CommandContext) -> ModelTable:
    """The server's models (``GET /api/tags``, or ``GET /v1/models`` on an OpenAI-compatible
    server), then the embedded ``local:`` models that are installed in this Python."""
    local = [m for m in list_local_models() if m["installed"]]
    keys = ("size", "parameter_size", "quantization_level", "family", "modified_at", "digest")
    try:
        if isinstance(ctx.client, OpenAIClient):
            rows = [{"name": m["name"]} for m in ctx.client.list_models()]
        else:
            data = ctx.client.request_json("GET", "/api/tags")
            rows = [_row(m, *keys) for m in _models_in(data, ctx, "/api/tags")]
    except OllamaConnectionError:
        if not local:
            raise
        rows = []  # no server: the embedded models still answer
    rows += [_row(m, *keys) for m in local]
    empty = (
        f"No models are installed on `{ctx.client.base_url}` yet. Download one with "
        f"`%ollama pull {EXAMPLE_MODEL}` (or `ollama pull {EXAMPLE_MODEL}` in a terminal)."
    )
    return ModelTable(rows, _MODEL_COLUMNS, empty)


def loaded_models(ctx: CommandContext) -> ModelTable:
    """The models in memory right now (``GET /api/ps``)."""
    data = ctx.client.request_json("GET", "/api/ps")
    keys: tuple[str, ...] = ("size", "size_vram", "context_length", "expires_at", "parameter_size")
    keys += ("quantization_level", "family", "digest")
    rows = [_row(m, *keys) for m in _models_in(data, ctx, "/api/ps")]
    empty = (
        f"No model is loaded on `{ctx.client.base_url}`. A model loads when it is first "
        "asked and unloads after 5 idle minutes (change that with `--keep-alive`)."
    )
    return ModelTable(rows, _LOADED_COLUMNS, empty)


# --------------------------------------------------------------------------------------------
# Pull progress


@dataclass
class Layer:
    """Download progress of one blob of a model."""

    digest: str
    total: int = 0
    completed: int = 0
    #: (time, completed) samples inside the speed window.
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    @property
    def short(self) -> str:
        """The 12 hex digits Ollama shows for a layer."""
        return self.digest.removeprefix("sha256:")[:12]

    @property
    def fraction(self) -> float:
        if self.total <= 0:
            return 0.0
        return min(1.0, self.completed / self.total)

    @property
    def done(self) -> bool:
        return self.total > 0 and self.completed >= self.total

    def record(self, completed: int, now: float) -> None:
        self.completed = completed
        self.samples.append((now, completed))
        while len(self.samples) > 2 and now - self.samples[0][0] > SPEED_WINDOW:
            self.samples.popleft()

    @property
    def speed(self) -> float | None:
        """Bytes per second over the last few seconds, or None before it can be measured."""
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 and b1 > b0 else None

    def describe(self) -> str:
        """``dde5aa3fc5ff  1.0 GB / 2.0 GB  50%  45.1 MB/s  ETA 22 s``."""
        if self.total <= 0:
            return f"{self.short}  waiting"
        if self.done:
            return f"{self.short}  {format_size(self.total)}  done"
        parts = [
            self.short,
            f"{format_size(self.completed)} / {format_size(self.total)}",
            f"{self.fraction:.0%}",
        ]
        speed = self.speed
        if speed:
            parts.append(f"{format_size(speed)}/s")
            parts.append("ETA " + format_duration((self.total - self.completed) / speed))
        return "  ".join(parts)


class PullState:
    """What a pull stream has said so far: the current status line and each layer's bytes."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.status = "connecting…"
        self.layers: dict[str, Layer] = {}
        self.current: Layer | None = None
        self.succeeded = False
        self._clock = clock
        self.started = clock()

    def feed(self, progress: dict[str, Any]) -> bool:
        """Take one progress object; True when the display's structure changed (new line)."""
        status = str(progress.get("status") or "")
        digest = progress.get("digest")
        if status == "success":
            self.succeeded = True
        if isinstance(digest, str) and digest:
            layer = self.layers.get(digest)
            new = layer is None
            if layer is None:
                layer = self.layers[digest] = Layer(digest)
            total = progress.get("total")
            if isinstance(total, int) and total > 0:
                layer.total = total
            completed = progress.get("completed")
            layer.record(completed if isinstance(completed, int) else 0, self._clock())
            self.current = layer
            changed = new or status != self.status
            self.status = status
            return changed
        changed = status != self.status
        self.status, self.current = status or self.status, None
        return changed

    @property
    def total(self) -> int:
        return sum(layer.total for layer in self.layers.values())

    @property
    def completed(self) -> int:
        return sum(min(layer.completed, layer.total) for layer in self.layers.values())

    @property
    def fraction(self) -> float:
        total = self.total
        return self.completed / total if total else 0.0

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def line(self) -> str:
        """The one-line terminal view of where the pull is."""
        if self.current is not None:
            layer = self.current
            return f"{self.name}: pulling {layer.describe()}"
        return f"{self.name}: {self.status}"

    def summary(self, ending: str = "stopped") -> tuple[str, str]:
        """How the pull ended, as (plain text, Markdown); ``ending`` says how it did not finish."""
        if self.succeeded:
            size = f" ({format_size(self.total)})" if self.total else ""
            text = f"Pulled {{}}{size} in {format_duration(self.elapsed)}."
        elif self.total:
            done = f"{format_size(self.completed)} of {format_size(self.total)}"
            text = f"Pulling {{}} {ending} at {self.fraction:.0%} ({done})."
        else:
            text = f"Pulling {{}} {ending}."
        return text.format(_printable(self.name)), text.format(f"**{md_text(self.name)}**")


class _TerminalProgress:
    """One line rewritten in place with ``\\r`` (terminal IPython, ``ipython script.ipy``)."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream
        self._width = 0

    @property
    def stream(self) -> Any:
        return self._stream if self._stream is not None else sys.stdout

    def _write(self, line: str, end: str = "") -> None:
        pad = " " * max(0, self._width - len(line))
        self.stream.write(f"\r{line}{pad}{end}")
        self.stream.flush()
        self._width = 0 if end else len(line)

    def show(self, state: PullState) -> None:
        self._write(_printable(state.line()))

    def finish(self, text: str, markdown: str) -> None:
        self._write(text, "\n")


class _LiveProgress:
    """Widgets in a Jupyter kernel: a status line, then a bar and a label per layer.

    When the pull ends, the widgets are replaced in place by the summary (plain text and
    Markdown), so a saved notebook shows the outcome without widget state.
    """

    def __init__(self, name: str) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._widgets = widgets
        self._name = name
        self._status = widgets.Label(value=f"Pulling {name}: connecting…")
        self._rows: dict[str, tuple[Any, Any]] = {}
        self._box = widgets.VBox([self._status])
        self._box.add_class("ollama-magic-pull")
        self._handle = display(self._box, display_id=True)

    def show(self, state: PullState) -> None:
        widgets = self._widgets
        self._status.value = f"Pulling {state.name}: {state.status}"
        added = []
        for digest, layer in state.layers.items():
            row = self._rows.get(digest)
            if row is None:
                bar = widgets.FloatProgress(
                    value=0.0, min=0.0, max=100.0, layout=widgets.Layout(width="16em")
                )
                label = widgets.Label()
                row = self._rows[digest] = (bar, label)
                added.append(widgets.HBox([bar, label]))
            bar, label = row
            bar.value = round(100 * layer.fraction, 1)
            if layer.done:
                bar.bar_style = "success"
            label.value = layer.describe()
        if added:
            self._box.children = (*self._box.children, *added)

    def finish(self, text: str, markdown: str) -> None:
        data = {"text/plain": text, "text/markdown": markdown}
        if self._handle is not None:
            self._handle.update(data, raw=True)
        close_tree(self._box)


def _progress_display(ctx: CommandContext, name: str) -> _TerminalProgress | _LiveProgress:
    if ctx.live:
        try:
            return _LiveProgress(name)
        except ImportError:
            pass
    return _TerminalProgress()


def _pull_failure(name: str, error: str) -> OllamaMagicError:
    """A pull error line turned into a message that says what to do."""
    if "file does not exist" in error or "not found" in error:
        return ModelNotFoundError(
            f"There is no model called '{name}' to download (Ollama said: {error}). Check the "
            "name and tag on https://ollama.com/library, for example `llama3.2` or `qwen3:8b`.",
            404,
            error,
            name,
        )
    if "newer version" in error:
        hint = "Update Ollama (https://ollama.com/download), then pull again."
    else:
        hint = (
            "Check the network connection and `ollama serve`'s log, then pull again: "
            "the parts already downloaded are kept."
        )
    return PullError(f"Pulling '{name}' failed: {error}. {hint}", error)


def pull_model(ctx: CommandContext, name: str) -> None:
    """Download ``name`` with a progress display; a stop (Ctrl+C) hangs up, keeping the parts.

    Raises :class:`~ollama_magic.errors.Interrupted` when stopped, and an
    :class:`~ollama_magic.errors.OllamaMagicError` when the pull fails.
    """
    display = _progress_display(ctx, name)
    state = PullState(name)
    stream: Generator[dict[str, Any], None, None] | None = None
    interval = PROGRESS_INTERVAL
    last_draw = float("-inf")
    try:
        stream = ctx.client.stream_json("/api/pull", {"model": name, "stream": True})
        for progress in stream:
            changed = state.feed(progress)
            now = time.monotonic()
            if changed or now - last_draw >= interval:
                display.show(state)
                last_draw = now
        if not state.succeeded:
            raise TruncatedStreamError(
                f"The connection closed before the pull of '{name}' finished. Check whether "
                "`ollama serve` is still running, then pull again to resume."
            )
    except KeyboardInterrupt:
        if stream is not None:
            stream.close()  # hang up: Ollama stops downloading
        text, markdown = state.summary()
        display.finish(text, markdown)
        raise Interrupted(
            f"Stopped downloading '{name}'. Ollama keeps what it has downloaded: run "
            f"`%ollama pull {name}` again to resume."
        ) from None
    except StreamErrorLine as exc:
        display.finish(*state.summary("failed"))
        raise _pull_failure(name, exc.error) from None
    except OllamaMagicError as exc:
        display.finish(*state.summary("failed"))
        if isinstance(exc, OllamaStreamError) and "pull again" not in exc.message:
            exc.message += " Pull again to resume the download."
            exc.args = (exc.message,)
        raise
    finally:
        if stream is not None:
            stream.close()
    display.finish(*state.summary())


def ensure_model(ctx: CommandContext, name: str) -> None:
    """Pull ``name`` unless the server has it, so a notebook can start on a fresh machine.

    ``x`` and ``x:latest`` are the same model. The pull shows the same progress as
    ``%ollama pull``.
    """
    if not name.strip():
        raise OllamaUsageError("No model name given to pull.")
    wanted = canonical_name(name)
    data = ctx.client.request_json("GET", "/api/tags")
    for model in _models_in(data, ctx, "/api/tags"):
        for key in ("name", "model"):
            value = model.get(key)
            if isinstance(value, str) and canonical_name(value) == wanted:
                return
    pull_model(ctx, name)


# --------------------------------------------------------------------------------------------
# Subcommands


def _no_arguments(command: str, argv: list[str]) -> None:
    if argv:
        raise OllamaUsageError(f"`%ollama {command}` takes no arguments, got {' '.join(argv)!r}.")


def _one_name(command: str, argv: list[str]) -> str:
    if len(argv) != 1 or not argv[0].strip() or argv[0].startswith("-"):
        raise OllamaUsageError(
            f"`%ollama {command}` takes one model name, for example "
            f"`%ollama {command} {EXAMPLE_MODEL}`."
        )
    return argv[0].strip()


def list_command(ctx: CommandContext, argv: list[str]) -> ModelTable:
    """``%ollama list``: the installed models, as a table that is also a list of dicts."""
    _no_arguments("list", argv)
    return installed_models(ctx)


def pull_command(ctx: CommandContext, argv: list[str]) -> None:
    """``%ollama pull NAME``: download a model, with live progress."""
    pull_model(ctx, _one_name("pull", argv))


def ps_command(ctx: CommandContext, argv: list[str]) -> ModelTable:
    """``%ollama ps``: the models in memory, where they run and when they unload."""
    _no_arguments("ps", argv)
    return loaded_models(ctx)


def show_command(ctx: CommandContext, argv: list[str]) -> ModelDetails:
    """``%ollama show NAME``: capabilities, context length, parameters, template."""
    name = _one_name("show", argv)
    data = ctx.client.request_json("POST", "/api/show", {"model": name})
    if not isinstance(data, dict):
        raise UnexpectedDataError(
            f"{ctx.client.base_url}/api/show did not describe '{name}'. Is this an Ollama server?"
        )
    return ModelDetails(name, data)


def unload_command(ctx: CommandContext, argv: list[str]) -> None:
    """``%ollama unload NAME``: free the model's memory now instead of after the idle time."""
    name = _one_name("unload", argv)
    ctx.client.request_json("POST", "/api/generate", {"model": name, "keep_alive": 0})
    print(f"Unloaded {_printable(name)}.")


def version_command(ctx: CommandContext, argv: list[str]) -> ServerVersion:
    """``%ollama version``: the server's version (the value is the version string)."""
    if argv:
        raise OllamaUsageError("%ollama version takes no arguments.")
    data: Any = ctx.client.request_json("GET", "/api/version") or {}
    version = data.get("version", "unknown") if isinstance(data, dict) else "unknown"
    return ServerVersion(str(version), ctx.client.base_url)


SUBCOMMANDS: dict[str, Subcommand] = {
    "list": list_command,
    "models": list_command,
    "pull": pull_command,
    "ps": ps_command,
    "show": show_command,
    "unload": unload_command,
    "version": version_command,
}

_HELP: dict[Subcommand, tuple[str, str]] = {
    list_command: ("", "installed models"),
    pull_command: ("NAME", "download a model"),
    ps_command: ("", "models in memory"),
    show_command: ("NAME", "a model's details"),
    unload_command: ("NAME", "free a model's memory"),
    version_command: ("", "the server's version"),
}


def describe_subcommands() -> str:
    """One line listing every ``%ollama`` subcommand, for help and error messages.

    >>> print(describe_subcommands())  # doctest: +NORMALIZE_WHITESPACE
    list (or models): installed models; pull NAME: download a model; ps: models in memory;
    show NAME: a model's details; unload NAME: free a model's memory; version: the server's
    version
    """
    names: dict[Subcommand, list[str]] = {}
    for name, function in SUBCOMMANDS.items():
        names.setdefault(function, []).append(name)
    parts = []
    for function, aliases in names.items():
        usage, description = _HELP.get(function, ("", ""))
        head = aliases[0] + (f" {usage}" if usage else "")
        if len(aliases) > 1:
            head += " (or " + ", ".join(aliases[1:]) + ")"
        parts.append(f"{head}: {description}" if description else head)
    return "; ".join(parts)


__all__ = [
    "SUBCOMMANDS",
    "ModelDetails",
    "ModelTable",
    "PullError",
    "ServerVersion",
    "describe_subcommands",
    "ensure_model",
    "installed_models",
    "loaded_models",
    "pull_model",
]
