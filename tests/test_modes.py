"""Every mode is one streaming loop composed differently: each option combination either works
in every mode or is refused up front in one line, and what one mode records, all record."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kernel_driver import KernelDriver, start_magic_kernel

from ollama_magic.errors import OllamaUsageError
from ollama_magic.testing import FakeOllama, Gate, Reply


def chat_requests(server: FakeOllama) -> list[dict]:
    return [r.json() for r in server.requests if r.path == "/api/chat"]


@pytest.mark.parametrize(
    "line",
    [
        "llama3.2 qwen3:8b --trace",
        "llama3.2 --map xs --trace",
        "llama3.2 --map xs --chat c",
        "llama3.2 qwen3:8b --map xs",
        "llama3.2 qwen3:8b --chat",
        "llama3.2 --concurrency 3",
        "llama3.2 --map xs --concurrency 0",
        "llama3.2 --trace -q",
        "llama3.2 --dry-run --bg",
        "llama3.2 --dry-run --pull",
        "llama3.2 --think --no-think",
        "llama3.2 --chat c --no-chat",
        "llama3.2 llama3.2",
    ],
)
def test_combinations_that_cannot_work_are_refused_before_sending(shell, server, line):
    shell.user_ns["xs"] = [1, 2]
    server.reset()
    result = shell.run_cell(f"%%ollama {line}\nHi {{item}}")
    error = result.error_in_exec
    assert isinstance(error, OllamaUsageError), line
    assert "\n" not in error.message and len(error.message) < 200
    assert chat_requests(server) == []
    assert shell.user_ns["ollama_response"].error is error  # never a previous answer


def test_compare_in_the_background_returns_a_job(shell, server):
    result = shell.run_cell("%%ollama llama3.2 qwen3:8b --no-think --bg -o answers\nHi")
    assert result.success
    job = shell.user_ns["answers_job"]
    answers = job.wait(30)
    assert job.done and job.error is None
    assert {m: str(a) for m, a in answers.items()} == {
        "llama3.2": "You said: Hi",
        "qwen3:8b": "You said: Hi",
    }
    assert shell.user_ns["answers"] is answers


def test_map_in_the_background_returns_a_job(shell, server):
    shell.user_ns["xs"] = ["a", "b", "c"]
    assert shell.run_cell("%%ollama llama3.2 --map xs --bg -o ys\nSay {item}").success
    ys = shell.user_ns["ys_job"].wait(30)
    assert [str(y) for y in ys] == ["You said: Say a", "You said: Say b", "You said: Say c"]


def test_compare_and_map_answers_carry_the_model_digest(shell, server):
    tags = {m["name"]: m["digest"] for m in server_tags(server)}
    assert shell.run_cell("%%ollama llama3.2 qwen3:8b --no-think -o answers\nHi").success
    for model, answer in shell.user_ns["answers"].items():
        assert answer.provenance["digest"] == tags[f"{model}:latest" if ":" not in model else model]
    shell.user_ns["xs"] = [1, 2]
    assert shell.run_cell("%%ollama llama3.2 --map xs -o ys\n{item}").success
    for answer in shell.user_ns["ys"]:
        assert answer.provenance["digest"] == tags["llama3.2:latest"]
        assert answer.provenance["model"] == "llama3.2"


def server_tags(server: FakeOllama) -> list[dict]:
    import json
    import urllib.request

    with urllib.request.urlopen(server.url + "/api/tags", timeout=10) as response:
        return json.load(response)["models"]


def test_background_chat_turn_is_keyed_when_the_cell_ran(shell, server):
    """Without cell ids the key is In[n] of the asking cell, not of a cell run meanwhile."""
    gate = Gate()
    server.enqueue(Reply.answer(["noted"], gate=gate, gate_after=0))
    asked_in = shell.execution_count
    cell = "%%ollama llama3.2 --bg --chat keyed -o a\nRemember 7."
    assert shell.run_cell(cell, store_history=True).success
    assert shell.run_cell("x = 1", store_history=True).success
    gate.open()
    assert str(shell.user_ns["a_job"].wait(30)) == "noted"
    exchanges = shell.run_line_magic("ollama", "history keyed").exchanges
    assert [e.key for e in exchanges] == [f"In[{asked_in}]"]


def test_dry_run_of_a_comparison_shows_each_request(shell, server, capsys):
    server.reset()
    assert shell.run_cell("%%ollama llama3.2 qwen3:8b --dry-run\nHi").success
    out = capsys.readouterr().out
    assert out.count("/api/chat") >= 2 and '"qwen3:8b"' in out and '"llama3.2"' in out
    assert chat_requests(server) == []


# -- in a real kernel ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2",)) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(fake: FakeOllama) -> Iterator[KernelDriver]:
    with start_magic_kernel({"OLLAMA_HOST": fake.host}) as driver:
        yield driver


def test_background_chat_turn_belongs_to_the_cell_that_asked(kernel, fake):
    """Re-running a --bg --chat cell replaces its turn, even when other cells ran meanwhile."""
    fake.reset()
    kernel.execute("%ollama reset bgchat")
    gate = Gate()
    fake.enqueue(Reply.answer(["first"], gate=gate, gate_after=0))
    cell = "%%ollama llama3.2 --bg --chat bgchat -o a\nRemember 7."
    assert kernel.execute(cell, cell_id="asking-cell").status == "ok"
    assert kernel.execute("x = 1", cell_id="another-cell").status == "ok"
    gate.open()
    assert kernel.execute("_ = a_job.wait(30)").status == "ok"  # its output is the job's own
    assert kernel.value("str(a)") == "first"
    assert kernel.execute(cell, cell_id="asking-cell").status == "ok"
    assert kernel.execute("_ = a_job.wait(30)").status == "ok"
    assert kernel.value("str(a)") == "You said: Remember 7."
    history = kernel.value(
        "[(e.key, e.answer) for e in get_ipython().run_line_magic('ollama', 'history bgchat')"
        ".exchanges]"
    )
    assert history == [("cell:asking-cell", "You said: Remember 7.")]


def test_stop_during_map_keeps_the_answers_so_far(kernel, fake):
    fake.reset()
    gate = Gate()
    fake.enqueue(Reply.answer(["one"]), Reply.answer(["two", " never"], gate=gate, gate_after=1))
    kernel.execute("items = ['a', 'b', 'c', 'd']")

    def stop_when_second_item_streams() -> None:
        if gate.wait_reached(30):
            kernel.km.interrupt_kernel()

    stopper = threading.Thread(target=stop_when_second_item_streams)
    stopper.start()
    try:
        run = kernel.execute("%%ollama llama3.2 --map items -o labels\n{item}")
    finally:
        gate.open()
        stopper.join()
    assert run.reply["content"]["ename"] == "Interrupted"
    assert "1 of 4" in run.reply["content"]["evalue"]
    state = kernel.value("[(str(x), x.complete, x.interrupted) for x in labels]")
    assert state[0] == ("one", True, False)
    assert state[1] == ("two", False, True)
    assert state[2:] == [("", False, True), ("", False, True)]
    assert kernel.execute("%%ollama llama3.2\nStill there?").status == "ok"
