"""``%ollama pull``: live download progress, a stop that keeps the parts, a clear failure.

While Ollama downloads, a terminal sees one line rewritten in place and a notebook a bar per
layer; when the pull ends either is replaced by a one-line summary that a saved notebook keeps
without widget state.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from .commands import CommandContext
from .errors import (
    Interrupted,
    ModelNotFoundError,
    OllamaMagicError,
    OllamaStreamError,
    OllamaUsageError,
    PullError,
    StreamErrorLine,
    TruncatedStreamError,
)
from .model_tables import _printable, canonical_name, format_duration, format_size, md_text
from .view import close_tree

#: Shortest gap between two progress redraws while bytes arrive (seconds): ~10 updates a second.
PROGRESS_INTERVAL = 0.1
#: How far back the download speed is measured (seconds).
SPEED_WINDOW = 5.0


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
    return _LiveProgress(name) if ctx.live else _TerminalProgress()


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
        stream = ctx.backend.pull(name)
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
    for model in ctx.backend.list_models():
        for key in ("name", "model"):
            value = model.get(key)
            if isinstance(value, str) and canonical_name(value) == wanted:
                return
    pull_model(ctx, name)
