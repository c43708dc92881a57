"""The last error of the user's cells, as text a model can work on: ``%ollama fix`` / ``explain``.

:func:`last_error` gives the exception type, its message, a plain-text traceback (frames of the
notebook's cells and of the user's own files in full, library frames one line each, the whole
bounded) and the source of the cell that raised it, as typed. :func:`fix_prompt` and
:func:`explain_prompt` turn that into a request from a template the user can configure.

Which error is "the last": the most recent failure of a cell, except

- errors of ollama_magic itself (:class:`~ollama_magic.errors.OllamaMagicError`: they already say
  what to do, and a failed ``%ollama fix`` must not make the next one explain its own failure);
- any failure of a cell that runs ``%ollama fix`` or ``%ollama explain`` (the same reason, for
  errors that are not ours, such as a stop with the interrupt button);
- ``KeyboardInterrupt``: nothing to fix.

With :func:`watch_errors` (done when the extension loads) each failing cell is recorded as it
ends, so an ignored error never hides the user's one before it. Without it, IPython's own
record of the last shown exception (``sys.last_value``) is read instead.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import re
import site
import sys
import sysconfig
import traceback
import weakref
from dataclasses import dataclass
from typing import Any

from .errors import OllamaMagicError, OllamaUsageError

#: The longest traceback text a report holds; longer ones keep their head and their tail.
TRACEBACK_LIMIT = 6000

#: Consecutive library frames beyond this many are summarised in one line.
LIBRARY_RUN = 6

DEFAULT_FIX_PROMPT = """\
This Jupyter notebook cell raised an error.

The cell:

{cell}

The error:

{traceback}

Find the cause and correct the cell. Keep what the cell is meant to do, and keep IPython \
syntax (lines starting with % or !) as it is. Reply with one or two sentences on the cause, then \
the whole corrected cell in ONE fenced ```python code block, and nothing after it."""

DEFAULT_EXPLAIN_PROMPT = """\
This Jupyter notebook cell raised an error.

The cell:

{cell}

The error:

{traceback}

Explain what went wrong and why, in plain words for the person who wrote the cell: name the line \
that failed and what the error message means there, then say how to fix it. Be brief; show code \
only for the lines that need to change."""

#: The fields a prompt template may use, each written ``{name}``; other braces are left alone.
TEMPLATE_FIELDS = {
    "cell": "the failing cell's source, as a fenced python code block",
    "traceback": "the traceback, as a fenced text block",
    "error": "one line: the exception type and message",
    "error_type": "the exception type, e.g. ZeroDivisionError",
    "message": "the exception message",
    "where": "which cell failed, e.g. In[3]",
}

_FIX_COMMAND = re.compile(r"^\s*%ollama\s+(fix|explain)\b", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_FIELD = re.compile(r"\{(" + "|".join(TEMPLATE_FIELDS) + r")\}")


@dataclass(frozen=True)
class ErrorReport:
    """One failure of a cell, as plain text (no ANSI colours)."""

    #: e.g. ``ZeroDivisionError``, or ``json.decoder.JSONDecodeError`` outside builtins.
    error_type: str
    message: str
    #: Bounded plain-text traceback, ending with the ``Type: message`` line.
    traceback: str
    #: The cell's source as typed, or ``None`` when it cannot be found.
    cell: str | None
    #: The cell's ``In[n]`` number, when it was stored in history.
    execution_count: int | None = None

    @property
    def summary(self) -> str:
        """``Type: message`` on one line (the message's first line)."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.error_type}: {first}" if first else self.error_type

    @property
    def where(self) -> str:
        return f"In[{self.execution_count}]" if self.execution_count else "the last failed cell"


# -- recording ---------------------------------------------------------------------------------


def is_ignored(exc: BaseException, cell: str | None = None) -> bool:
    """True for failures that are not the user's error to fix (see the module docstring)."""
    if isinstance(exc, (OllamaMagicError, KeyboardInterrupt)):
        return True
    return cell is not None and _FIX_COMMAND.search(cell) is not None


class ErrorLog:
    """The last failure of a user's cell, recorded when each cell ends (``post_run_cell``)."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.last: ErrorReport | None = None

    def record(self, result: Any) -> None:
        """``post_run_cell`` callback; ``result`` is IPython's ``ExecutionResult``."""
        try:
            exc = result.error_in_exec
            if exc is None:
                exc = result.error_before_exec
            if exc is None:
                return
            cell = result.info.raw_cell if result.info is not None else None
            if is_ignored(exc, cell):
                return
            self.last = report_error(exc, self.shell, cell, result.execution_count)
        except Exception:  # pragma: no cover - a hook must never break the user's session
            return


_LOGS: weakref.WeakKeyDictionary[Any, ErrorLog] = weakref.WeakKeyDictionary()


def watch_errors(shell: Any) -> ErrorLog:
    """Record each failing cell of ``shell`` from now on (once per shell; returns the log)."""
    log = _LOGS.get(shell)
    if log is None:
        log = _LOGS[shell] = ErrorLog(shell)
        shell.events.register("post_run_cell", log.record)
    return log


def unwatch_errors(shell: Any) -> None:
    """Stop recording (for ``%unload_ext``)."""
    log = _LOGS.pop(shell, None)
    if log is not None:
        with contextlib.suppress(ValueError):  # already gone
            shell.events.unregister("post_run_cell", log.record)


def last_error(shell: Any) -> ErrorReport | None:
    """The last error of the user's cells, or ``None`` when there is none."""
    log = _LOGS.get(shell)
    if log is not None and log.last is not None:
        return log.last
    exc = getattr(sys, "last_exc", None)  # Python 3.12+
    if exc is None:
        exc = getattr(sys, "last_value", None)
    if not isinstance(exc, BaseException):
        return None
    cell, count = _source_of(exc, shell)
    if is_ignored(exc, cell):
        return None
    return report_error(exc, shell, cell, count)


def require_last_error(shell: Any, command: str = "fix") -> ErrorReport:
    """:func:`last_error`, or a usage error that says how to get one."""
    report = last_error(shell)
    if report is None:
        raise OllamaUsageError(
            f"There is no error to {command}: `%ollama {command}` works on the last cell that "
            "raised an exception, and none has failed yet (errors of %ollama itself do not "
            f"count). Run the failing cell, then `%ollama {command}`."
        )
    return report


def _source_of(exc: BaseException, shell: Any) -> tuple[str | None, int | None]:
    """The raw source and number of the cell ``exc`` came from, from what IPython kept."""
    result = getattr(shell, "last_execution_result", None)
    if result is not None and exc in (result.error_in_exec, result.error_before_exec):
        return result.info.raw_cell, result.execution_count
    cells = _cell_files(shell)
    filename = getattr(exc, "filename", None) if isinstance(exc, SyntaxError) else None
    if filename not in cells:
        frames = traceback.extract_tb(exc.__traceback__)
        filename = next((f.filename for f in frames if f.filename in cells), None)
    if filename is None:
        return None, None
    number = cells[filename]
    transformed = "".join(linecache.getlines(filename)).rstrip("\n")
    history = getattr(shell, "history_manager", None)
    raw = getattr(history, "input_hist_raw", [])
    parsed = getattr(history, "input_hist_parsed", [])
    if 0 < number < min(len(raw), len(parsed)) and parsed[number] == transformed:
        return raw[number], number
    return transformed or None, number


# -- formatting --------------------------------------------------------------------------------


def report_error(
    exc: BaseException,
    shell: Any = None,
    cell: str | None = None,
    execution_count: int | None = None,
) -> ErrorReport:
    """Describe ``exc`` as plain text (the cell's own source is passed in: see last_error)."""
    return ErrorReport(
        error_type=_type_name(exc),
        message=strip_ansi(exc.msg if isinstance(exc, SyntaxError) else _safe_str(exc)),
        traceback=format_traceback(exc, shell),
        cell=cell,
        execution_count=execution_count,
    )


def strip_ansi(text: str) -> str:
    """Text without terminal colour codes.

    >>> strip_ansi("\\x1b[0;31mZeroDivisionError\\x1b[0m: division by zero")
    'ZeroDivisionError: division by zero'
    """
    return _ANSI.sub("", text)


def format_traceback(exc: BaseException, shell: Any = None, limit: int = TRACEBACK_LIMIT) -> str:
    """A traceback for a reader who wrote the cells but not the libraries.

    Frames of notebook cells read ``Cell In[3], line 2``; frames of the user's own files are
    shown with their line of code; library frames (standard library, site-packages) take one
    line each, and long runs of them one line in all. Chained exceptions come first, as in
    Python. Longer than ``limit`` characters, the middle is cut.
    """
    cells = _cell_files(shell)
    seen: set[int] = set()
    current: BaseException | None = exc
    chain: list[tuple[BaseException, str]] = []
    while current is not None and id(current) not in seen and len(chain) < 4:
        seen.add(id(current))
        if current.__cause__ is not None:
            link, following = (
                "The above exception was the direct cause of the following exception:",
                current.__cause__,
            )
        elif current.__context__ is not None and not current.__suppress_context__:
            link, following = (
                "During handling of the above exception, another exception occurred:",
                current.__context__,
            )
        else:
            link, following = "", None
        chain.append((current, link))
        current = following
    ordered: list[str] = []
    for index, (error, link) in enumerate(reversed(chain)):  # oldest first, as Python prints
        if index and link:
            ordered.append(link)
        ordered.append(_format_one(error, cells))
    text = strip_ansi("\n\n".join(ordered))
    return bound(text, limit)


def bound(text: str, limit: int = TRACEBACK_LIMIT) -> str:
    """``text`` cut in the middle to at most ``limit`` characters, at line breaks.

    >>> print(bound("\\n".join(f"line {i:02}" for i in range(20)), 100))
    line 00
    line 01
    line 02
    [… 103 characters cut …]
    line 16
    line 17
    line 18
    line 19
    """
    if len(text) <= limit:
        return text
    room = max(limit - 40, 0)  # what the marker line leaves
    head_size = room * 2 // 5
    head = text[:head_size]
    tail = text[len(text) - (room - head_size) :]
    if "\n" in head:
        head = head[: head.rindex("\n")]
    if "\n" in tail:
        tail = tail[tail.index("\n") + 1 :]
    cut = len(text) - len(head) - len(tail) - 2
    return f"{head}\n[… {cut:,} characters cut …]\n{tail}"


def _format_one(exc: BaseException, cells: dict[str, int]) -> str:
    lines: list[str] = []
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename in cells:
        frames = traceback.StackSummary()  # the cell did not compile: IPython's frames only
    first_cell = next((i for i, f in enumerate(frames) if f.filename in cells), None)
    if first_cell is not None:
        frames = traceback.StackSummary.from_list(list(frames)[first_cell:])
    if frames:
        lines.append("Traceback (most recent call last):")
    run: list[str] = []
    repeated = 0
    for index, frame in enumerate(frames):
        if index >= 3 and all(_same(frame, frames[index - k]) for k in (1, 2, 3)):
            repeated += 1  # deep recursion: Python also shows three and counts the rest
            continue
        if repeated:
            lines.extend(_summarise_run(run))
            run = []
            lines.append(f"  [Previous line repeated {repeated} more times]")
            repeated = 0
        if frame.filename in cells or not _is_library(frame.filename):
            lines.extend(_summarise_run(run))
            run = []
            if frame.filename in cells:
                lines.append(
                    f"  Cell In[{cells[frame.filename]}], line {frame.lineno}, in {frame.name}"
                )
            else:
                lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
        else:
            run.append(
                f'  File "{_short_path(frame.filename)}", line {frame.lineno}, in {frame.name}'
            )
    lines.extend(_summarise_run(run))
    if repeated:
        lines.append(f"  [Previous line repeated {repeated} more times]")
    try:
        last = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
    except Exception:  # a broken __str__ still gets a line
        last = _type_name(exc)
    if isinstance(exc, SyntaxError) and exc.filename in cells:
        last = last.replace(f'File "{exc.filename}"', f"Cell In[{cells[exc.filename]}]")
    lines.append(last)
    return "\n".join(lines)


def _same(one: traceback.FrameSummary, other: traceback.FrameSummary) -> bool:
    return (one.filename, one.lineno, one.name) == (other.filename, other.lineno, other.name)


def _summarise_run(run: list[str]) -> list[str]:
    if len(run) <= LIBRARY_RUN:
        return run
    keep = LIBRARY_RUN // 2
    return [*run[:keep], f"  [… {len(run) - 2 * keep} more library frames …]", *run[-keep:]]


def _cell_files(shell: Any) -> dict[str, int]:
    """Names IPython gave the cells it compiled → their ``In[n]`` number."""
    compiler = getattr(shell, "compile", None)
    names = getattr(compiler, "_filename_map", None)
    return dict(names) if isinstance(names, dict) else {}


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(getattr(site, "getsitepackages", list)())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if user_site:
        roots.add(user_site)
    normal = {os.path.normcase(os.path.join(os.path.realpath(r), "")) for r in roots if r}
    return tuple(sorted(normal, key=len, reverse=True))  # site-packages before the stdlib


_LIBRARY_ROOTS = _library_roots()


def _is_library(filename: str) -> bool:
    if filename.startswith("<"):
        return True  # <frozen ...>, <string>, code compiled by a library
    return os.path.normcase(os.path.realpath(filename)).startswith(_LIBRARY_ROOTS)


def _short_path(filename: str) -> str:
    real = os.path.realpath(filename)
    for root in _LIBRARY_ROOTS:
        if os.path.normcase(real).startswith(root):
            return real[len(root) :].replace(os.sep, "/")
    return filename


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    if module in ("builtins", "__main__", None):
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: message could not be shown>"


# -- prompts -----------------------------------------------------------------------------------


def fenced(text: str, language: str = "") -> str:
    """A Markdown code block that ``text`` cannot close early (its fence is longer).

    >>> print(fenced("x = 1", "python"))
    ```python
    x = 1
    ```
    >>> print(fenced('s = "```"'))
    ````
    s = "```"
    ````
    """
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def fill_template(template: str, report: ErrorReport) -> str:
    """``template`` with its ``{field}`` names (see ``TEMPLATE_FIELDS``) filled from ``report``.

    Only those names are replaced, in one pass: other braces (JSON, f-strings in the text) and
    braces inside the inserted cell or traceback are left as they are.
    """
    cell = (
        fenced(report.cell.strip("\n"), "python")
        if report.cell and report.cell.strip()
        else "(the source of the failing cell is not available)"
    )
    values = {
        "cell": cell,
        "traceback": fenced(report.traceback, "text"),
        "error": report.summary,
        "error_type": report.error_type,
        "message": report.message,
        "where": report.where,
    }
    return _FIELD.sub(lambda match: values[match[1]], template)


def fix_prompt(report: ErrorReport, template: str = DEFAULT_FIX_PROMPT) -> str:
    """The request of ``%ollama fix``: a corrected cell, in one ```python block."""
    return fill_template(template, report)


def explain_prompt(report: ErrorReport, template: str = DEFAULT_EXPLAIN_PROMPT) -> str:
    """The request of ``%ollama explain``: what went wrong, in plain words."""
    return fill_template(template, report)
