"""Untrusted one-line text (model names, server texts) made literal for Markdown and terminals.

:func:`~ollama_magic.markdown.safe_markdown` keeps an answer's Markdown working; a model name or
a table cell must show *as typed*: no tag, entity, emphasis, link, code span, table pipe or math
may form from it, and a terminal must not receive escape sequences. Every output that shows a
server's string goes through one of these.
"""

from __future__ import annotations

import re

_INLINE_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "&#36;", "\\": "&#92;"}
_INLINE_SPECIAL = re.compile(r"[&<>$\\|`*_\[\]~#!]")


def markdown_cell_text(value: object) -> str:
    r"""Untrusted text shown literally on one Markdown line or in a table cell.

    No tag, entity, emphasis, link, code span or table pipe can form, and neither can math
    (``$``, ``\(``), which notebook front ends cut out before Markdown sees the text.

    >>> markdown_cell_text("<img src=x>|*a*  $b$ [c](d)")
    '&lt;img src=x&gt;\\|\\*a\\* &#36;b&#36; \\[c\\](d)'
    >>> markdown_cell_text(None)
    ''
    """
    text = " ".join(("" if value is None else str(value)).split())
    text = "".join(c if c.isprintable() else "\ufffd" for c in text)
    return _INLINE_SPECIAL.sub(lambda m: _INLINE_ESCAPES.get(m[0], "\\" + m[0]), text)


def terminal_text(value: object, *, lines: bool = False) -> str:
    """Text for a terminal: no control characters (ANSI escapes, carriage returns) survive;
    with ``lines``, newlines and tabs are kept."""
    text = "" if value is None else str(value)
    keep = "\n\t" if lines else ""
    return "".join(c if c.isprintable() or c in keep else "\ufffd" for c in text)
