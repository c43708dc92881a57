"""Every string a server sends is shown as text in every output: no tag, handler or script URL.

Each output is rendered the way a notebook renders it (markdown-it with raw HTML allowed, as
Jupyter's renderer does before its sanitizer) and the HTML is parsed: only the tags Markdown
itself makes may appear, with no ``on*`` attribute and no ``javascript:`` URL. The hostile
strings come from the fake server over HTTP wherever a server is their source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from ollama_magic.jobs import Answers
from ollama_magic.pull import PullState
from ollama_magic.result import OllamaResponse
from ollama_magic.testing import FakeOllama, Reply
from ollama_magic.view import compare_markdown

HOSTILE = "<img src=x onerror=alert(1)>"
#: More shapes of the same attack: in emphasis, in a code span, in math, as a link.
SHAPES = [
    HOSTILE,
    f"**{HOSTILE}",
    f"`{HOSTILE}`",
    f"${HOSTILE}$",
    "[x](javascript:alert(1))",
    f"evil|{HOSTILE}|",
]
#: The tags Markdown itself produces in these outputs.
MARKDOWN_TAGS = {
    "p", "strong", "em", "code", "pre", "table", "thead", "tbody", "tr", "th", "td", "hr",
    "h4", "br", "a",
}  # fmt: skip


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def assert_inert(markdown: str) -> str:
    """The Markdown, rendered with raw HTML on, holds no live markup; returns the HTML."""
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.found:
        assert tag in MARKDOWN_TAGS, (tag, html)
        for name, value in attrs:
            assert not name.lower().startswith("on"), (name, html)
            assert not (value or "").strip().lower().startswith("javascript:"), (value, html)
    assert "alert(1)" in html  # shown as text, not dropped
    return html


@pytest.fixture
def hostile_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2", *SHAPES), thinking_models=()) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.host)
        yield fake


def test_list(shell, hostile_server):
    table = shell.run_line_magic("ollama", "list")
    names = {row["name"].removesuffix(":latest") for row in table}
    assert names >= set(SHAPES)
    assert_inert(table._repr_markdown_())


def test_ps(shell, hostile_server):
    rows = [
        {"name": name, "model": name, "size": 10, "size_vram": 5, "expires_at": name,
         "context_length": name, "details": {"family": name, "parameter_size": name}}
        for name in SHAPES
    ]  # fmt: skip
    hostile_server.enqueue_for("/api/ps", Reply.raw(200, json.dumps({"models": rows})))
    table = shell.run_line_magic("ollama", "ps")
    assert len(table) == len(SHAPES)
    assert_inert(table._repr_markdown_())


@pytest.mark.parametrize("shape", SHAPES)
def test_show(shell, hostile_server, shape):
    card = {
        "details": {"family": shape, "parameter_size": shape, "quantization_level": shape},
        "capabilities": [shape, "completion"],
        "template": f"```\n{shape}\n```",
        "parameters": shape,
        "system": shape,
        "model_info": {"general.architecture": shape},
        "modified_at": shape,
    }
    hostile_server.enqueue_for("/api/show", Reply.raw(200, json.dumps(card)))
    details = shell.run_line_magic("ollama", f"show {json.dumps('llama3.2')}")
    assert_inert(details._repr_markdown_())


def test_show_names_the_model_as_typed(shell, hostile_server):
    details = shell.run_line_magic("ollama", f"show '{HOSTILE}'")
    assert_inert(details._repr_markdown_())


def test_config(shell):
    shell.run_line_magic("config", f"OllamaMagics.model = {HOSTILE!r}")
    try:
        report = shell.run_line_magic("ollama", "config")
    finally:
        shell.run_line_magic("config", "OllamaMagics.model = ''")
    html = assert_inert(report._repr_markdown_())
    assert "&lt;img" in html


def test_config_shows_api_and_unset_values_without_backticks(shell):
    report = shell.run_line_magic("ollama", "config")
    names = [name for name, _, _ in report]
    assert "api" in names and "host" in names
    markdown = report._repr_markdown_()
    assert "`" not in markdown  # no empty code spans, no literal backticks
    model_row = next(line for line in markdown.splitlines() if line.startswith("| model "))
    assert "(not set)" in model_row
    assert "api" in repr(report) and "(not set)" in repr(report)


@pytest.mark.parametrize("shape", SHAPES)
def test_compare_headers_and_failure_notes(shape):
    answers = Answers()
    answers[shape] = OllamaResponse(shape, model=shape)
    failed = OllamaResponse("", model=shape)
    from ollama_magic.errors import OllamaResponseError

    failed.error = OllamaResponseError(f"Ollama failed: {shape}", 500, shape)
    answers[f"{shape} 2"] = failed
    assert_inert(answers._repr_markdown_())
    assert_inert(compare_markdown(answers, "out"))


def test_compare_in_the_shell(shell, hostile_server):
    result = shell.run_cell(f"%%ollama llama3.2 '{HOSTILE}' -o both\nHi")
    assert result.success, result.error_in_exec
    assert_inert(shell.user_ns["both"]._repr_markdown_())


@pytest.mark.parametrize("shape", SHAPES)
def test_pull_progress_summary(shape):
    state = PullState(shape)
    state.feed({"status": shape, "digest": "sha256:" + "a" * 64, "total": 100, "completed": 50})
    for ending in ("stopped", "failed"):
        text, markdown = state.summary(ending)
        assert "\x1b" not in text
        assert_inert(markdown)
    state.feed({"status": "success"})
    assert_inert(state.summary()[1])


def test_pull_in_the_shell_shows_text_only(shell, monkeypatch, capsys):
    with FakeOllama(models=(), thinking_models=(), pullable=(HOSTILE,)) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.host)
        shell.run_line_magic("ollama", f"pull '{HOSTILE}'")
    out = capsys.readouterr().out
    assert f"Pulled {HOSTILE}" in out  # a terminal shows the name as it is, as text


def test_dry_run(shell, hostile_server, capsys):
    result = shell.run_cell(f"%%ollama '{HOSTILE}' --dry-run -s '{HOSTILE}'\n{HOSTILE}")
    assert result.success, result.error_in_exec
    assert_inert(capsys.readouterr().out)


def test_in_a_real_kernel_history_and_list_stay_inert(hostile_server):
    """Where the bug was seen: a notebook's %ollama history showed the reported model name as
    live markup. The server reports a hostile name for its answer, and lists hostile models."""
    from kernel_driver import start_magic_kernel

    hostile_server.enqueue(Reply.answer(["fine"], model=HOSTILE))
    with start_magic_kernel({"OLLAMA_HOST": hostile_server.host}) as kernel:
        assert kernel.execute("%%ollama llama3.2 --chat\nHi").status == "ok"
        assert kernel.value("ollama_response.model") == HOSTILE
        for command in ("%ollama history", "%ollama list"):
            run = kernel.execute(command)
            assert run.status == "ok", run.reply
            (result,) = run.of_type("execute_result")
            assert_inert(result.content["data"]["text/markdown"])
