"""Make untrusted model output safe to publish as ``text/markdown`` in a notebook.

A model's answer is attacker-controlled (prompt injection), yet it should render as Markdown:
headings, lists, tables, math and code must look as intended. JupyterLab, nbconvert and GitHub
let raw HTML through Markdown, and a notebook trusts the outputs it produced itself, so any tag
that survives is live. ``safe_markdown`` therefore rewrites only what could become markup:

* outside code, ``<`` before a letter, ``/``, ``!`` or ``?`` becomes ``&lt;``, and ``&`` that
  starts a character reference (``&#``, ``&name;``) becomes ``&amp;``. Nothing else can start
  a tag, comment or reference, so ``a < b``, ``?a=1&b=2`` and ``x &= 1`` stay as written;
* link destinations with a ``javascript:``, ``vbscript:``, ``data:`` or ``file:`` scheme get an
  ``unsafe:`` prefix;
* code is left alone: it is shown as text already, and ``&lt;`` there would appear literally.

The hard part is deciding what is code. Text taken for code but rendered as Markdown lets raw
HTML through, so code is trusted only where every renderer must agree, and anything in doubt is
escaped (a stray ``&lt;`` in code is ugly; live HTML is not). The rules below were checked
against markdown-it, nbconvert (mistune) and JupyterLab's own pipeline (marked):

* a fence counts only at the top level (up to three spaces). A fence line inside a list, quote,
  definition or reference definition, an indented one, or a line that one renderer may read as
  a closing fence and another not, stops all fence handling for the rest of the text;
* an inline code span counts only if it sits on one line and nothing before it can pair its
  backticks differently: an unmatched backtick run, a link destination, title or bare URL that
  holds a backtick, a ``|`` (table cells split first), a ``~`` or emphasis mark that marked
  reads its own way;
* math preprocessors (JupyterLab's ``removeMath``, nbconvert's math block parser) cut
  ``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]`` and ``\\begin..\\end`` out of the text
  *before* Markdown sees it. Code that such a region could start or end in, or swallow whole
  and paste back raw or into an HTML attribute, is not trusted.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from heapq import merge
from itertools import accumulate, groupby

__all__ = ["safe_markdown"]

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_TICKS = re.compile(r"`+")
_LINK_TAIL = re.compile(r"\](?=[(:])")  # "](" starts a link tail, "]:" a reference definition
# marked and mistune turn these into links that run to the next space or "<", backticks included.
_BARE_URL = re.compile(r"https?://|ftp://|www\.", re.IGNORECASE)
_URL_END = re.compile(r"[ \t\n\r\f\v<]")
_SPECIAL = re.compile(r'[<&"]')
# Worth a look at all: without these a stretch of text comes back unchanged.
_NEEDS_WORK = re.compile(r"[`<&\"\]]|https?://|ftp://|www\.", re.IGNORECASE)
# Line breaks as str.splitlines sees them (mistune splits with it) and table pipes.
_SPAN_BREAKERS = re.compile("[|\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_SKIP_TO_DEST = re.compile(r"[\s>]*")  # whitespace and quote markers before a destination
_SPACE = re.compile(r"\s*")
_DEST = re.compile(r"[^\x00-\x20\x7f]*")  # a destination ends at ASCII space or control
_DD_START = re.compile(r" {0,3}:(?:[ \t]|$)")
# Anything that can open or close a math region in some renderer (a superset on purpose).
_MATH = re.compile(r"\$|\\[()\[\]]|\\(?:begin|end)\{")
_BLOCK_MATH = re.compile(r"\${2,}|\\\[|\\begin\{([^}\r\n]*)\}")
_TAG_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/!?")
_CHAR_REF = re.compile(r"&(?:#|[A-Za-z][A-Za-z0-9]{0,31};)")  # numeric ones even without ";"
_UNSAFE_SCHEMES = ("javascript:", "vbscript:", "data:", "file:")
_SCHEME_PREFIXES = frozenset(s[:i] for s in _UNSAFE_SCHEMES for i in range(1, len(s) + 1))
_INFO_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", '"': "&quot;", "$": "&#36;", "\\": "&#92;"}
)

_TEXT, _OPEN, _CODE, _CLOSE = range(4)


def _match_end(pattern: re.Pattern[str], text: str, at: int) -> int:
    """Where ``pattern`` (one that matches the empty string too) stops matching from ``at``."""
    found = pattern.match(text, at)
    return found.end() if found is not None else at


def safe_markdown(text: str) -> str:
    """Markdown that renders `text` as the model meant it, with any raw HTML shown as text.

    >>> safe_markdown("Use <b>bold</b> & `List<int>` if a < b.")
    'Use &lt;b>bold&lt;/b> & `List<int>` if a < b.'
    >>> safe_markdown("[click](javascript:alert(1))")
    '[click](unsafe:javascript:alert(1))'
    """
    if not text:
        return text
    return _Document(text).render()


@dataclass(slots=True)
class _Fence:
    """A fenced code block that every renderer agrees on (lines ``open``..``end``)."""

    open: int
    info: int  # where the info string starts in the opening line
    end: int


class _Document:
    """The text split into lines, each classified as text, fence or code, then escaped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.contents = _Lines(text)
        self.starts = self.contents.starts
        self.stretch = _stretches(self.contents)
        # Position and line of every math delimiter, and where each stretch's first and last are.
        # Positions are kept in arrays of machine integers (8 bytes each, not 36) throughout:
        # dense text has one every few characters.
        positions = _positions(_MATH, text)
        self.math = (positions, array("q", (line for _, line in self._walk(positions))))
        self.bounds = _MathBounds()
        for pos, line in zip(*self.math, strict=True):
            self.bounds.add(self.stretch[line], pos)
        self.kinds, fences = _classify(text, self.starts, self.contents)
        cut = self._math_cut(fences)
        if cut is not None:
            self.kinds[cut:] = [_TEXT] * (len(self.kinds) - cut)
            fences = [f for f in fences if f.open < cut]
        self.info = {f.open: f.info for f in fences}
        self.text_out: dict[int, str] = {}
        self._escape_text()

    def render(self) -> str:
        """The text with its changed lines replaced; the text itself when nothing changed.

        Most answers hold no HTML, so returning the input unchanged (not a copy) keeps a long
        answer from being held twice while its final output is built.
        """
        changed = self.text_out
        for index, info in self.info.items():
            if self.kinds[index] != _OPEN:
                continue
            content = self.contents[index]
            escaped = content[info:].translate(_INFO_ESCAPES)
            if escaped != content[info:]:
                changed[index] = content[:info] + escaped + self.contents.eol(index)
        if not changed:
            return self.text
        text, out, pos = self.text, [], 0
        for index in sorted(changed):
            start = self.starts[index]
            out.append(text[pos:start])
            out.append(changed[index])
            pos = self.contents.next_start(index)
        out.append(text[pos:])
        return "".join(out)

    def _walk(self, positions: Iterable[int]) -> Iterator[tuple[int, int]]:
        """(position, line index) for increasing positions, in one pass over the lines."""
        starts, line, last = self.starts, 0, len(self.starts) - 1
        for pos in positions:
            while line < last and starts[line + 1] <= pos:
                line += 1
            yield pos, line

    def _line_end(self, index: int) -> int:
        return self.starts[index] + len(self.contents[index])

    def _math_cut(self, fences: list[_Fence]) -> int | None:
        """The first line of the first fence that a math region could tear apart, if any."""
        if not fences or not self.math:
            return None
        fence_at = {i: n for n, f in enumerate(fences) for i in range(f.open, f.end + 1)}
        text_math: set[int] = set()
        zone_math: list[set[int]] = [set() for _ in fences]
        for pos, line in zip(*self.math, strict=True):
            kind = self.kinds[line]
            if kind == _TEXT:
                text_math.add(self.stretch[line])
            elif kind == _CODE or (
                kind == _OPEN and pos >= self.starts[line] + fences[fence_at[line]].info
            ):
                zone_math[fence_at[line]].add(self.stretch[line])
        shared = Counter(s for stretches in zone_math for s in stretches)
        block_math = self._block_math()
        bounds = self.bounds
        for fence, stretches in zip(fences, zone_math, strict=True):
            start, end = self.starts[fence.open], self._line_end(fence.end)
            torn = any(s in text_math or shared[s] > 1 for s in stretches)
            swallowed = self._has_quote(fence) and bounds.encloses(
                self.stretch[fence.open], self.stretch[fence.end], start, end
            )
            if torn or swallowed or block_math.overlaps(start, end):
                return fence.open
        return None

    def _has_quote(self, fence: _Fence) -> bool:
        """Whether the block holds a raw ``"`` (the info string's are escaped)."""
        return any('"' in self.contents[i] for i in range(fence.open + 1, fence.end + 1))

    def _block_math(self) -> _Intervals:
        """Where a math block parser may cut out text (nbconvert crosses blank lines and fences).

        Every ``$$``, ``\\[`` or ``\\begin{name}`` in text may open a region that ends at the next
        matching closer anywhere in the document, or at its end if there is none.
        """
        text = self.text
        doubles = _positions(re.compile(r"(?<!\\)\$\$"), text)
        single = _positions(re.compile(r"\\\]"), text)
        double = _positions(re.compile(r"\\\\\]"), text)
        envs: dict[str, list[int]] = {}
        for m in re.finditer(r"\\end\{([^}\r\n]*)\}", text):
            envs.setdefault(m.group(1), []).append(m.end())

        def after(ends: Sequence[int], at: int, width: int) -> int:
            k = bisect_left(ends, at)
            return ends[k] + width if k < len(ends) else len(text)

        spans = []
        found = list(_BLOCK_MATH.finditer(text))
        for m, (at, line) in zip(found, self._walk(m.start() for m in found), strict=True):
            if self.kinds[line] != _TEXT:
                continue
            if m.group(1) is not None:
                spans.append((at, after(envs.get(m.group(1), []), at, 0)))
            elif text[at] == "$":  # each "$$" of the run may start one: the last ends latest
                spans.append((at, after(doubles, m.end(), 2)))
            else:  # "\[" for markdown-it plugins, "\\[" (one earlier) for nbconvert
                spans.append((max(at - 1, 0), after(single, at + 2, 2)))
                spans.append((max(at - 1, 0), after(double, at + 2, 3)))
        return _Intervals(spans)

    def _escape_text(self) -> None:
        """Escape the text lines, one scope of lines that may share a paragraph at a time."""
        text_lines = array("q", (i for i, kind in enumerate(self.kinds) if kind == _TEXT))
        busy = {self.stretch[i] for i in text_lines if _NEEDS_WORK.search(self.contents[i])}
        if not busy:
            return
        block_math = self._block_math()
        bounds = self.bounds
        if block_math:
            # nbconvert's block math may join paragraphs across blank lines: pair over all.
            groups: Iterable[Sequence[int]] = [text_lines]
        else:
            # Nothing else crosses a blank line, though JupyterLab's math may swallow a fence.
            # Stretch numbers grow with the line, so a stretch's text lines are adjacent here.
            groups = (
                array("q", lines)
                for number, lines in groupby(text_lines, key=self.stretch.__getitem__)
                if number in busy
            )
        for lines in groups:
            _Scope(self, lines, block_math, bounds).escape()


class _Lines:
    """The lines of a text without their line breaks, each sliced from the text when asked for.

    Only where lines start and end is kept (in arrays of machine integers): a list of the lines
    themselves would hold a long answer a second time while its final output is built.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = array("q")
        self.ends = array("q")
        for match in _LINE.finditer(text):
            start, end = match.span()
            while end > start and text[end - 1] in "\r\n":
                end -= 1
            self.starts.append(start)
            self.ends.append(end)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> str:
        return self.text[self.starts[index] : self.ends[index]]

    def __iter__(self) -> Iterator[str]:
        text = self.text
        return (text[start:end] for start, end in zip(self.starts, self.ends, strict=True))

    def next_start(self, index: int) -> int:
        """Where the line after ``index`` starts (the text's end after the last line)."""
        return self.starts[index + 1] if index + 1 < len(self.starts) else len(self.text)

    def eol(self, index: int) -> str:
        return self.text[self.ends[index] : self.next_start(index)]


def _positions(pattern: re.Pattern[str], text: str) -> array[int]:
    """Where ``pattern`` matches in ``text``."""
    return array("q", (m.start() for m in pattern.finditer(text)))


def _stretches(contents: Iterable[str]) -> array[int]:
    """Number the runs of lines between blank lines.

    Only a line of spaces counts as blank: marked continues a paragraph over a line of tabs.
    """
    ids, current = array("q"), 0
    for content in contents:
        if not content.strip(" "):
            current += 1
        ids.append(current)
    return ids


def _classify(text: str, starts: Sequence[int], contents: _Lines) -> tuple[bytearray, list[_Fence]]:
    """Mark the lines of fenced code blocks that all renderers agree on; the rest is text.

    The opening line must be at the top level (0-3 spaces). Its block may still lie in a list
    item, which ends at a less indented line; so a line less indented than the opening fence,
    or a line that closes the block for some renderers only, makes everything after it text.
    marked lets a fence interrupt a paragraph only if a line break follows it, so an opening
    fence on an unterminated last line is not trusted either, nor one that a reference
    definition or definition list may have swallowed.
    """
    last = len(contents) - 1 if text.endswith(("\n", "\r")) else len(contents) - 2
    swallowers = _Swallowers(text)
    kinds = bytearray([_TEXT]) * len(contents)  # one byte per line
    fences: list[_Fence] = []
    current: tuple[str, int, int, _Fence] | None = None
    for index, line in enumerate(contents):
        if current is None:
            swallowed = swallowers.feed(line, starts[index])
            if "`" not in line and "~" not in line:
                continue
            indent = len(line) - len(line.lstrip(" "))
            found = _fence_at(line, indent) if indent <= 3 else None
            # mistune reads a line with "|" right after a table as one more table row.
            if found and "|" not in line and index <= last and not swallowed:
                char, length, info = found
                fence = _Fence(index, info, index)
                fences.append(fence)
                kinds[index] = _OPEN
                current = (char, length, indent, fence)
            elif _fence_like(line):
                return kinds, fences
            continue
        char, length, indent, fence = current
        if not indent and line[:1] not in (" ", "\t", char):  # the common case: plain code
            kinds[index] = _CODE
            fence.end = index
            continue
        body = line.lstrip(" \t")
        if body:
            lead = line[: len(line) - len(body)]
            column = _columns(lead)
            run = len(body) - len(body.lstrip(char))
            if run >= length and not body[run:].strip(" \t`~"):
                if indent <= column <= 3 and "\t" not in lead and not body[run:].strip(" "):
                    kinds[index] = _CLOSE
                    fence.end = index
                    current = None
                    continue
                if column <= indent + 3:  # closes the block for some renderers only
                    return kinds, fences
            elif column < indent:  # may have left the list item that holds the block
                return kinds, fences
        kinds[index] = _CODE
        fence.end = index
    return kinds, fences


def _fence_at(line: str, i: int) -> tuple[str, int, int] | None:
    """(fence char, fence length, info start) if a code fence opens at ``line[i]``."""
    if i >= len(line) or line[i] not in "`~":
        return None
    char = line[i]
    j = i
    while j < len(line) and line[j] == char:
        j += 1
    if j - i < 3 or (char == "`" and line.find("`", j) != -1):
        return None
    return char, j - i, j


def _fence_like(line: str) -> bool:
    """Whether a fence opens on this line behind indentation or container markers.

    Besides quotes and list items this covers task boxes, definition lists (``: ``, mistune)
    and footnotes (``[^1]: ``), each of which may hold a fenced block.
    """
    return _fence_at(line, _container_end(line, boxes=True)) is not None


def _container_end(line: str, boxes: bool = False) -> int:
    """Where a line's content starts behind indentation and quote or list markers (liberally)."""
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch in " \t>-+*:":
            i += 1
        elif ch == "[" and boxes:
            close = line.find("]", i)
            if close == -1 or not (line.startswith("[^", i) or close - i == 2):
                break
            i = close + 1
        elif "0" <= ch <= "9":
            j = i
            while j < n and j - i < 9 and "0" <= line[j] <= "9":
                j += 1
            if j >= n or line[j] not in ".)":
                break
            i = j + 1
        else:
            break
    return i


def _columns(lead: str) -> int:
    """Width of leading whitespace with tab stops of four, as CommonMark counts it."""
    column = 0
    for ch in lead:
        column += 4 - column % 4 if ch == "\t" else 1
    return column


def _unescaped(text: str, char: str) -> array[int]:
    """Positions of ``char`` not escaped by an odd run of backslashes."""
    found = array("q")
    for m in re.finditer(re.escape(char), text):
        i = back = m.start()
        while back > 0 and text[back - 1] == "\\":
            back -= 1
        if (i - back) % 2 == 0:
            found.append(i)
    return found


class _Swallowers:
    """Block constructs that marked or mistune let run over a following fence line.

    A reference definition's label, destination and title may each continue on later lines,
    and a mistune definition-list item runs on to a blank line (and past it, for indented
    lines). A fence inside either is no fence for that renderer.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.opening = _unescaped(text, "[")
        self.closing = _unescaped(text, "]")
        self.quotes: dict[str, array[int]] | None = None
        self.reference_end = -1
        self.definition = False
        self.after_blank = False

    def feed(self, line: str, start: int) -> bool:
        """Take the next line outside code; whether it may belong to such a construct."""
        if not line.strip(" "):
            self.after_blank = True
            return False
        if _DD_START.match(line):
            self.definition = True
        elif self.after_blank and not line.startswith((" ", "\t")):
            self.definition = False
        self.after_blank = False
        inside = self.definition or start < self.reference_end
        if "[" in line:
            i = _container_end(line)
            if line.startswith("[", i):
                self.reference_end = max(self.reference_end, self._reference_end(start + i))
        return inside

    def _reference_end(self, at: int) -> int:
        """End of a possible reference definition opening at ``text[at]``, else -1."""
        text = self.text
        k = bisect_right(self.closing, at)
        if k == len(self.closing):
            return -1
        close = self.closing[k]
        j = bisect_right(self.opening, at)
        nested = j < len(self.opening) and self.opening[j] < close
        if nested or not text.startswith(":", close + 1):
            return -1
        end = _match_end(_DEST, text, _match_end(_SPACE, text, close + 2))
        title = _match_end(_SPACE, text, end)
        if title < len(text) and text[title] in "\"'(":
            if self.quotes is None:
                self.quotes = {q: _unescaped(text, q) for q in "\"')"}
            closers = self.quotes[")" if text[title] == "(" else text[title]]
            k = bisect_right(closers, title)
            if k < len(closers):
                end = closers[k] + 1
        return end


class _Intervals:
    """Sorted, merged half-open ranges with an overlap test."""

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        self.starts = array("q")
        self.ends = array("q")
        for start, end in sorted(spans):
            if self.ends and start <= self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], end)
            else:
                self.starts.append(start)
                self.ends.append(end)

    def __bool__(self) -> bool:
        return bool(self.starts)

    def overlaps(self, start: int, end: int) -> bool:
        k = bisect_right(self.ends, start)
        return k < len(self.starts) and self.starts[k] < end


class _MathBounds:
    """First and last math delimiter of each stretch: a region can only lie between them."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}

    def __bool__(self) -> bool:
        return bool(self.first)

    def add(self, stretch: int, pos: int) -> None:
        self.first.setdefault(stretch, pos)
        self.last[stretch] = pos

    def encloses(self, stretch: int, end_stretch: int, start: int, end: int) -> bool:
        """Whether a math region may contain all of ``[start, end)``."""
        return (
            stretch == end_stretch
            and stretch in self.first
            and self.first[stretch] < start
            and self.last[stretch] >= end
        )


class _Scope:
    """Text lines that may end up in one paragraph, escaped together.

    Code spans pair backticks across a whole paragraph, so pairing is done over the scope and a
    span is trusted only while the pairing cannot differ between renderers.
    """

    def __init__(
        self, doc: _Document, lines: Sequence[int], block_math: _Intervals, bounds: _MathBounds
    ) -> None:
        self.doc = doc
        self.lines = lines
        self.block_math = block_math
        self.bounds = bounds
        pieces = [doc.text[doc.starts[i] : doc.contents.next_start(i)] for i in lines]
        self.offsets = array("q", accumulate(map(len, pieces), initial=0))
        self.s = "".join(pieces)

    def escape(self) -> None:
        s = self.s
        tails = array("q", (m.start() + 1 for m in _LINK_TAIL.finditer(s)))
        spans = self._code_spans(tails) if "`" in s else []
        links: list[tuple[int, int, str]] = []
        for at in tails:
            dest = _match_end(_SKIP_TO_DEST, s, at + 1)
            if _unsafe_scheme(s, dest):
                links.append((dest, dest, "unsafe:"))
        escapes = _Edits()  # made in order of position, as are the links
        pos = 0
        for start, end in spans:
            self._escape_range(pos, start, escapes)
            pos = end
        self._escape_range(pos, len(s), escapes)
        self._apply(merge(links, escapes) if links else escapes)

    def _global(self, pos: int) -> tuple[int, int]:
        """(line index, position in the whole text) of a position in the scope."""
        k = bisect_right(self.offsets, pos) - 1
        line = self.lines[k]
        return line, self.doc.starts[line] + pos - self.offsets[k]

    def _code_spans(self, tails: Sequence[int]) -> list[tuple[int, int]]:
        """Trusted code spans in CommonMark's left-to-right pairing, up to the first doubt.

        Link tails and bare URLs that start before a backtick may swallow it in some renderer,
        so one that holds a backtick ends the trust.
        """
        s = self.s
        runs = [(m.start(), m.end()) for m in _TICKS.finditer(s)]
        run_starts = [start for start, _ in runs]
        by_length: dict[int, list[int]] = {}
        for n, (start, end) in enumerate(runs):
            by_length.setdefault(end - start, []).append(n)
        last = run_starts[-1]
        hazards = [(at, True) for at in tails if at < last]
        hazards += [(m.start(), False) for m in _BARE_URL.finditer(s, 0, last)]
        hazards.sort()
        scanner = _TailScanner(s, run_starts)
        self.brackets = _unescaped(s, "[") if "[" in s else []
        spans: list[tuple[int, int]] = []
        pos = r = t = 0
        while r < len(runs):
            if t < len(hazards) and hazards[t][0] < runs[r][0]:
                at, is_tail = hazards[t]
                t += 1
                if at >= pos and (scanner.tail_hides(at) if is_tail else scanner.url_hides(at)):
                    return spans
                continue
            start, end = runs[r]
            n = r
            r += 1
            if start < pos:
                continue
            back = start
            while back > pos and s[back - 1] == "\\":
                back -= 1
            opener = start + (start - back) % 2  # a backslash escapes the first backtick
            if opener == end:
                continue
            if s[opener - 1 : opener] == "~":
                return spans  # marked reads "~`" as one run of literal text
            same = by_length.get(end - opener, [])
            k = bisect_right(same, n)
            if k == len(same):
                continue  # no closer: the backticks are literal text
            close_start, close_end = runs[same[k]]
            if not self._trusted(pos, opener, end, close_start, close_end):
                return spans
            spans.append((opener, close_end))
            pos = close_end
        return spans

    def _trusted(self, text: int, opener: int, content: int, close: int, end: int) -> bool:
        """Whether every renderer, math preprocessing included, reads this exact code span.

        ``s[text:opener]`` is the text before it, back to the previous span.
        """
        inner = self.s[content:close]
        # Line breaks, table pipes, mistune's "~~" and math delimiters all let a renderer end
        # or start something else inside the span.
        if _SPAN_BREAKERS.search(inner) or "~~" in inner or _MATH.search(inner):
            return False
        # marked hides code from emphasis by pairing single backticks, which misses longer
        # delimiters and backticks inside: a "*", "_" or "~" there may close an emphasis.
        if (content - opener > 1 or "`" in inner) and any(c in inner for c in "*_~"):
            return False
        # marked's link labels pair backticks naively, so a "[" before may close inside.
        k = bisect_left(self.brackets, text)
        if "]" in inner and k < len(self.brackets) and self.brackets[k] < opener:
            return False
        if not (self.block_math or ('"' in inner and self.bounds)):
            return True
        line, start = self._global(opener)
        stop = start + end - opener
        stretch = self.doc.stretch[line]
        return not self.block_math.overlaps(start, stop) and not (
            '"' in inner and self.bounds.encloses(stretch, stretch, start, stop)
        )

    def _escape_range(self, start: int, end: int, edits: _Edits) -> None:
        """Edits that turn ``s[start:end]`` (not code) into text that cannot become markup."""
        s = self.s
        for m in _SPECIAL.finditer(s, start, end):
            i = m.start()
            ch = s[i]
            after = s[i + 1 : i + 2]
            if ch == "<":
                if after not in _TAG_START:
                    continue
                code = _LT
            elif ch == "&":
                if not _CHAR_REF.match(s, i):
                    continue
                code = _AMP
            else:
                if not self.bounds:
                    continue
                line, at = self._global(i)
                stretch = self.doc.stretch[line]
                if not self.bounds.encloses(stretch, stretch, at, at + 1):
                    continue
                code = _QUOT  # JupyterLab pastes math into attributes unescaped
            back = i
            while back > start and s[back - 1] == "\\":
                back -= 1
            # "\<" already meant a literal "<": the entity says the same without the backslash.
            first = i - 1 if (i - back) % 2 else i
            edits.starts.append(first)
            edits.ends.append(i + 1)
            edits.codes.append(code)

    def _apply(self, edits: Iterable[tuple[int, int, str]]) -> None:
        """Rewrite the lines that ``edits`` (in order of position) touch into ``text_out``."""
        s, out = self.s, self.doc.text_out
        pending = iter(edits)
        edit = next(pending, None)
        for n, line in enumerate(self.lines):
            lo, hi = self.offsets[n], self.offsets[n + 1]
            if edit is None or edit[0] >= hi:
                continue  # unchanged: rendered from the original text
            parts = []
            pos = lo
            while edit is not None and edit[0] < hi:
                start, end, replacement = edit
                parts.append(s[pos:start])
                parts.append(replacement)
                pos = end
                edit = next(pending, None)
            parts.append(s[pos:hi])
            out[line] = "".join(parts)


_REPLACEMENTS = ("&lt;", "&amp;", "&quot;")
_LT, _AMP, _QUOT = range(3)


class _Edits:
    """Replacements of ``s[start:end]`` (codes into ``_REPLACEMENTS``) in order, 17 bytes each.

    Dense text (code, quotes) has one every few characters; as tuples they would cost about
    ten times the text they rewrite.
    """

    def __init__(self) -> None:
        self.starts = array("q")
        self.ends = array("q")
        self.codes = bytearray()

    def __iter__(self) -> Iterator[tuple[int, int, str]]:
        return zip(self.starts, self.ends, map(_REPLACEMENTS.__getitem__, self.codes), strict=True)


class _TailScanner:
    """Whether a link tail or bare URL may hide a backtick from code-span pairing.

    A renderer that sees a link consumes backticks in its destination and title; one that does
    not sees code span delimiters. The scan covers at least as much as any renderer's tail.
    """

    def __init__(self, s: str, run_starts: list[int]) -> None:
        self.s = s
        self.run_starts = run_starts
        self.quotes: dict[str, array[int]] | None = None
        self.url_stops: array[int] | None = None
        self.word = (0, 0)  # [lo, hi) holds no whitespace, s[hi] is whitespace
        self.ends: dict[int, int] = {}

    def _backtick_in(self, start: int, end: int) -> bool:
        k = bisect_left(self.run_starts, start)
        return k < len(self.run_starts) and self.run_starts[k] < end

    def url_hides(self, at: int) -> bool:
        if self.url_stops is None:
            self.url_stops = _positions(_URL_END, self.s)
        k = bisect_left(self.url_stops, at)
        return self._backtick_in(at, self.url_stops[k] if k < len(self.url_stops) else len(self.s))

    def tail_hides(self, at: int) -> bool:
        s = self.s
        dest = _match_end(_SKIP_TO_DEST, s, at + 1)
        lo, hi = self.word
        if not lo <= dest < hi:
            hi = _match_end(_DEST, s, dest)
            self.word = (dest, hi)
        end = self.ends.get(hi)
        if end is None:
            end = hi
            title = _match_end(_SKIP_TO_DEST, s, hi)
            if title < len(s) and s[title] in "\"'(":
                if self.quotes is None:
                    self.quotes = {q: _unescaped(s, q) for q in "\"')"}
                closers = self.quotes[")" if s[title] == "(" else s[title]]
                k = bisect_right(closers, title)
                if k < len(closers):
                    end = closers[k] + 1
            self.ends[hi] = end
        return self._backtick_in(at, end)


def _unsafe_scheme(s: str, i: int) -> bool:
    """Whether the destination at ``s[i]`` starts with a script-capable scheme.

    Backslashes, control characters and whitespace are skipped, as browsers and Markdown
    unescaping would drop them; a leading ``<`` (an angle-bracket destination) is skipped too.
    An ``&`` on the way counts as unsafe: mistune decodes character references twice.
    """
    if i < len(s) and s[i] == "<":
        i += 1
    seen = ""
    while i < len(s) and len(seen) < 11:
        ch = s[i]
        i += 1
        if ch == "\\" or ch <= " " or ch == "\x7f" or ch.isspace():
            continue
        if ch == "&":
            return True
        seen += ch.lower()
        if seen not in _SCHEME_PREFIXES:
            return False
        if seen in _UNSAFE_SCHEMES:
            return True
    return False
