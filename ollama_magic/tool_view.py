"""Show each tool call of a ``--tools`` answer as it happens, in outputs the notebook keeps.

Why plain outputs and not the live answer view: the live view is replaced by the final answer
when the stream ends, so anything inside it is gone from the saved notebook. The calls are
therefore shown as ordinary display outputs (terminal: printed lines), one per call, updated
in place when the result is known. The answer view starts only when the model writes text, so
the calls of the first rounds come before the answer in the cell, as they happened. Calls
shown while the answer view was already open (the model wrote text before asking) are shown
again after the answer, so they stay too.

Tool names, arguments and results come from the model or from its calls: untrusted text. They
are shown as text only, inside a code fence that no backtick run in them can close.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import Any

from .markdown import safe_markdown
from .tools import ToolCallRecord

#: Characters of a result (or error) shown under a call; the whole text is on the record.
PREVIEW_CHARS = 300
#: Lines of a result shown under a call.
PREVIEW_LINES = 4
#: Characters of the arguments shown in a call line.
ARGUMENT_CHARS = 300

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_TICK_RUNS = re.compile(r"`+")


def _printable(text: str) -> str:
    """Control characters as ``\\xNN``, so a result cannot drive a terminal or break a line."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def call_line(record: ToolCallRecord) -> str:
    """``name(key=JSON, …)``: the call as the model asked for it.

    >>> call_line(ToolCallRecord("get_weather", {"city": "Paris", "days": 2}))
    'get_weather(city="Paris", days=2)'
    >>> call_line(ToolCallRecord("get_weather", '{"city": "Oslo"}'))
    'get_weather(city="Oslo")'
    """
    arguments = record.arguments
    if isinstance(arguments, str):  # OpenAI-compatible servers send JSON text
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    if isinstance(arguments, dict):
        shown = ", ".join(
            f"{key}={json.dumps(value, ensure_ascii=False, default=repr)}"
            for key, value in arguments.items()
        )
    else:
        shown = json.dumps(arguments, ensure_ascii=False, default=repr)
    return _printable(f"{record.name}({_shorten(shown, ARGUMENT_CHARS)})")


def result_lines(record: ToolCallRecord, index: int | None, out_name: str, running: bool) -> str:
    """The result or error under a call, short; where the whole text is when it was cut."""
    if running:
        return "… running"
    text = record.error if record.error is not None else record.result
    mark = "✗" if record.error is not None else "→"
    lines = text.splitlines() or [""]
    preview = "\n  ".join(lines[:PREVIEW_LINES])
    cut = len(lines) > PREVIEW_LINES or len(preview) > PREVIEW_CHARS
    preview = _printable(_shorten(preview, PREVIEW_CHARS))
    if cut:
        where = f"{out_name}.tool_calls[{index}]" if index is not None else "the record"
        field = "error" if record.error is not None else "result"
        preview += f" [{len(text):,} characters in all: {where}.{field}]"
    return f"{mark} {preview}  ({record.seconds:.2f} s)" if record.ran else f"{mark} {preview}"


def call_text(
    record: ToolCallRecord, index: int | None = None, out_name: str = "", running: bool = False
) -> str:
    """The call and its result as plain text (terminal, ``text/plain``)."""
    return f"▸ {call_line(record)}\n{result_lines(record, index, out_name, running)}"


def call_markdown(text: str) -> str:
    """Plain text shown as text in Markdown: a fence longer than any backtick run inside."""
    longest = max((len(run) for run in _TICK_RUNS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return safe_markdown(f"{fence}text\n{text}\n{fence}")


class ToolCallView:
    """The answer view of a ``--tools`` cell, with each call shown as it happens.

    Everything a view does is passed on to ``inner``, which starts with the first text of
    the answer (or at the end, for an answer with none).
    """

    def __init__(self, inner: Any, shell: Any, out_name: str, quiet: bool = False) -> None:
        self._inner = inner
        self._kernel = getattr(shell, "kernel", None) is not None
        self._out_name = out_name
        self._quiet = quiet
        self._inner_started = False
        self._calls = 0
        self._handle: Any = None
        self._text_open = False
        #: Calls shown while the answer view was open: shown again after the answer.
        self._inside: list[tuple[int, ToolCallRecord]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def _open(self) -> None:
        if not self._inner_started:
            self._inner_started = True
            self._inner.start()

    # -- the view ---------------------------------------------------------------------------

    def start(self) -> None:
        pass

    def thinking(self, text: str) -> None:
        self._open()
        self._text_open = True
        self._inner.thinking(text)

    def answer(self, text: str) -> None:
        self._open()
        self._text_open = True
        self._inner.answer(text)

    def trace(self, line: bytes, at: float) -> None:
        self._open()
        self._inner.trace(line, at)

    def note(self, text: str) -> None:
        say = getattr(self._inner, "note", None)
        if say is not None:
            say(text)
        else:
            print(text)

    def finish(self, result: Any, out_name: str) -> None:
        self._open()
        self._inner.finish(result, out_name)
        if self._inside and self._kernel and not self._quiet:
            text = "\n\n".join(
                call_text(record, index, self._out_name) for index, record in self._inside
            )
            self._display(f"*Tool calls of this answer:*\n\n{call_markdown(text)}", text)

    # -- the calls --------------------------------------------------------------------------

    def call_started(self, record: ToolCallRecord) -> None:
        index = self._calls
        self._calls += 1
        if self._quiet:
            return
        if self._kernel:
            if self._inner_started:
                self._inside.append((index, record))
            # Inside the open answer view a front end may not apply updates: no display id.
            new = not self._inner_started
            self._handle = self._display(*self._bundle(record, index, running=True), new=new)
            return
        if self._text_open:
            print()
            self._text_open = False
        print(f"▸ {call_line(record)}", flush=True)

    def call_finished(self, record: ToolCallRecord) -> None:
        index = self._calls - 1
        if self._quiet:
            return
        if self._kernel:
            markdown, text = self._bundle(record, index, running=False)
            if self._handle is not None:
                self._handle.update({"text/markdown": markdown, "text/plain": text}, raw=True)
            else:
                self._display(markdown, text)
            return
        print(result_lines(record, index, self._out_name, running=False), flush=True)

    def _bundle(self, record: ToolCallRecord, index: int, running: bool) -> tuple[str, str]:
        text = call_text(record, index, self._out_name, running)
        return call_markdown(text), text

    def _display(self, markdown: str, text: str, new: bool = False) -> Any:
        from IPython.display import display

        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what a tool printed stays before its result
        data = {"text/markdown": markdown, "text/plain": text}
        return display(data, raw=True, display_id=True if new else None)


def traced_view(view: Any, shell: Any, out_name: str, quiet: bool = False) -> ToolCallView:
    """Wrap the view of a ``--tools`` answer so that its calls are shown as they happen."""
    return ToolCallView(view, shell, out_name, quiet)
