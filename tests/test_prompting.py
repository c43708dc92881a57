"""Conversations and prompt building, in IPython's shell over real HTTP to the fake server."""

from __future__ import annotations

import base64
import json

import pytest

from ollama_magic.conversation import Conversation, Exchange
from ollama_magic.errors import AnswerNotJSONError, OllamaUsageError
from ollama_magic.prompt import dry_run_markdown, interpolate, interpolate_with_names
from ollama_magic.testing import Reply


def cell(shell, line: str, body: str, cell_id: str | None = None):
    """Run a %%ollama cell as a front end would (with a cell id when given)."""
    shell.parent_header = {"metadata": {"cellId": cell_id}} if cell_id else {}
    return shell.run_cell(f"%%ollama {line}\n{body}", store_history=True)


def sent(server, index: int = -1) -> dict:
    return [r for r in server.requests if r.path == "/api/chat"][index].json()


@pytest.fixture(autouse=True)
def _clean(shell):
    magics = shell.magics_manager.registry["OllamaMagics"]
    magics.conversations.clear()
    yield
    shell.parent_header = {}
    shell.run_line_magic("config", "OllamaMagics.chat = ''")


def test_conversation_carries_history_across_cells(shell, server):
    server.enqueue(Reply.answer(["Hi Ada."]), Reply.answer(["Ada."]))
    assert cell(shell, "llama3.2 --chat", "My name is Ada.", "c1").success
    assert cell(shell, "llama3.2 --chat", "What is my name?", "c2").success
    assert sent(server)["messages"] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hi Ada."},
        {"role": "user", "content": "What is my name?"},
    ]


def test_rerunning_a_cell_replaces_its_exchange(shell, server):
    server.enqueue(Reply.answer(["A1"]), Reply.answer(["B1"]), Reply.answer(["A2"]))
    cell(shell, "llama3.2 --chat", "first", "a")
    cell(shell, "llama3.2 --chat", "second", "b")
    cell(shell, "llama3.2 --chat", "first, edited", "a")  # the user edits cell a and re-runs it
    # Only what came before cell a is context for its new run.
    assert sent(server)["messages"] == [{"role": "user", "content": "first, edited"}]
    history = shell.run_line_magic("ollama", "history")
    assert isinstance(history, Conversation)
    assert [(e.prompt, e.answer) for e in history.exchanges] == [
        ("first, edited", "A2"),
        ("second", "B1"),
    ]


def test_without_cell_ids_each_execution_is_its_own_turn(shell, server):
    cell(shell, "llama3.2 --chat", "one")
    cell(shell, "llama3.2 --chat", "two")
    assert len(shell.run_line_magic("ollama", "history").exchanges) == 2


def test_named_conversations_are_separate(shell, server):
    cell(shell, "llama3.2 --chat math", "1+1", "m1")
    cell(shell, "llama3.2 --chat poems", "a rose", "p1")
    assert sent(server)["messages"] == [{"role": "user", "content": "a rose"}]
    assert len(shell.run_line_magic("ollama", "history math").exchanges) == 1
    assert len(shell.run_line_magic("ollama", "history poems").exchanges) == 1


def test_failed_and_interrupted_turns_are_not_recorded(shell, server):
    cell(shell, "llama3.2 --chat", "good", "g")
    server.enqueue(Reply.answer(["par", "tial"], error="runner crashed"))
    result = cell(shell, "llama3.2 --chat", "bad", "b")
    assert not result.success
    history = shell.run_line_magic("ollama", "history")
    assert [e.prompt for e in history.exchanges] == ["good"]
    # Re-running a cell whose new answer fails keeps its earlier, complete exchange.
    server.enqueue(Reply.answer(["x"], hangup_after=0))
    cell(shell, "llama3.2 --chat", "good again", "g")
    assert [e.prompt for e in shell.run_line_magic("ollama", "history").exchanges] == ["good"]


def test_system_message_belongs_to_the_conversation(shell, server):
    cell(shell, "llama3.2 --chat --system 'You are terse.'", "hi", "s1")
    cell(shell, "llama3.2 --chat", "again", "s2")
    assert sent(server)["messages"][0] == {"role": "system", "content": "You are terse."}
    cell(shell, "llama3.2 --chat --system 'You are verbose.'", "more", "s3")
    assert sent(server)["messages"][0] == {"role": "system", "content": "You are verbose."}


def test_reset_and_history_errors(shell, server, capsys):
    cell(shell, "llama3.2 --chat", "hi", "r1")
    shell.run_line_magic("ollama", "reset")
    assert "1 exchange(s) forgotten" in capsys.readouterr().out
    with pytest.raises(OllamaUsageError, match="no conversation 'default'"):
        shell.run_line_magic("ollama", "history")


def test_configured_default_conversation(shell, server):
    shell.run_line_magic("config", "OllamaMagics.chat = 'main'")
    cell(shell, "llama3.2", "one", "d1")
    cell(shell, "llama3.2", "two", "d2")
    assert len(sent(server)["messages"]) == 3
    cell(shell, "llama3.2 --no-chat", "alone", "d3")
    assert sent(server)["messages"] == [{"role": "user", "content": "alone"}]


def test_history_renders_as_safe_markdown(shell, server):
    server.enqueue(Reply.answer(["<b>bold</b>"]))
    cell(shell, "llama3.2 --chat", "<script>x</script>", "h1")
    markdown = shell.run_line_magic("ollama", "history")._repr_markdown_()
    assert "<script>" not in markdown and "<b>" not in markdown


def test_variables_are_interpolated_and_other_braces_are_not(shell, server):
    shell.user_ns.update(city="Paris", data={"a": 1})
    shell.run_cell("x = 40 + 2", store_history=True)
    number = shell.execution_count - 1
    body = (
        "Weather in {city}? Data: {data}. Code: {In[N]} -> {Out[N]}\n"
        "Literal: {nope} {'k': 1} {{city}} f'{x!r}' def f(): return {1, 2} $city"
    ).replace("N", str(number))
    assert cell(shell, "llama3.2", body).success
    prompt = sent(server)["messages"][-1]["content"]
    assert prompt.startswith("Weather in Paris? Data: {'a': 1}. Code: x = 40 + 2 -> {Out[")
    assert "Literal: {nope} {'k': 1} {Paris} f'{x!r}' def f(): return {1, 2} $city" in prompt


def test_out_reference(shell, server):
    shell.run_cell("6 * 7", store_history=True)
    number = shell.execution_count - 1
    assert cell(shell, "llama3.2", f"Answer: {{Out[{number}]}}").success
    assert sent(server)["messages"][-1]["content"] == "Answer: 42"


def test_no_interpolate_sends_the_cell_as_typed(shell, server):
    shell.user_ns["city"] = "Paris"
    assert cell(shell, "llama3.2 --no-interpolate", "Weather in {city}?").success
    assert sent(server)["messages"][-1]["content"] == "Weather in {city}?"


def test_dry_run_sends_nothing(shell, server, capsys):
    shell.user_ns["ollama_response"] = "kept"
    assert cell(shell, "llama3.2 --dry-run -t 0.1 --system 'Be brief.'", "Hello").success
    out = capsys.readouterr().out
    assert "Dry run" in out and "/api/chat" in out and "curl -N" in out
    assert '"temperature": 0.1' in out and "Be brief." in out
    assert not [r for r in server.requests if r.path == "/api/chat"]
    assert shell.user_ns["ollama_response"] == "kept"


def test_line_magic_one_liner(shell, server, capsys):
    shell.run_line_magic("ollama", "-t 0.5 llama3.2 What's the {unknown} capital of France?")
    body = sent(server)
    assert body["messages"] == [
        {"role": "user", "content": "What's the {unknown} capital of France?"}
    ]
    assert body["options"] == {"temperature": 0.5}
    assert shell.user_ns["ollama_response"].startswith("You said: What's")


def test_line_magic_unknown_model_is_clear(shell, server):
    result = shell.run_cell("%ollama nosuchmodel hello")
    assert "ollama pull nosuchmodel" in str(result.error_in_exec)


def test_images_from_file_and_variable(shell, server, tmp_path):
    png = b"\x89PNG\r\n\x1a\nfake"
    path = tmp_path / "cat.png"
    path.write_bytes(png)
    shell.user_ns["raw"] = b"bytes-image"
    assert cell(shell, f"llama3.2 --image {path} -i raw", "What is this?").success
    images = sent(server)["messages"][-1]["images"]
    assert images == [base64.b64encode(png).decode(), base64.b64encode(b"bytes-image").decode()]


def test_bad_image_is_a_usage_error(shell, server):
    shell.user_ns["number"] = 3
    for source in ("number", "/no/such/file.png"):
        result = cell(shell, f"llama3.2 --image {source}", "What?")
        assert isinstance(result.error_in_exec, OllamaUsageError)


def test_format_json_and_parsing(shell, server):
    server.enqueue(Reply.answer(['{"sky":', ' "blue"}']))
    assert cell(shell, "llama3.2 --format json", "Colors?").success
    assert sent(server)["format"] == "json"
    assert shell.user_ns["ollama_response"].json() == {"sky": "blue"}


def test_format_from_schema_variable_and_model_class(shell, server):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    shell.user_ns["schema"] = schema

    class Model:
        @classmethod
        def model_json_schema(cls):
            return {"title": "Model", "type": "object"}

    shell.user_ns["Model"] = Model
    assert cell(shell, "llama3.2 --format schema", "n?").success
    assert sent(server)["format"] == schema
    assert cell(shell, "llama3.2 --format Model", "n?").success
    assert sent(server)["format"] == {"title": "Model", "type": "object"}


def test_json_parse_failure_keeps_text(shell, server):
    server.enqueue(Reply.answer(["not json"]))
    cell(shell, "llama3.2 --format json", "?")
    answer = shell.user_ns["ollama_response"]
    with pytest.raises(AnswerNotJSONError, match="not valid JSON"):
        answer.json()
    assert answer == "not json"


def test_trace_in_terminal_prints_raw_lines(shell, server, capsys):
    server.enqueue(Reply.answer(["a", "b"]))
    assert cell(shell, "llama3.2 --trace", "x").success
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("+")]
    assert len(lines) == 3  # two tokens and the final chunk, each with its arrival time
    assert json.loads(lines[-1].split("  ", 1)[1])["done"] is True


def test_config_report_names_sources(shell, server):
    shell.run_line_magic("config", "OllamaMagics.model = 'llama3.2'")
    report = shell.run_line_magic("ollama", "config")
    rows = {name: (value, source) for name, value, source in report}
    assert rows["model"] == ("llama3.2", "%config / ipython_config.py")
    assert rows["host"] == (server.url, "OLLAMA_HOST environment variable")
    assert rows["out"] == ("ollama_response", "default")
    assert "| model | llama3.2 |" in report._repr_markdown_()


def test_line_magic_with_default_model_takes_all_words_as_prompt(shell, server):
    shell.run_line_magic("config", "OllamaMagics.model = 'llama3.2'")
    shell.run_line_magic("ollama", "Why is the sky blue?")
    assert sent(server)["model"] == "llama3.2"
    assert sent(server)["messages"][-1]["content"] == "Why is the sky blue?"
    shell.run_line_magic("ollama", "qwen3:8b Why not?")  # an installed model is still a model
    assert sent(server)["model"] == "qwen3:8b"
    assert sent(server)["messages"][-1]["content"] == "Why not?"
    shell.run_line_magic("ollama", "--no-think qwen3:8b And now?")
    assert sent(server)["model"] == "qwen3:8b" and sent(server)["think"] is False


def test_one_liner_ending_in_question_mark_is_a_prompt_not_help(shell, server):
    result = shell.run_cell("%ollama llama3.2 What's 2 + 2, and why is the sky blue?")
    assert result.success
    assert sent(server)["messages"][-1]["content"] == "What's 2 + 2, and why is the sky blue?"


def test_unknown_subcommand_lists_the_valid_ones(shell, server):
    with pytest.raises(OllamaUsageError) as info:
        shell.run_line_magic("ollama", "lst")
    message = str(info.value)
    assert "not a subcommand" in message and "list" in message and "pull" in message


def test_help_lists_every_subcommand_the_magic_answers(shell, server, capsys):
    shell.run_line_magic("ollama", "help")
    shown = capsys.readouterr().out
    magics = shell.magics_manager.registry["OllamaMagics"]
    for name in magics._subcommands():
        assert f"`%ollama {name}" in shown or f"or {name})" in shown, (name, shown)
    assert "%%ollama?" in shown
    with pytest.raises(OllamaUsageError) as info:
        shell.run_line_magic("ollama", "lst")
    assert "explain [MODEL]" in str(info.value) and "help: this list" in str(info.value)


def test_a_misspelt_option_names_the_one_probably_meant(shell, server):
    with pytest.raises(OllamaUsageError) as info:
        shell.run_cell_magic("ollama", "llama3.2 --temprature 0.1", "hi")
    message = str(info.value)
    assert "--temprature" in message and "Did you mean --temperature?" in message
    assert "%%ollama?" in message
    assert not server.requests or all(r.path != "/api/chat" for r in server.requests)


def test_an_installed_model_alone_on_the_line_asks_for_the_question(shell, server):
    with pytest.raises(OllamaUsageError) as info:
        shell.run_line_magic("ollama", "llama3.2")
    message = str(info.value)
    assert "needs a question" in message and "`%ollama llama3.2 Why" in message
    assert "not a subcommand" not in message


def test_cell_magic_line_may_end_in_a_comment(shell, server):
    assert cell(shell, "llama3.2 -t 0.3  # a quick one", "Hi").success
    assert sent(server)["model"] == "llama3.2"
    assert sent(server)["options"] == {"temperature": 0.3}


def test_one_liner_options_after_the_model(shell, server):
    result = shell.run_cell("%ollama llama3.2 -t 0.3 --chat What's 2+2?")
    assert result.success
    body = sent(server)
    assert body["model"] == "llama3.2" and body["options"] == {"temperature": 0.3}
    assert body["messages"][-1]["content"] == "What's 2+2?"
    assert len(shell.run_line_magic("ollama", "history").exchanges) == 1


NAMESPACE = {"x": 42, "df": "<table>", "In": ["", "x = 1"], "Out": {1: 1}}


@pytest.mark.parametrize(
    "text",
    [
        "```python\nprint(f'{x}')\n```",
        "~~~\nd = {x}\n~~~",
        "  ```\nreturn {x}\n  ```",
        "````md\n```\n{x}\n```\n````",
        "Use `f'{x}'` here",
        "Use ``a `{x}` b`` here",
        "```\nnever closed {x}",
    ],
)
def test_pasted_code_is_left_alone(text):
    assert interpolate(text, NAMESPACE) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```\n{x}\n```", "```\n42\n```"),
        ("```python\n{In[1]}\n```", "```python\nx = 1\n```"),
        ("~~~\n  {df}  \n~~~", "~~~\n  <table>  \n~~~"),
        ("The value `{x}` and {x}", "The value `42` and 42"),
        ("``` {x} ```", "``` 42 ```"),  # one line, so an inline span, not a fence
    ],
)
def test_a_fence_or_span_that_holds_only_a_placeholder_is_filled(text, expected):
    assert interpolate(text, NAMESPACE) == expected


def test_prose_around_code_is_still_interpolated():
    text = "Explain {x}:\n```\nf'{x}'\n```\nthen {df} and `{x}+1`; a lone ` tick {x}"
    assert interpolate(text, NAMESPACE) == (
        "Explain 42:\n```\nf'{x}'\n```\nthen <table> and `{x}+1`; a lone ` tick 42"
    )


def test_substituted_names_are_reported_once_in_order():
    text = "{df} {x} {nope} {x} `{x}`\n```\n{x}\n```\n{In[1]} {Out[1]} {'k': 1}"
    result = interpolate_with_names(text, NAMESPACE)
    assert result.names == ["df", "x", "In[1]", "Out[1]"]
    assert result.text == "<table> 42 {nope} 42 `42`\n```\n42\n```\nx = 1 1 {'k': 1}"
    assert interpolate_with_names("{nope} `{x} {df}`", NAMESPACE).names == []


def test_in_uses_the_raw_cell_when_given():
    raw = ["", "!ls -l"]
    namespace = {"In": ["", "get_ipython().system('ls -l')"]}
    assert interpolate("{In[1]}", namespace) == "get_ipython().system('ls -l')"
    assert interpolate("{In[1]}", namespace, raw_inputs=raw) == "!ls -l"
    assert interpolate("{In[-1]} {In[5]}", namespace, raw_inputs=raw) == "!ls -l {In[5]}"


def test_in_reference_is_the_cell_as_typed(shell, server):
    shell.run_cell("!echo hi\n%time y = 1", store_history=True)
    number = shell.execution_count - 1
    assert cell(shell, "llama3.2", f"```\n{{In[{number}]}}\n```").success
    assert sent(server)["messages"][-1]["content"] == "```\n!echo hi\n%time y = 1\n```"


def rendered_history(conversation: Conversation) -> str:
    """The history as a notebook would show it: Markdown to HTML with raw HTML allowed."""
    from markdown_it import MarkdownIt

    return (
        MarkdownIt("commonmark", {"html": True})
        .enable("table")
        .render(conversation._repr_markdown_())
    )


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "`<img src=x onerror=alert(1)>`",
    "**<img src=x onerror=alert(1)>",
    "$<img src=x onerror=alert(1)>$",
    "\\(<img src=x onerror=alert(1)>\\)",
    "[x](javascript:alert(1))",
    "a\n\n<img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_history_escapes_model_and_conversation_names(hostile):
    conversation = Conversation(hostile, system=hostile)
    conversation.record(Exchange("k", hostile, hostile, model=hostile))
    html = rendered_history(conversation)
    assert "<img" not in html and 'href="javascript' not in html
    assert "alert(1)" in html  # shown as text, not dropped


def test_history_shows_names_as_written():
    conversation = Conversation("math_2*x")
    conversation.record(Exchange("k", "q", "a", model="llama3.2:1b_q4*"))
    html = rendered_history(conversation)
    assert "math_2*x" in html and "llama3.2:1b_q4*" in html


def test_dry_run_shortens_images_in_the_body_and_the_command():
    image = "A" * 50_000
    body = {"model": "m", "messages": [{"role": "user", "content": "hi", "images": [image]}]}
    markdown = dry_run_markdown("http://h:1/api/chat", body)
    assert image not in markdown and markdown.count("<50000 base64 characters>") == 2
    assert "shortened" in markdown
    openai = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}},
                ],
            }
        ],
    }
    markdown = dry_run_markdown("http://h:1/v1/chat/completions", openai)
    assert image not in markdown and "data:image/png;base64,<50000 base64 characters>" in markdown
    assert body["messages"][0]["images"] == [image]  # the request itself is untouched


def test_dry_run_without_http_shows_no_curl_command():
    markdown = dry_run_markdown("(in this kernel, no HTTP request)", {"model": "m"})
    assert "curl" not in markdown and '"model": "m"' in markdown


def test_history_as_text_carries_no_terminal_escapes():
    conversation = Conversation("c")
    conversation.record(Exchange("k", "q", "ok\x1b]52;c;ZXZpbA==\x07\x1b[2J", model="m\x1b[31m"))
    text = repr(conversation)
    assert "\x1b" not in text and "\x07" not in text and "ok" in text


def test_unmatched_backticks_are_text_and_spans_stay_in_their_paragraph():
    text = "a ` b {x}\n\n` {x} `` c `{x}` ``` {df}"  # the first and third single ticks pair
    assert interpolate(text, NAMESPACE) == "a ` b 42\n\n` {x} `` c `42` ``` <table>"
    assert interpolate("``{x}`` and ``{x} {x}``", NAMESPACE) == "``42`` and ``{x} {x}``"
