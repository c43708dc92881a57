"""--show-prompt: the prompt as the template renders it, over real HTTP; nothing generated."""

from __future__ import annotations

import importlib.util

import pytest

from ollama_magic.local import KNOWN_MODELS
from ollama_magic.show_prompt import prompt_markdown
from ollama_magic.testing import render_template
from ollama_magic.testing_openai import FakeOpenAI

HAVE_LOCAL = importlib.util.find_spec("llama_cpp") is not None and KNOWN_MODELS["smollm2"].installed


def chats(server) -> list[dict]:
    return [r.json() for r in server.requests if r.path == "/api/chat"]


def test_the_rendered_prompt_is_shown_and_nothing_is_generated(shell, server, capsys):
    shell.user_ns.pop("ollama_response", None)
    cell = "%%ollama llama3.2 --show-prompt --system 'Be terse.'\nWhy <b>blue</b>?"
    assert shell.run_cell(cell).success
    (body,) = chats(server)
    assert body["_debug_render_only"] is True and body["stream"] is False
    expected, _ = render_template(body["messages"])
    out = capsys.readouterr().out
    assert expected in out and "Be terse." in out and "```text" in out
    assert "ollama_response" not in shell.user_ns  # no answer


def test_the_prompt_of_a_conversation_holds_the_earlier_turns(shell, server, capsys):
    assert shell.run_cell("%%ollama llama3.2 --chat lesson\nFirst question", store_history=True)
    assert shell.run_cell(
        "%%ollama llama3.2 --chat lesson --show-prompt\nSecond question", store_history=True
    ).success
    out = capsys.readouterr().out
    assert "First question" in out and "You said: First question" in out
    assert "Second question" in out
    shell.run_line_magic("ollama", "reset lesson")


def test_backticks_in_the_prompt_cannot_close_the_code_block():
    markdown = prompt_markdown("m", "a ```` b")
    assert "`````text\na ```` b\n`````" in markdown


def test_a_backend_that_cannot_render_says_so_in_one_line(shell, capsys):
    with FakeOpenAI() as server:
        cell = f"%%ollama some-model --api openai --host {server.url}/v1 --show-prompt\nHi"
        assert shell.run_cell(cell).success
        assert not [r for r in server.requests if "completions" in r.path]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1 and "--show-prompt needs an Ollama server" in lines[0]


@pytest.mark.skipif(not HAVE_LOCAL, reason="needs the local extra (llama-cpp-python, smollm2)")
def test_the_embedded_model_renders_its_own_template(shell, capsys):
    cell = "%%ollama local:smollm2 --show-prompt --system 'Be brief.'\nWhat is 2+2?"
    assert shell.run_cell(cell).success
    out = capsys.readouterr().out
    # SmolLM2's template is ChatML: each turn between <|im_start|> and <|im_end|>.
    assert "<|im_start|>system\nBe brief.<|im_end|>" in out
    assert "<|im_start|>user\nWhat is 2+2?<|im_end|>" in out
    assert out.rstrip().endswith("```") and "<|im_start|>assistant" in out
