"""The answer log from a notebook: written while an answer streams, searched with
``%ollama log``, and replayed with ``--cache`` instead of asking the server again."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_driver import KernelDriver, start_magic_kernel

from ollama_magic.testing import FakeOllama, Gate, Reply


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2",)) as server:
        yield server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("answer-log")


@pytest.fixture(scope="module")
def kernel(fake: FakeOllama, home: Path) -> Iterator[KernelDriver]:
    env = {"OLLAMA_HOST": fake.host, "OLLAMA_MAGIC_HOME": str(home)}
    with start_magic_kernel(env) as driver:
        yield driver


def chats(server: FakeOllama) -> int:
    return sum(1 for r in server.requests if r.path == "/api/chat")


def test_cache_replays_an_identical_answer_without_asking(kernel, fake):
    fake.reset()
    fake.enqueue(Reply.answer(["The sky ", "scatters ", "blue light."]))
    assert kernel.execute("%%ollama llama3.2 --cache -o first\nWhy is the sky blue?").status == "ok"
    assert chats(fake) == 1
    fake.reset()
    run = kernel.execute("%%ollama llama3.2 --cache -o again\nWhy is the sky blue?")
    assert run.status == "ok"
    assert chats(fake) == 0  # nothing reached the server
    assert "Replayed from the answer log" in run.stream_text
    assert kernel.value("(str(again), again.complete)") == ("The sky scatters blue light.", True)
    assert kernel.value("'replayed_from' in again.provenance")
    # Another option is another request: it is sent.
    assert kernel.execute("%%ollama llama3.2 --cache -t 0.5\nWhy is the sky blue?").status == "ok"
    assert chats(fake) == 1


def test_log_finds_answers_by_text(kernel, fake):
    fake.reset()
    fake.enqueue(Reply.answer(["Penguins ", "cannot fly."]))
    assert kernel.execute("%%ollama llama3.2\nCan penguins fly?").status == "ok"
    found = kernel.value(
        "[(r.prompt, r.text, r.status) for r in get_ipython().run_line_magic('ollama', "
        "'log penguins')]"
    )
    assert found[0] == ("Can penguins fly?", "Penguins cannot fly.", "complete")


def test_map_with_cache_after_a_stop_asks_only_what_is_missing(kernel, fake):
    fake.reset()
    gate = Gate()
    fake.enqueue(Reply.answer(["A"]), Reply.answer(["B"]), Reply.answer(["C…"], gate=gate))
    kernel.execute("letters = ['a', 'b', 'c', 'd']")

    def stop_at_the_third() -> None:
        if gate.wait_reached(30):
            kernel.km.interrupt_kernel()

    stopper = threading.Thread(target=stop_at_the_third)
    stopper.start()
    cell = "%%ollama llama3.2 --map letters --cache -o up\nUpper-case {item}"
    try:
        first = kernel.execute(cell)
    finally:
        gate.open()
        stopper.join()
    assert first.reply["content"]["ename"] == "Interrupted"
    fake.reset()
    assert kernel.execute(cell).status == "ok"
    asked = [r.json()["messages"][-1]["content"] for r in fake.requests if r.path == "/api/chat"]
    assert asked == ["Upper-case c", "Upper-case d"]
    assert kernel.value("[str(x) for x in up]") == [
        "A",
        "B",
        "You said: Upper-case c",
        "You said: Upper-case d",
    ]


def test_an_answer_streaming_when_the_kernel_is_killed_reads_as_lost(fake, tmp_path):
    env = {"OLLAMA_HOST": fake.host, "OLLAMA_MAGIC_HOME": str(tmp_path)}
    gate = Gate()
    words = [f"word{i} " for i in range(12)]
    fake.reset()
    fake.enqueue(Reply.answer(words, delay=0.25, gate=gate, gate_after=8))
    try:
        with start_magic_kernel(env) as doomed:
            doomed.kc.execute("%%ollama llama3.2\nCount slowly.")
            assert gate.wait_reached(60)
            doomed.km.signal_kernel(signal.SIGKILL)  # nothing in the kernel runs after this
            doomed.km.provisioner.process.wait(timeout=30)
    finally:
        gate.open()
    with start_magic_kernel(env) as kernel:
        records = kernel.value(
            "[(r.status, r.text) for r in get_ipython().run_line_magic('ollama', 'log')]"
        )
    status, text = records[0]
    assert status == "lost"
    assert text and "".join(words).startswith(text)  # what was flushed, at most a second behind
    assert len(text) >= len("".join(words[:4]))


def test_log_files_are_private(kernel, home):
    assert kernel.execute("%%ollama llama3.2\nHi").status == "ok"
    assert home.stat().st_mode & 0o777 == 0o700
    files = list(home.iterdir())
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
