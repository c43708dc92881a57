"""Cutting a streaming Markdown answer into pieces that each render alone as in the whole.

The live view shows an answer as a run of display outputs: completed pieces are sent once and
never again, only the piece still being written is replaced as text arrives. A piece ends at a
block boundary (a blank line outside code, before a line that is not indented), so a paragraph,
list or table renders as it will in the final answer. A long code block is cut at line ends
(the fence closed in the piece, reopened in the next one), and a long list before an item, so
that the text re-sent with each update stays bounded.
"""

from __future__ import annotations

import re

#: The first piece ends at the first block boundary past this many characters; each later one
#: may be larger by GROWTH, up to LARGEST. Small pieces keep updates small; growing ones keep a
#: long answer down to a few dozen outputs (each costs a message to create and one to clear).
FIRST_PIECE = 600
GROWTH = 1.25
LARGEST_PIECE = 6000
#: A code block is cut at a line end after this many characters of it.
CODE_PIECE = 1200

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_ITEM = re.compile(r" {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")


def _closes(line: str, marker: str, length: int) -> bool:
    stripped = line.lstrip(" ")
    return (
        len(line) - len(stripped) <= 3
        and stripped.startswith(marker * length)
        and not stripped.strip().strip(marker)
    )


class Pieces:
    """Streaming Markdown in, completed pieces out; ``tail`` is the piece being written."""

    def __init__(self, first: int = FIRST_PIECE, largest: int = LARGEST_PIECE) -> None:
        self.tail = ""
        self._scanned = 0  # complete lines of the tail up to here are classified
        self._boundary = 0  # just after the last blank line outside code (0: none)
        self._item = 0  # start of the last top-level list item line (0: none)
        self._code_from = 0  # where the open code block's content starts in the tail
        self._fence: tuple[str, int, str] | None = None  # marker, length, opening line
        self._soft = first
        self._largest = largest

    @property
    def in_code(self) -> bool:
        return self._fence is not None

    def add(self, text: str) -> list[str]:
        """Append ``text``; return the pieces it completed, in order."""
        self.tail += text
        done: list[str] = []
        while True:
            self._scan()
            piece = self._cut()
            if piece is None:
                return done
            done.append(piece)

    def closed_tail(self) -> str:
        """The tail with its open code block closed, to be shown as code while it streams."""
        return self.tail + self.closing()

    def closing(self) -> str:
        """What closes the open code block of the tail ('' if none)."""
        if self._fence is None:
            return ""
        marker, length, _ = self._fence
        newline = "" if self.tail.endswith("\n") else "\n"
        return f"{newline}{marker * length}\n"

    def _scan(self) -> None:
        tail = self.tail
        while (end := tail.find("\n", self._scanned)) >= 0:
            start = self._scanned
            line = tail[start:end].rstrip("\r")
            self._scanned = end + 1
            fence = self._fence
            if fence is not None:
                if _closes(line, fence[0], fence[1]):
                    self._fence = None
                    self._boundary = self._scanned
                continue
            opening = _FENCE.fullmatch(line)
            if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
                mark = opening.group(1)
                self._fence = (mark[0], len(mark), line)
                self._code_from = self._scanned
            elif not line.strip():
                self._boundary = self._scanned
            elif _ITEM.match(line):
                self._item = start

    def _cut(self) -> str | None:
        tail, at = self.tail, self._boundary
        if at >= self._soft and at < len(tail) and tail[at] not in " \t\r\n":
            return self._take(at, "", "")
        if self._fence is not None and self._scanned - self._code_from >= CODE_PIECE:
            marker, length, opening = self._fence
            self._code_from = len(opening) + 1
            return self._take(self._scanned, marker * length + "\n", opening + "\n")
        if self._fence is None and self._item >= 2 * self._soft:
            return self._take(self._item, "", "")
        return None

    def _take(self, at: int, close: str, reopen: str) -> str:
        piece = self.tail[:at] + close
        self.tail = reopen + self.tail[at:]
        shift = at - len(reopen)
        self._scanned -= shift
        self._boundary = self._item = 0
        if self._fence is not None and not close:
            self._code_from = max(self._code_from - shift, 0)
        self._soft = min(self._largest, int(self._soft * GROWTH))
        return piece


def unclosed_fence(text: str) -> str:
    """What closes a code block left open at the end of ``text`` ('' if none).

    >>> unclosed_fence("Here:\\n```python\\nprint(1)\\n")
    '```'
    >>> unclosed_fence("```\\ncode\\n```\\n")
    ''
    """
    fence: tuple[str, int] | None = None
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if fence is not None:
            if _closes(line, *fence):
                fence = None
            continue
        opening = _FENCE.fullmatch(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            fence = (opening.group(1)[0], len(opening.group(1)))
    return fence[0] * fence[1] if fence else ""
