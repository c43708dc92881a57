"""Random hostile Markdown through ``safe_markdown`` and a real renderer: nothing comes alive.

A seeded, bounded search: thousands of strings stitched from the pieces attacks are made of
(tags, handlers, script URLs, entities, fences, code spans, link forms, line breaks), each
escaped by :func:`~ollama_magic.markdown.safe_markdown` and rendered by markdown-it with raw
HTML on and its own link check off (the most permissive renderer a front end might use). The
HTML may hold only the tags Markdown itself makes, no ``on*`` attribute and no script URL.
A failure prints the seed and the input, so it can be replayed.
"""

from __future__ import annotations

import html
import random
import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from ollama_magic.markdown import safe_markdown

SEEDS = range(8)
CASES_PER_SEED = 400
MAX_PIECES = 14

PIECES = [
    "<", ">", "</", "/>", "<img", "<script>", "</script>", "<svg/onload=alert(1)>", "<a href=",
    "<iframe src=", "<style>", "<math>", "<details open ontoggle=alert(1)>", "<!--", "-->",
    "<![CDATA[", "]]>", "<?php", "<!DOCTYPE html>", " src=x", " onerror=alert(1)",
    " onmouseover='alert(1)'", ' onclick="alert(1)"', "=", '"', "'", " ", "\t", "\n", "\n\n",
    "\r\n", "\\", "`", "``", "```", "~~~", "    ", "> ", "- ", "1. ", "|", "---", "*", "_", "$",
    "[x](", "](", ")", "(", "[", "]", "![x](", "[ref]: ", "\n[ref]\n", "<javascript:alert(1)>",
    "javascript:", "JaVaScRiPt:", "java\tscript:", "&#106;avascript:", "&#x6A;avascript:",
    "javascript&colon;", "vbscript:", "data:text/html,", "alert(1)", "&", "&lt;", "&amp;",
    "&#60;", "&#x3C;", "#", ";", "%3C", "\x00", "\u2028", "\ufeff", "<http://a>", "a", "b",
    "text", "<b>", "</b>", "<em>", "<div>", "</div>", "<p>", "<table>", "<td>", "<br>",
]  # fmt: skip

#: Tags Markdown (CommonMark and tables) makes by itself.
MARKDOWN_TAGS = {
    "p", "em", "strong", "code", "pre", "a", "img", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "ul", "ol", "li", "hr", "br", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_SCRIPT_URL = re.compile(r"^(?:javascript|vbscript|data:text/html)", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f\u2028\u2029\ufeff]+")


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in MARKDOWN_TAGS:
            self.problems.append(f"live <{tag}>")
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"handler {name}= on <{tag}>")
            url = _INVISIBLE.sub("", html.unescape(value or ""))
            if name in ("href", "src") and _SCRIPT_URL.match(url):
                self.problems.append(f"script URL {value!r} on <{tag}>")

    handle_startendtag = handle_starttag


def renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.validateLink = lambda url: True  # type: ignore[method-assign]  # let every URL through
    return md


def problems_in(markdown: str, md: MarkdownIt) -> list[str]:
    parser = _Elements()
    parser.feed(md.render(markdown))
    parser.close()
    return parser.problems


def test_the_checker_sees_live_markup():
    """Without escaping, the same renderer shows what the test looks for."""
    md = renderer()
    assert problems_in("<img src=x onerror=alert(1)>", md)
    assert problems_in("[x](javascript:alert(1))", md)
    assert problems_in("<svg onload=alert(1)>", md)
    assert problems_in("[x](&#106;avascript:alert(1))", md)
    assert not problems_in("**bold** and `code` and [a](https://example.org)", md)


@pytest.mark.parametrize("seed", SEEDS)
def test_no_hostile_fragment_comes_alive(seed):
    rng = random.Random(seed)
    md = renderer()
    live_unescaped = 0
    for case in range(CASES_PER_SEED):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, MAX_PIECES)))
        escaped = safe_markdown(text)
        found = problems_in(escaped, md)
        assert not found, f"seed {seed} case {case}: {found} from {text!r} → {escaped!r}"
        live_unescaped += bool(problems_in(text, md))
    # The inputs are hostile: rendered as they are, a good share of them would be live.
    assert live_unescaped >= CASES_PER_SEED // 5, live_unescaped
