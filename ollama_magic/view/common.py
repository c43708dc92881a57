"""What every view shares: the protocol, the quiet and terminal views, the final output."""

from __future__ import annotations

import re
import sys
import time
from typing import Any, Protocol

from ..markdown import safe_markdown
from ..render import outcome_line
from ..result import OllamaResponse, provenance
from .pieces import unclosed_fence


class View(Protocol):
    """What the magic drives: ``start``, then any number of deltas, then ``finish``."""

    def start(self) -> None: ...

    def thinking(self, text: str) -> None: ...

    def answer(self, text: str) -> None: ...

    def trace(self, line: bytes, at: float) -> None: ...

    def finish(self, result: OllamaResponse, out_name: str) -> None: ...


class QuietView:
    """Shows nothing (``--quiet``): the answer only lands in the variable."""

    def start(self) -> None:
        pass

    def thinking(self, text: str) -> None:
        pass

    def answer(self, text: str) -> None:
        pass

    def trace(self, line: bytes, at: float) -> None:
        pass

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        pass


#: Lines kept in the --trace panel, and the longest line shown in full.
TRACE_LINES = 200
TRACE_WIDTH = 400


def format_trace_line(line: bytes, elapsed: float) -> str:
    """One --trace row: arrival time since the request, then the raw line (shortened).

    >>> format_trace_line(b'{"done":false}', 0.0123)
    '+0.012 s  {"done":false}'
    """
    text = line.decode("utf-8", "replace")
    if len(text) > TRACE_WIDTH:
        text = f"{text[:TRACE_WIDTH]}… ({len(line)} bytes)"
    return f"+{elapsed:.3f} s  {text}"


def format_status(
    model: str,
    elapsed: float,
    chunks: int,
    phase: str,
    tokens_per_second: float | None = None,
) -> str:
    """The one-line status, e.g. ``llama3.2 · answering · 3.1 s · 52 tokens · 16.8 tokens/s``.

    >>> format_status("llama3.2", 0.4, 0, "loading model…")
    'llama3.2 · loading model… · 0.4 s'
    >>> format_status("m", 2.0, 10, "answering", 5.0)
    'm · answering · 2.0 s · 10 tokens · 5.0 tokens/s'
    """
    parts = [model, phase, f"{elapsed:.1f} s"]
    if chunks:
        parts.append(f"{chunks} token{'s' if chunks != 1 else ''}")
    if tokens_per_second:
        parts.append(f"{tokens_per_second:.1f} tokens/s")
    return " · ".join(parts)


#: Answers up to this many characters are saved whole in text/plain too; longer ones only begin
#: there (the Markdown beside it always holds the whole answer).
PLAIN_LIMIT = 2000


def plain_text(text: str, out_name: str = "") -> str:
    """The ``text/plain`` of a final output: the answer if short, else its start and a count.

    Every notebook front end, nbconvert and GitHub show the ``text/markdown`` beside it; plain
    text is the fallback of text-only readers. Keeping a long answer there too would send and
    save it twice, so a long one is cut at a line or word. It says the Markdown output holds
    the rest: a variable name would be wrong once the notebook is reopened.

    >>> plain_text("short answer", "r")
    'short answer'
    >>> plain_text("word " * 1000, "r").splitlines()[-1]
    '… [3,001 more characters in the Markdown of this output]'
    """
    if len(text) <= PLAIN_LIMIT:
        return str.__str__(text)
    cut = text.rfind("\n", 0, PLAIN_LIMIT)
    if cut < PLAIN_LIMIT // 2:
        cut = text.rfind(" ", 0, PLAIN_LIMIT)
    if cut < PLAIN_LIMIT // 2:
        cut = PLAIN_LIMIT
    rest = len(text) - cut
    return f"{text[:cut].rstrip()}\n… [{rest:,} more characters in the Markdown of this output]"


def code_fence(text: str, language: str) -> tuple[str, str]:
    """Opening and closing fence that no backtick run of ``text`` can end early.

    >>> code_fence('{"a": "```"}', "json")
    ('````json\\n', '\\n````')
    """
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n", f"\n{fence}"


_BACKTICKS = re.compile(r"`+")


def answer_markdown(result: OllamaResponse) -> str:
    """The answer as safe Markdown, a ``--format`` answer as a JSON code block."""
    if not result:
        return ""
    if (result.request or {}).get("format") is not None:
        opening, closing = code_fence(result, "json")
        return f"{opening}{result}{closing}"
    return safe_markdown(result)


def final_bundle(result: OllamaResponse, out_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The persistent display output: safe Markdown for people, plain text for text-only readers.

    The Markdown is made from the result itself (no copy), and is the result itself when the
    answer needs no escaping. A code block the answer left open is closed before the note, so
    the note does not render as code.
    """
    body = answer_markdown(result)
    note = outcome_line(result, out_name)
    if note:
        fence = unclosed_fence(body) if body else ""
        if fence:
            body = f"{body}{'' if body.endswith(chr(10)) else chr(10)}{fence}"
        body = f"{body}\n\n*{note}*" if body else f"*{note}*"
    elif not body and result.error is None:
        body = "*(empty answer)*"
    data = {"text/markdown": body, "text/plain": plain_text(result, out_name)}
    metadata = {"ollama_magic": result.provenance or provenance(result)}
    return data, metadata


class TerminalView:
    """Plain streaming to stdout with flush: terminal IPython and ``ipython script.ipy``."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._thinking = False
        self._wrote = False
        self._started = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()

    def trace(self, line: bytes, at: float) -> None:
        print(format_trace_line(line, at - self._started), file=sys.stderr, flush=True)

    def thinking(self, text: str) -> None:
        if not self._thinking:
            self._thinking = True
            self.stream.write("\x1b[2mThinking: ")
        self.stream.write(text)
        self.stream.flush()

    def answer(self, text: str) -> None:
        if self._thinking:
            self._thinking = False
            self.stream.write("\x1b[0m\n\n")
        self._wrote = True
        self.stream.write(text)
        self.stream.flush()

    def finish(self, result: OllamaResponse, out_name: str) -> None:
        if self._thinking:
            self.stream.write("\x1b[0m")
        note = outcome_line(result, out_name)
        end = f"\n[{note}]\n" if note else "\n"
        self.stream.write(end if self._wrote or note else "")
        self.stream.flush()
