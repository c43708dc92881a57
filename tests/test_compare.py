"""Comparing models side by side: %%ollama m1 m2 streams both answers at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from display_replay import replay, shown, shown_text
from kernel_driver import KernelDriver, Received, start_magic_kernel

from ollama_magic.errors import CompareError, Interrupted, ModelNotFoundError, OllamaUsageError
from ollama_magic.result import OllamaResponse
from ollama_magic.testing import FakeOllama, Gate, Reply

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_compare_in_shell_maps_models_to_answers(shell, server, capsys):
    result = shell.run_cell("%%ollama llama3.2 qwen3:8b --no-think --out answers\nSay hi")
    assert result.success
    answers = shell.user_ns["answers"]
    assert list(answers) == ["llama3.2", "qwen3:8b"]
    for model, answer in answers.items():
        assert isinstance(answer, OllamaResponse) and answer.complete
        assert answer == "You said: Say hi" and answer.model == model
    chats = [r.json() for r in server.requests if r.path == "/api/chat"]
    assert sorted(c["model"] for c in chats) == ["llama3.2", "qwen3:8b"]
    out = capsys.readouterr().out
    assert "── llama3.2 ──" in out and "── qwen3:8b ──" in out
    assert "#### llama3.2" in answers._repr_markdown_()


def test_one_failing_model_keeps_the_others(shell, server):
    # Only qwen3:8b can think: llama3.2 fails with the server's 400, qwen3:8b answers.
    result = shell.run_cell("%%ollama llama3.2 qwen3:8b --think -o answers\nHi")
    assert isinstance(result.error_in_exec, CompareError)
    assert "1 of 2 models failed" in str(result.error_in_exec)
    answers = shell.user_ns["answers"]
    assert answers["qwen3:8b"] == "You said: Hi" and answers["qwen3:8b"].complete
    assert answers["llama3.2"].error is not None


def test_unknown_model_is_refused_before_anything_is_sent(shell, server):
    server.reset()
    result = shell.run_cell("%%ollama llama3.2 llama3.3 -o answers\nHi")
    error = result.error_in_exec
    assert isinstance(error, ModelNotFoundError)
    assert "'llama3.3'" in error.message and "Did you mean llama3.2?" in error.message
    assert not [r for r in server.requests if r.path == "/api/chat"]


def test_compare_rejects_duplicates_and_conversations(shell, server):
    for line in ("llama3.2 llama3.2", "llama3.2 qwen3:8b --chat"):
        result = shell.run_cell(f"%%ollama {line}\nHi")
        assert isinstance(result.error_in_exec, OllamaUsageError)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2", "mistral")) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(fake: FakeOllama) -> Iterator[KernelDriver]:
    with start_magic_kernel({"OLLAMA_HOST": fake.host}) as driver:
        yield driver


def test_compare_streams_markdown_sections_then_one_final_output(kernel, fake):
    fake.reset()
    fake.enqueue(
        Reply.answer(["**bold**", *[" a"] * 200], delay=0.002),
        Reply.answer(["**bold**", *[" b"] * 200], delay=0.002),
    )
    run = kernel.execute("%%ollama llama3.2 mistral -o answers\nGo")
    assert run.status == "ok"
    states = replay(run)
    # Live: both sections render Markdown (bold) while their text grows, without a widget.
    live = [shown(s) for s in states[:-3]]
    assert any("**bold** a a" in text and "**bold** b" in text for text in live)
    assert any(text.count(" a") < 200 for text in live if "**bold** a" in text)
    assert "waiting for the server…" in shown(states[0])
    # Final: one output holds both sections; the others are empty.
    final_state = states[-1]
    holders = [o for o in final_state if "#### " in shown([o])]
    assert len(holders) == 1
    final = [m for m in run.of_type("update_display_data") if m.content["metadata"]][-1].content
    assert WIDGET_MIME not in final["data"]
    markdown = final["data"]["text/markdown"]
    assert "#### llama3.2" in markdown and "#### mistral" in markdown
    assert set(final["metadata"]["ollama_magic"]) == {"llama3.2", "mistral"}
    assert kernel.value("sorted(answers)") == ["llama3.2", "mistral"]


def test_interrupt_stops_every_model_and_keeps_partials(kernel, fake):
    fake.reset()
    gate_a, gate_b = Gate(), Gate()
    fake.enqueue(
        Reply.answer(["one", " two"], gate=gate_a, gate_after=1),
        Reply.answer(["uno", " dos"], gate=gate_b, gate_after=1),
    )
    sent: list[bool] = []

    def on_message(msg: Received, run) -> None:
        text = shown_text(run)
        if not sent and "one" in text and "uno" in text:
            sent.append(True)
            kernel.km.interrupt_kernel()

    try:
        run = kernel.execute("%%ollama llama3.2 mistral -o answers\nGo", on_message=on_message)
    finally:
        gate_a.open()
        gate_b.open()
    assert run.reply["content"]["ename"] == Interrupted.__name__
    assert fake.wait_for_hangup(count=2, timeout=10)
    # Both requests race to the server, so either model may have got either script.
    partial = "sorted((str(a), a.interrupted) for a in answers.values())"
    assert kernel.value(partial) == [("one", True), ("uno", True)]
    fake.enqueue(Reply.answer(["next"]))
    assert kernel.execute("%%ollama llama3.2\nAgain").status == "ok"
