"""--bg answers in the background; --map runs a prompt over a list of items."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel_driver import KernelDriver, start_magic_kernel

from ollama_magic.errors import OllamaUsageError
from ollama_magic.testing import FakeOllama, Gate, Reply


def test_map_runs_the_template_per_item(shell, server, capsys):
    shell.user_ns["reviews"] = ["great food", "cold soup", "ok"]
    assert shell.run_cell("%%ollama llama3.2 --map reviews -o labels\nClassify: {item}").success
    labels = shell.user_ns["labels"]
    assert [str(x) for x in labels] == [
        "You said: Classify: great food",
        "You said: Classify: cold soup",
        "You said: Classify: ok",
    ]
    assert labels.answered == 3 and labels.failed == []
    assert "3/3 answered" in capsys.readouterr().out


def test_map_progress_says_rates_and_how_many_each_server_answered(shell, server, capsys):
    shell.user_ns["reviews"] = [f"review {i}" for i in range(6)]
    with FakeOllama(models=("llama3.2",)) as other:
        urls = (server.url, other.url)
        cell = f"%%ollama llama3.2 --map reviews --host {','.join(urls)}\nLabel: {{item}}"
        assert shell.run_cell(cell).success
    labels = shell.user_ns["ollama_response"]
    counts = {url: sum(1 for r in labels if r.host == url) for url in urls}
    assert sum(counts.values()) == 6
    last = capsys.readouterr().out.split("\r")[-1]
    assert "6/6 answered" in last and "items/s" in last and "tokens/s" in last
    for url, count in counts.items():
        if count:
            assert f"{url.split('://')[1]} {count}" in last


def test_map_keeps_going_past_a_failure(shell, server):
    server.enqueue(
        Reply.answer(["one"]), Reply.error(500, "runner crashed"), Reply.answer(["three"])
    )
    shell.user_ns["items"] = [1, 2, 3]
    assert shell.run_cell("%%ollama llama3.2 --map items -o out\n{item}").success
    out = shell.user_ns["out"]
    assert [str(x) for x in out] == ["one", "", "three"]
    assert out.failed == [1] and "runner crashed" in out[1].error.message
    assert "1 failed" in out._repr_markdown_()


def test_map_with_concurrency(shell, server):
    shell.user_ns["xs"] = list(range(6))
    assert shell.run_cell("%%ollama llama3.2 --map xs --concurrency 3 -o ys\nn={item}").success
    assert [str(y) for y in shell.user_ns["ys"]] == [f"You said: n={i}" for i in range(6)]


@pytest.mark.parametrize("value", ["not a list", {"a": 1}, 42])
def test_map_needs_a_sequence(shell, server, value):
    shell.user_ns["bad"] = value
    result = shell.run_cell("%%ollama llama3.2 --map bad\n{item}")
    assert isinstance(result.error_in_exec, OllamaUsageError)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2",)) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(fake: FakeOllama) -> Iterator[KernelDriver]:
    with start_magic_kernel({"OLLAMA_HOST": fake.host}) as driver:
        yield driver


def test_background_answer_lands_in_its_own_cell(kernel, fake):
    fake.reset()
    gate = Gate()
    fake.enqueue(Reply.answer(["first", " then", " the rest"], gate=gate, gate_after=1))
    first = kernel.execute("%%ollama llama3.2 --bg -o later\nTake your time")
    assert first.status == "ok"  # returned while the model is still answering
    cell_id = first.reply["parent_header"]["msg_id"]
    assert kernel.value("later_job.done") is False
    gate.open()
    second = kernel.execute("print(str(later_job.wait(30)))")
    assert second.status == "ok"
    assert "first then the rest" in second.stream_text
    # Everything the background answer sent belongs to the cell that started it.
    late = [m for m in second.messages if m.msg.get("parent_header", {}).get("msg_id") == cell_id]
    assert late and any(m.msg_type == "update_display_data" for m in late)
    assert all(m.content.get("text") != "first then the rest\n" for m in late)
    assert kernel.value("(str(later), later.complete)") == ("first then the rest", True)


def test_background_answer_can_be_cancelled(kernel, fake):
    fake.reset()
    gate = Gate()
    fake.enqueue(Reply.answer(["partial", " never"], gate=gate, gate_after=1))
    assert kernel.execute("%%ollama llama3.2 --bg -o job_answer\nGo").status == "ok"
    try:
        assert gate.wait_reached(10)
        run = kernel.execute("job_answer_job.cancel(); job_answer_job.wait(10)")
        assert run.status == "ok"
        assert fake.wait_for_hangup(timeout=10)
    finally:
        gate.open()
    assert kernel.value("(str(job_answer), job_answer.interrupted, job_answer_job.done)") == (
        "partial",
        True,
        True,
    )
