"""The %%ollama magic in IPython's own shell (no kernel: the terminal view), over real HTTP."""

from __future__ import annotations

import pytest

from ollama_magic.errors import (
    OllamaUsageError,
)
from ollama_magic.result import OllamaResponse
from ollama_magic.testing import Reply


def last_chat(server) -> dict:
    """The body of the newest chat request (other requests, e.g. /api/tags, are skipped)."""
    return [r for r in server.requests if r.path == "/api/chat"][-1].json()


def run(shell, line: str, cell: str = "Why is the sky blue?"):
    return shell.run_cell(f"%%ollama {line}\n{cell}")


def test_answer_streams_to_stdout_and_lands_in_variable(shell, server, capsys):
    server.enqueue(Reply.answer(["The", " sky", " is", " blue", "."]))
    result = run(shell, "llama3.2")
    assert result.success
    assert result.result is None  # no duplicate Out[n]
    answer = shell.user_ns["ollama_response"]
    assert isinstance(answer, OllamaResponse) and isinstance(answer, str)
    assert answer == "The sky is blue."
    assert answer.model == "llama3.2"
    assert answer.done_reason == "stop"
    assert answer.complete and not answer.interrupted and answer.error is None
    assert answer.stats.eval_count == 5
    assert answer.stats.tokens_per_second and answer.stats.tokens_per_second > 0
    assert "The sky is blue." in capsys.readouterr().out
    body = last_chat(server)
    assert body["model"] == "llama3.2"
    assert body["messages"] == [{"role": "user", "content": "Why is the sky blue?"}]
    assert body["stream"] is True
    assert "think" not in body and "options" not in body  # only what the user asked for


def test_options_reach_the_request(shell, server):
    line = (
        "llama3.2 --system 'You are terse.' -t 0.2 --seed 7 -O num_ctx=8192 "
        "-O 'stop=[\"\\n\\n\"]' -O mirostat=abc --format json --no-think --keep-alive 10m"
    )
    assert run(shell, line).success
    body = last_chat(server)
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert body["options"] == {
        "temperature": 0.2,
        "seed": 7,
        "num_ctx": 8192,
        "stop": ["\n\n"],
        "mirostat": "abc",
    }
    assert body["format"] == "json"
    assert body["think"] is False
    assert body["keep_alive"] == "10m"


def test_keep_alive_number_is_seconds_and_think_level(shell, server):
    assert run(shell, "qwen3:8b --keep-alive 300 --think high").success
    body = last_chat(server)
    assert body["keep_alive"] == 300
    assert body["think"] == "high"


def test_braces_and_dollars_in_line_are_not_expanded(shell, server):
    shell.user_ns["name"] = "EXPANDED"
    assert run(shell, "llama3.2 --system 'Use {name} and $name literally'").success
    assert last_chat(server)["messages"][0]["content"] == "Use {name} and $name literally"


def test_thinking_is_kept_apart_from_the_answer(shell, server, capsys):
    server.enqueue(Reply.answer(["4"], thinking=["2+2", " is 4"]))
    assert run(shell, "qwen3:8b", "2+2?").success
    answer = shell.user_ns["ollama_response"]
    assert answer == "4"
    assert answer.thinking == "2+2 is 4"
    assert "2+2 is 4" in capsys.readouterr().out  # shown (dimmed) in the terminal


def test_default_model_from_config_and_out_name(shell, server):
    shell.run_line_magic("config", "OllamaMagics.model = 'llama3.2'")
    assert run(shell, "--out first").success
    assert shell.user_ns["first"] == "You said: Why is the sky blue?"
    assert "ollama_response" not in shell.user_ns


def test_missing_model_is_a_usage_error(shell):
    result = run(shell, "")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "%config OllamaMagics.model" in str(result.error_in_exec)


@pytest.mark.parametrize(
    "line",
    [
        "llama3.2 -O novalue",
        "llama3.2 --think maybe",
        "llama3.2 --format yaml",
        "llama3.2 --out 1x",
    ],
)
def test_bad_option_values_are_clear(shell, server, line):
    result = run(shell, line)
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert not server.requests


def test_unicode_survives_exactly(shell, server):
    pieces = [
        "e\u0301",
        " 👋🏽",
        " \u05e9\u05dc\u05d5\u05dd",
        " a\u0085b",
        " \u2028\u2029",
        " \x00",
    ]
    server.enqueue(Reply.answer(pieces))
    assert run(shell, "llama3.2", "Ünïcödé \u0085 prompt").success
    assert shell.user_ns["ollama_response"] == "".join(pieces)
    assert last_chat(server)["messages"][0]["content"] == "Ünïcödé \u0085 prompt"


def test_huge_final_line_and_prompt(shell, server):
    server.enqueue(Reply.answer(["done"], stats={"context": list(range(150_000))}))
    prompt = "x" * 1_000_000
    assert run(shell, "llama3.2", prompt).success
    assert shell.user_ns["ollama_response"] == "done"
    assert len(last_chat(server)["messages"][0]["content"]) == 1_000_000


def test_final_chunk_text_is_kept(shell, server):
    server.enqueue(Reply.answer(["Hello"], final_text=" world"))
    assert run(shell, "llama3.2").success
    assert shell.user_ns["ollama_response"] == "Hello world"


def test_missing_metrics_are_none(shell, server):
    server.enqueue(Reply.answer(["x"], stats={"eval_count": None, "prompt_eval_count": None}))
    assert run(shell, "llama3.2").success
    stats = shell.user_ns["ollama_response"].stats
    assert stats.eval_count is None and stats.prompt_eval_count is None
    assert stats.tokens_per_second is None


def test_proxy_variables_do_not_capture_loopback(shell, server, closed_port, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert run(shell, "llama3.2").success


def test_host_option_wins_over_environment(shell, server, monkeypatch, closed_port):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port}")
    assert run(shell, f"llama3.2 --host {server.url}").success


def test_bad_ollama_host_is_a_usage_error(shell, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:99999")
    result = run(shell, "llama3.2")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "99999" in str(result.error_in_exec)


def test_connection_reused_between_cells(shell, server):
    for _ in range(3):
        assert run(shell, "llama3.2").success
    ports = {r.client_port for r in server.requests if r.path == "/api/chat"}
    assert len(ports) == 1


def test_help_has_examples(shell):
    doc = shell.find_cell_magic("ollama").__doc__
    assert "Examples" in doc and "--system" in doc and "--out" in doc


def test_help_usage_names_the_cell_magic(shell):
    usage = shell.magics_manager.magics["cell"]["ollama"].__doc__.split("\n\n")[1]
    assert usage.strip().startswith("%%ollama [-o NAME]")


def test_one_liner_reads_options_after_the_model_and_sends_nothing_on_dry_run(shell, server):
    server.reset()
    assert shell.run_cell("%ollama llama3.2 --dry-run -o short What is 2+2?").success
    assert [r for r in server.requests if r.path == "/api/chat"] == []
    assert shell.run_cell("%ollama llama3.2 -o short -t 0.2 What is 2+2?").success
    body = [r.json() for r in server.requests if r.path == "/api/chat"][-1]
    assert body["messages"][-1]["content"] == "What is 2+2?"
    assert body["options"] == {"temperature": 0.2}
    assert str(shell.user_ns["short"]) == "You said: What is 2+2?"


def test_one_liner_reads_options_before_the_model_too(shell, server, monkeypatch, closed_port):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port}")  # --host must win
    server.reset()
    line = f"%ollama -t 0.3 --host {server.host} -o early llama3.2 --seed 7 Why is -5 < 0?"
    result = shell.run_cell(line)
    assert result.success, result.error_in_exec
    (body,) = [r.json() for r in server.requests if r.path == "/api/chat"]
    assert body["model"] == "llama3.2" and body["options"] == {"temperature": 0.3, "seed": 7}
    assert body["messages"][-1]["content"] == "Why is -5 < 0?"
    assert str(shell.user_ns["early"]) == "You said: Why is -5 < 0?"


def test_a_comment_on_the_magic_line_is_not_a_model(shell, server):
    assert shell.run_cell("%%ollama llama3.2  # quick question\nHi").success
    assert str(shell.user_ns["ollama_response"]) == "You said: Hi"


def test_unknown_option_names_are_flagged_and_filled_names_are_shown(shell, server, capsys):
    shell.user_ns["x"] = 5
    cell = "%%ollama llama3.2 -O num_predcit=5\nWhat is {x}? `print({x})` stays"
    assert shell.run_cell(cell).success
    captured = capsys.readouterr()
    assert "unknown option num_predcit; did you mean num_predict?" in captured.err
    assert "Filled in from the notebook: x" in captured.out
    body = [r.json() for r in server.requests if r.path == "/api/chat"][-1]
    assert body["messages"][-1]["content"] == "What is 5? `print({x})` stays"


def test_bad_keep_alive_is_refused(shell, server):
    result = shell.run_cell("%%ollama llama3.2 --keep-alive banana\nHi")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "banana" in result.error_in_exec.message


def test_one_liner_with_a_default_model_keeps_dash_words_in_the_prompt(shell, server):
    shell.run_line_magic("config", "OllamaMagics.model = 'llama3.2'")
    assert shell.run_cell("%ollama Is -5 negative").success
    assert str(shell.user_ns["ollama_response"]) == "You said: Is -5 negative"
