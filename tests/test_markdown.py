"""safe_markdown: raw HTML and script links never become live, code and prose stay as written.

The last part renders the output with real Markdown renderers, raw HTML enabled (the worst
case), and checks the HTML they produce: that is what a notebook would show.
"""

from __future__ import annotations

import random
import time
from html.parser import HTMLParser
from typing import Any

import pytest

from ollama_magic.markdown import safe_markdown

# --- raw HTML outside code is shown as text ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script>alert(1)&lt;/script>"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)>"),
        ("<!-- c -->", "&lt;!-- c -->"),
        ("<?php echo 1; ?>", "&lt;?php echo 1; ?>"),
        ("<!DOCTYPE html>", "&lt;!DOCTYPE html>"),
        ("a <b>bold</b> word", "a &lt;b>bold&lt;/b> word"),
        ("<https://example.com>", "&lt;https://example.com>"),
        ("<javascript:alert(1)>", "&lt;javascript:alert(1)>"),
        # Character references are shown as typed, so none can smuggle a character in.
        ("&lt;", "&amp;lt;"),
        ("&copy; &#169; &#xA9", "&amp;copy; &amp;#169; &amp;#xA9"),
        ("java&#115;cript:", "java&amp;#115;cript:"),
        ("&#x3C;script>", "&amp;#x3C;script>"),
        # A backslash-escaped "<" or "&" already meant the literal character.
        ("\\<b>", "&lt;b>"),
        ("\\&copy;", "&amp;copy;"),
        ("\\\\<b>", "\\\\&lt;b>"),
    ],
)
def test_raw_html_is_escaped(text: str, expected: str) -> None:
    assert safe_markdown(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Plain prose, nothing special.",
        "# Heading\n\nSome *emphasis*, **strong** and ~~struck~~ text.\n",
        "- one\n- two\n  - nested\n\n1. first\n2. second\n",
        "> quoted\n> > twice\n",
        "| a | b |\n|---|:-:|\n| 1 | 2 |\n",
        "Math: $0 < x < 1$ and $$\\sum_{i=1}^n i = \\frac{n(n+1)}{2}$$\n",
        "$$\\begin{aligned} a &= b \\\\ c &= d \\end{aligned}$$",
        "if a < b && b > c: print('ok')",
        "Tom & Jerry, 5 > 3, x<=y, <3, a < b",
        "Line one\r\nLine two\rLine three\n",
        "Ünïcödé — “quotes” 日本語",
        '[a link](https://example.com/path?q=1&r=2 "title") and ![img](pic.png)',
        "[ref]\n\n[ref]: https://example.com",
        "---\n\n***\n",
    ],
)
def test_ordinary_markdown_is_unchanged(text: str) -> None:
    assert safe_markdown(text) == text


# --- code is left untouched ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "```\n<div>\n```",
        '```html\n<div class="a">&amp;</div>\n```\n',
        "~~~\n<div>\n~~~\n",
        "````\n```\n<div>\n```\n````\n",
        "~~~ `info` may hold backticks\n<div>\n~~~\n",
        "   ```\n   <div>\n   ```\n",
        "```\n<div>\nnever closed, so code to the end\n<script>x</script>\n",
        "Text first\n```\n<div>\n```\nand after.\n",
        "1. Step:\n   ```bash\n   echo <x> && cat a < b\n   ```\n2. Next\n",
        "`List<int>`",
        "Use `a<b>` and `&amp;` inline.",
        "``a`<b>`` has a backtick inside",
        "``` `<b>` ``` runs of three",
        "```bash\nexport PATH=$HOME/bin:$PATH\n```\n",
    ],
)
def test_code_is_untouched(text: str) -> None:
    assert safe_markdown(text) == text


def test_text_around_code_is_still_escaped() -> None:
    text = "<b>\n```\n<div>\n```\n<i> `<u>` <s>"
    assert safe_markdown(text) == "&lt;b>\n```\n<div>\n```\n&lt;i> `<u>` &lt;s>"


def test_escaped_backticks_do_not_open_code() -> None:
    assert safe_markdown("\\`<b>\\`") == "\\`&lt;b>\\`"
    assert safe_markdown("\\\\`<b>`") == "\\\\`<b>`"  # an escaped backslash, then real code


def test_unmatched_backticks_are_text() -> None:
    assert safe_markdown("`` <b> `") == "`` &lt;b> `"


def test_indented_fence_is_not_trusted() -> None:
    assert safe_markdown("    ```\n    <div>\n    ```") == "    ```\n    &lt;div>\n    ```"


def test_backtick_fence_info_with_backtick_is_not_a_fence() -> None:
    assert safe_markdown("```a`b\n<div>\n```") == "```a`b\n&lt;div>\n```"


def test_fence_info_string_is_escaped() -> None:
    assert safe_markdown('```x"<b>$\n1\n```') == "```x&quot;&lt;b>&#36;\n1\n```"


# --- doubtful code is escaped instead ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        # The block may sit in a list item that ends at a less indented line.
        ("- item\n  ```\n  x\n<script>alert(1)</script>\n  ```", "&lt;script>"),
        # A fence behind a list marker, quote or definition is not recognised at all.
        ("- ```\n  a\n  ```\n  <script>alert(1)</script>", "&lt;script>"),
        ("> ```\n> <div>\n> ```", "&lt;div>"),
        ("term\n: ```\nx\n```\n<img src=x onerror=alert(1)>\n```", "&lt;img"),
        # A reference definition may take the fence line as its destination (marked, mistune).
        ("[1]:\n```\n<img src=x onerror=alert(1)>\n```", "&lt;img"),
        # mistune continues a table with any line that holds "|".
        ("a|b\n-|-\n```|\n<img src=x onerror=alert(1)>\n```", "&lt;img"),
        # marked lets a fence interrupt a paragraph only when a line break follows.
        ("x\n```[](javascript:alert(1))", "unsafe:javascript:"),
        # Some renderers close on "```~" or on a tab after the fence, some do not.
        ("```\na\n```~\n<img src=x onerror=alert(1)>\n```", "&lt;img"),
        # A code span across lines may pair differently once paragraphs differ.
        ("`a\n\t\n`<i>`", "&lt;i>"),
        ("`a\n<i> `", "&lt;i>"),
        # A link destination, title or bare URL may swallow a backtick.
        ("[x](/a`b) <img src=x onerror=alert(1)> `c`", "&lt;img"),
        ("https://x`<i>`", "&lt;i>"),
        ("www.x.com`<i>`", "&lt;i>"),
        # marked: "~`" is literal text; a naive label or emphasis may close inside the span.
        ("~`<i>`", "&lt;i>"),
        ("[``]()<x>``", "&lt;x>"),
        ("*```*`<g>```", "&lt;g>"),
        # mistune: "~~" ends strikethrough inside code; cells split on "|" before code.
        ("~~a `~~<i>`", "&lt;i>"),
        ("| `a | <i> b` |\n|---|---|", "&lt;i>"),
    ],
)
def test_doubtful_code_is_escaped(text: str, escaped: str) -> None:
    assert escaped in safe_markdown(text)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        # JupyterLab cuts math out before Markdown: a region ending inside code tears it open.
        ("a $\n```\nb $\n```\n<img src=x onerror=alert(1)>\n```", "&lt;img"),
        ("$`$ `<img src=x onerror=alert(1)>` `", "&lt;img"),
        ("\\\\( `\\\\) <img src=x onerror=alert(1)>`", "&lt;img"),
        # nbconvert's block math runs from "$$" to the next "$$", across fences and blank lines.
        ("$$\n```\n$$\n<img src=x onerror=alert(1)>\n```", "&lt;img"),
        # JupyterLab pastes math back unescaped, into attributes too: no raw quote in math.
        ('![$a" onerror=alert(1) x="$](x)', "$a&quot; onerror=alert(1) x=&quot;$"),
    ],
)
def test_math_cannot_tear_code_open(text: str, escaped: str) -> None:
    assert escaped in safe_markdown(text)


# --- links ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[x](javascript:alert(1))", "[x](unsafe:javascript:alert(1))"),
        ("[x](JaVaScRiPt:alert(1))", "[x](unsafe:JaVaScRiPt:alert(1))"),
        ("[x]( javascript\\:alert(1))", "[x]( unsafe:javascript\\:alert(1))"),
        ("[x](\njavascript:alert(1))", "[x](\nunsafe:javascript:alert(1))"),
        ("[x](java\\script:alert(1))", "[x](unsafe:java\\script:alert(1))"),
        ("[x](vbscript:msgbox)", "[x](unsafe:vbscript:msgbox)"),
        ("[x](file:///etc/passwd)", "[x](unsafe:file:///etc/passwd)"),
        ("![i](data:text/html,<script>)", "![i](unsafe:data:text/html,&lt;script>)"),
        ("[x]: javascript:alert(1)", "[x]: unsafe:javascript:alert(1)"),
        ("  [x]:javascript:alert(1)", "  [x]:unsafe:javascript:alert(1)"),
        ("> [x](\n> javascript:alert(1))", "> [x](\n> unsafe:javascript:alert(1))"),
        ("[x](<javascript:alert(1)>)", "[x](unsafe:&lt;javascript:alert(1)>)"),
        # Character references might decode to a scheme (mistune decodes them twice).
        ("[x](&#106;avascript:alert(1))", "[x](unsafe:&amp;#106;avascript:alert(1))"),
        ("[r]:javascript&#58;x", "[r]:unsafe:javascript&amp;#58;x"),
        # A reference definition is block syntax: a code span does not protect it.
        ("[`]: javascript:alert(1) '`'", "[`]: unsafe:javascript:alert(1) '`'"),
    ],
)
def test_script_links_are_neutralised(text: str, expected: str) -> None:
    assert safe_markdown(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "[x](https://example.com)",
        "[x](http://example.com/a_(b))",
        "[x](/relative/path.md)",
        "[x](docs/intro.md#setup 'Setup')",
        "[x](mailto:me@example.com)",
        "[x](#anchor)",
        "[x]: https://example.com",
        "![img](https://example.com/a.png)",
        "[javascript: the language](https://developer.mozilla.org/)",
    ],
)
def test_safe_links_are_unchanged(text: str) -> None:
    assert safe_markdown(text) == text


# --- size ----------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    start = time.process_time()
    safe_markdown(text)
    return time.process_time() - start


def test_one_megabyte_of_answer_is_fast() -> None:
    paragraph = (
        "Here is **some** text with `code<T>`, a [link](https://example.com), $x^2$ and <b>.\n"
        "```python\nif a < b:\n    print('<div>')\n```\n\n"
    )
    text = paragraph * (2**20 // len(paragraph))
    assert _seconds(text) < 3


def test_hostile_megabyte_is_fast() -> None:
    rng = random.Random(0)
    mixed = "".join(rng.choices("`$[]()<>&\"'\n *_~|\\:-#!x ", k=2**20))
    assert _seconds(mixed) < 5
    assert _seconds("`" * 2**20) < 5


@pytest.mark.parametrize(
    "text",
    [
        "` " * 2**17,
        "`a\n" * 2**16,
        "](" * 2**17,
        "](" * 2**16 + " " * 2**17 + "'",
        "[a]:\n" * 2**16,
        "\n" * 2**18,
        "$" * 2**18,
        "$$\n```\n" * 2**15,
        "www." * 2**16,
        "<a" * 2**17,
        "x\n: y\n" * 2**15,
        "~`" * 2**17,
    ],
    ids=lambda text: repr(text[:8]),
)
def test_worst_cases_stay_linear(text: str) -> None:
    """A quarter megabyte of each shape that used to cost a search per character or line."""
    assert _seconds(text) < 3


# --- rendered by real Markdown renderers ---------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "Inline <img src=x onerror=alert(1)> tag",
    "<!-- c --><svg onload=alert(1)>",
    "<a href='javascript:alert(1)'>x</a>",
    "<javascript:alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "\\<script>alert(1)</script>",
    "<div\nonclick=alert(1)>x</div>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript\\:alert(1))",
    "[x](java&#115;cript:alert(1))",
    "[x]: javascript:alert(1)\n\n[x]",
    "[`]: javascript:alert(1) '`'\n\n[x][`]",
    "![i](data:text/html,<script>alert(1)</script>)",
    "[x](<javascript:alert(1)>)",
    "- item\n  ```\n  x\n<script>alert(1)</script>\n  ```",
    "- ```\n  a\n  ```\n  <script>alert(1)</script>",
    "`a\\` <img src=x onerror=alert(1)> `",
    "[x](/a`b) <img src=x onerror=alert(1)> `c`",
    "[1]:\n```\n<img src=x onerror=alert(1)>\n```",
    "term\n: ```\nx\n```\n<img src=x onerror=alert(1)>\n```",
    "$$\n```\n$$\n<img src=x onerror=alert(1)>\n```",
    "a $\n```\nb $\n```\n<img src=x onerror=alert(1)>\n```",
    "`a\n\t\n`<img src=x onerror=alert(1)>`",
    "~~a `~~<img src=x onerror=alert(1)>`",
    "https://x`<img src=x onerror=alert(1)>`",
    "```<img src=x onerror=alert(1)>\f```\n: ",
    "[r]:javascript&#58;x\n\n[r]",
    "```\n<div>\n```x\n<img src=x onerror=alert(1)>\n```",
]

_MARKDOWN_TAGS = frozenset(
    {
        *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "del", "s"),
        *("code", "pre", "blockquote", "ul", "ol", "li", "a", "img", "input", "dl", "dt", "dd"),
        *("table", "thead", "tbody", "tr", "th", "td"),
    }
)
_UNSAFE_URL = ("javascript:", "vbscript:", "data:", "file:")


class _LiveMarkup(HTMLParser):
    """Everything in rendered HTML that Markdown itself would not produce."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _MARKDOWN_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")
            url = "".join((value or "").split()).lower()
            if name in ("href", "src") and url.startswith(_UNSAFE_URL):
                self.found.append(f"{name}={value!r}")

    handle_startendtag = handle_starttag

    def handle_comment(self, data: str) -> None:
        self.found.append("<!--")


def _live_markup(html: str) -> list[str]:
    parser = _LiveMarkup()
    parser.feed(html)
    parser.close()
    return parser.found


@pytest.fixture(scope="module")
def markdown_it() -> Any:
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # judge our output, not markdown-it's own link filter
    return md


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_it_renders_nothing_live(markdown_it: Any, text: str) -> None:
    html = markdown_it.render(safe_markdown(text))
    assert "<script" not in html
    assert 'href="javascript:' not in html
    assert _live_markup(html) == []


@pytest.mark.parametrize("text", [t for t in HOSTILE if "![" not in t])
def test_markdown_it_renders_no_img_tag(markdown_it: Any, text: str) -> None:
    assert "<img" not in markdown_it.render(safe_markdown(text))


def test_hostile_inputs_are_live_without_escaping(markdown_it: Any) -> None:
    """The corpus is real: rendered raw, most of it does produce live markup."""
    live = [text for text in HOSTILE if _live_markup(markdown_it.render(text))]
    assert len(live) > len(HOSTILE) // 2


def test_markdown_it_shows_code_as_written(markdown_it: Any) -> None:
    html = markdown_it.render(safe_markdown("```\n<div>\n```\n\n`List<int>` & <b>"))
    assert "<pre><code>&lt;div&gt;\n</code></pre>" in html
    assert "<code>List&lt;int&gt;</code>" in html
    assert "&amp;lt;" not in html
    assert "&lt;b&gt;" in html


def test_markdown_it_keeps_markdown(markdown_it: Any) -> None:
    text = "# Title\n\n- *a*\n- **b**\n\n> quote\n\n| x | y |\n|---|---|\n| 1 | 2 |\n"
    assert markdown_it.render(safe_markdown(text)) == markdown_it.render(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_nbconvert_renders_nothing_live(text: str) -> None:
    """nbconvert's HTML export (mistune with math, tables, definition lists, strikethrough)."""
    mistune = pytest.importorskip("nbconvert.filters.markdown_mistune")
    assert _live_markup(mistune.markdown2html_mistune(safe_markdown(text))) == []


def test_text_that_needs_no_escaping_comes_back_as_the_same_object():
    # A long answer is then not held a second time while its final output is built.
    text = "Plain words, `List<int>` in code, a < b and x &= 1.\n\n" * 2000
    assert safe_markdown(text) is text


def test_only_changed_lines_are_rewritten_in_a_long_text():
    text = "fine line\n" * 500 + "a <b>tag</b> here\n" + "fine line\n" * 500
    out = safe_markdown(text)
    assert out == text.replace("<b>tag</b>", "&lt;b>tag&lt;/b>")


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        # Prose with code spans: nothing to rewrite, so little more than bookkeeping per line.
        (
            "".join(f"Word {i} and `code {i}` here.\n" if i % 9 else "\n" for i in range(20_000)),
            2.0,
        ),
        # Dense text where most lines change: the rewritten lines themselves are about 1x.
        ('He said "yes" and [a link](https://x.org/a_b) then $x$ math.\n' * 5_000, 8.0),
    ],
    ids=["prose", "dense"],
)
def test_rendering_holds_few_copies_of_the_text(text, bound):
    """Positions are kept as machine integers and lines sliced on demand, not held as objects."""
    import tracemalloc

    tracemalloc.start()
    try:
        safe_markdown(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= bound * len(text), f"{peak / len(text):.1f}x the text"
