"""Server-sent events (``text/event-stream``) as the OpenAI-compatible servers frame them.

The WHATWG framing rules, byte-exact: CRLF, LF or a lone CR end a line (a CRLF split across
two chunks counts once), blank lines end events, ``:`` lines are comments. No IPython, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

__all__ = ["sse_events", "sse_lines"]

_EOL = re.compile(rb"\r\n|\r|\n")


def sse_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of an event stream, blank ones included, ended by CRLF, LF or a lone CR.

    Unlike :func:`ollama_magic.client.split_lines` this keeps blank lines: they end events.
    A CRLF split across two chunks counts once.

    >>> list(sse_lines([b"data: a\\r", b"\\ndata: b\\r\\r", b"\\n: c"]))
    [b'data: a', b'data: b', b'', b': c']
    """
    pending: list[bytes] = []
    skip_lf = False
    for chunk in chunks:
        if not chunk:
            continue
        if skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        skip_lf = False
        start = 0
        for match in _EOL.finditer(chunk):
            piece = chunk[start : match.start()]
            if pending:
                pending.append(piece)
                piece = b"".join(pending)
                pending.clear()
            yield piece
            start = match.end()
        if chunk.endswith(b"\r"):
            skip_lf = True  # the next chunk may start with the \n of this \r\n
        elif start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield b"".join(pending)


def sse_events(lines: Iterable[bytes]) -> Iterator[tuple[str, str, bool]]:
    """``(event type, data, complete)`` for each event of a ``text/event-stream`` body.

    Follows the WHATWG rules: ``data:`` lines of one event are joined with ``\\n``, lines
    starting with ``:`` are comments (keep-alives), ``event:`` names the event (``message``
    by default), one space after the colon is dropped, a blank line dispatches. An
    ``error:`` line, which llama.cpp's server writes instead of ``data:``, becomes an
    ``error`` event. Data still pending when the body ends is yielded with
    ``complete=False`` (the spec drops it; the caller decides whether it is a truncation).

    >>> list(sse_events([b": ping", b"data: {", b"data: }", b"", b"event: x", b"data:y", b""]))
    [('message', '{\\n}', True), ('x', 'y', True)]
    """
    data: list[str] = []
    event = ""
    first = True
    for raw in lines:
        if not raw:
            if data:
                yield event or "message", "\n".join(data), True
            data, event = [], ""
            continue
        line = raw.decode("utf-8", "replace")
        if first:
            line = line.removeprefix("\ufeff")
            first = False
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "error":
            yield "error", value, True
    if data:
        yield event or "message", "\n".join(data), False
