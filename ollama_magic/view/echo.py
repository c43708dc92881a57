"""Each answer as a terminal shows it, for ``python -m ollama_magic run``.

The live view replaces display outputs whole, which only a notebook front end can show. When the
kernel's environment has ``OLLAMA_MAGIC_ECHO=1`` (the run command sets it), each view is paired
with its terminal twin, whose text goes out in the ``transient`` part of messages for a display
id that no output has: front ends ignore such updates, no notebook keeps ``transient``, and the
run command prints it as it arrives.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..result import OllamaResponse
from .common import TerminalView, View
from .compare import CompareView, TerminalCompareView
from .kernel_io import CellOutput
from .live import footer_text
from .mapping import MapView, TerminalMapView

#: Set to ``1`` in the kernel's environment to ask for the terminal text as well.
ECHO_ENV = "OLLAMA_MAGIC_ECHO"
#: The key of ``transient`` that carries the text.
ECHO_KEY = "ollama_magic_echo"


def echo_requested() -> bool:
    return os.environ.get(ECHO_ENV) == "1"


class KernelEcho:
    """A write-and-flush stream whose text leaves the kernel as ``transient`` data.

    It opens on the thread of the cell (the messages need the cell's request as parent), which
    is where views start.
    """

    def __init__(self, shell: Any, hold: bool = False) -> None:
        """``hold``: keep everything until :meth:`release` (a ``--bg`` answer, which would
        otherwise interleave with what later cells print)."""
        self._shell = shell
        self._hold = hold
        self._cell: CellOutput | None = None
        self._parts: list[str] = []

    def open(self) -> None:
        self._cell = CellOutput(self._shell)

    def write(self, text: str) -> None:
        self._parts.append(text)

    def flush(self) -> None:
        if not self._hold:
            self.release()

    def release(self) -> None:
        if self._cell is not None and self._parts:
            text, self._parts = "".join(self._parts), []
            self._cell.echo(ECHO_KEY, text)


class EchoedView:
    """A view, and the same events printed as :class:`TerminalView` prints them, then the
    footer line the notebook shows."""

    def __init__(self, view: View, shell: Any, hold: bool = False) -> None:
        self._view = view
        self._echo = KernelEcho(shell, hold)
        self._terminal = TerminalView(self._echo)
        self._chunks = 0
        self._started = 0.0

    def start(self) -> None:
        self._view.start()
        self._echo.open()
        self._terminal.start()
        self._started = time.monotonic()

    def thinking(self, text: str) -> None:
        self._view.thinking(text)
        self._terminal.thinking(text)
        self._chunks += 1

    def answer(self, text: str) -> None:
        self._view.answer(text)
        self._terminal.answer(text)
        self._chunks += 1

    def trace(self, line: bytes, at: float) -> None:
        self._view.trace(line, at)

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        self._view.finish(result, out_name)
        if self._chunks:  # else the error, printed by the run command, says it all
            self._terminal.finish(result, out_name)
            footer = footer_text(result, "", self._chunks, time.monotonic() - self._started)
            self._echo.write(f"\x1b[2m{footer}\x1b[0m\n")
            self._echo.release()

    def __getattr__(self, name: str) -> Any:
        # What only some views have (expect_format, logprobs, note, trace_lines, ...).
        return getattr(self._view, name)


class EchoedCompareView:
    """A comparison view, and each answer printed whole under its model's name at the end."""

    def __init__(self, view: CompareView, shell: Any) -> None:
        self._view = view
        self._echo = KernelEcho(shell)

    def start(self) -> None:
        self._view.start()
        self._echo.open()

    def thinking(self, index: int, text: str) -> None:
        self._view.thinking(index, text)

    def answer(self, index: int, text: str) -> None:
        self._view.answer(index, text)

    def ended(self, index: int) -> None:
        self._view.ended(index)

    def finish(self, answers: dict[str, OllamaResponse], out_name: str) -> None:
        self._view.finish(answers, out_name)
        TerminalCompareView(list(answers), self._echo).finish(answers, out_name)


class EchoedMapView:
    """A ``--map`` view, and the terminal's progress line and summary (only the summary, in the
    background)."""

    def __init__(self, view: MapView, shell: Any, total: int, background: bool = False) -> None:
        self._view = view
        self._echo = KernelEcho(shell)
        self._terminal = TerminalMapView(total, stream=self._echo)
        self._progress = not background

    def describe_items(self, labels: list[str]) -> None:
        describe = getattr(self._view, "describe_items", None)
        if describe is not None:
            describe(labels)

    def start(self) -> None:
        self._view.start()
        self._echo.open()
        if self._progress:
            self._terminal.start()

    def progress(self, index: int, result: OllamaResponse) -> None:
        self._view.progress(index, result)
        if self._progress:
            self._terminal.progress(index, result)

    def finish(self, results: list[OllamaResponse], out_name: str) -> None:
        self._view.finish(results, out_name)
        self._terminal.finish(results, out_name)


def _echoes(shell: Any, quiet: bool) -> bool:
    return not quiet and getattr(shell, "kernel", None) is not None and echo_requested()


def with_echo(view: Any, shell: Any, quiet: bool, background: bool = False) -> Any:
    """``view``, echoed when the kernel was asked to (see :data:`ECHO_ENV`) and not --quiet;
    a ``background`` answer is echoed whole when it ends."""
    return EchoedView(view, shell, hold=background) if _echoes(shell, quiet) else view


def with_compare_echo(view: CompareView, shell: Any, quiet: bool) -> CompareView:
    """A comparison view, echoed as :func:`with_echo` decides."""
    return EchoedCompareView(view, shell) if _echoes(shell, quiet) else view


def with_map_echo(
    view: MapView, shell: Any, total: int, quiet: bool, background: bool = False
) -> MapView:
    """A ``--map`` view, echoed as :func:`with_echo` decides."""
    return EchoedMapView(view, shell, total, background) if _echoes(shell, quiet) else view
