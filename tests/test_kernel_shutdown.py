"""A kernel restart in the middle of an answer, in a real kernel.

The kernel is told to shut down while the fake server holds the answer at a gate. What the
cell shows when the kernel has gone (what a notebook saves) must be the text that arrived,
ending with a note that the kernel stopped, and no status line frozen mid-answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from display_replay import replay, shown
from kernel_driver import Execution, KernelDriver, Received, start_magic_kernel

from ollama_magic.testing import FakeOllama, Gate, Reply


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2",)) as server:
        yield server


def _messages_until(driver: KernelDriver, done, timeout: float = 60.0) -> list[Received]:
    """IOPub messages, until ``done(messages)`` holds."""
    got: list[Received] = []
    deadline = time.monotonic() + timeout
    while not done(got):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {len(got)} messages")
        message = driver._recv(0.5)
        if message is not None:
            got.append(message)
    return got


def _shows(messages: list[Received], text: str) -> bool:
    states = replay(Execution("", 0.0, messages=list(messages)))
    return bool(states) and text in shown(states[-1])


@pytest.mark.parametrize("mode", ["answer", "background"])
def test_restart_mid_answer_leaves_the_partial_text_and_says_the_kernel_stopped(fake, mode):
    gate = Gate()
    fake.enqueue(
        Reply.stream(
            Reply.token("Here is **the first** part."),
            Reply.token("\n\nAnd a second"),
            gate,
            Reply.token(" part that never comes."),
            Reply.done(),
        )
    )
    flags = " --bg" if mode == "background" else ""
    driver = start_magic_kernel({"OLLAMA_HOST": fake.host})
    try:
        driver.kc.execute(f"%%ollama llama3.2{flags}\nWrite two parts.")
        assert gate.wait_reached(timeout=30)
        before = _messages_until(driver, lambda got: _shows(got, "And a second"))
        restart = threading.Thread(target=driver.km.restart_kernel, kwargs={"now": False})
        restart.start()
        after = _messages_until(
            driver, lambda got: any(m.msg_type == "shutdown_reply" for m in got)
        )
        restart.join(timeout=60)
    finally:
        gate.open()
        driver.close()
    final = shown(replay(Execution("", 0.0, messages=before + after))[-1])
    assert "Here is **the first** part." in final
    assert "And a second" in final
    assert "the kernel stopped (kernel shutdown for a restart) before the answer ended" in final
    assert "never comes" not in final
    assert "answering" not in final and "waiting for the server" not in final


def _restart_when_shown(driver: KernelDriver, text: str) -> str:
    """Restart the kernel once ``text`` is on screen; what the cell shows when it has gone."""
    before = _messages_until(driver, lambda got: _shows(got, text))
    restart = threading.Thread(target=driver.km.restart_kernel, kwargs={"now": False})
    restart.start()
    after = _messages_until(driver, lambda got: any(m.msg_type == "shutdown_reply" for m in got))
    restart.join(timeout=60)
    return shown(replay(Execution("", 0.0, messages=before + after))[-1])


@pytest.mark.parametrize("flags", ["", " --bg"])
def test_restart_mid_comparison_says_the_kernel_stopped_each_answer(flags):
    gates = [Gate(), Gate()]
    with FakeOllama(models=("llama3.2", "mistral")) as fake:
        fake.enqueue(
            *(
                Reply.stream(Reply.token(f"Answer {n} begins."), gate, Reply.token(" never"))
                for n, gate in enumerate(gates)
            )
        )
        driver = start_magic_kernel({"OLLAMA_HOST": fake.host})
        try:
            driver.kc.execute(f"%%ollama llama3.2 mistral{flags}\nCompare.")
            assert all(gate.wait_reached(timeout=30) for gate in gates)
            final = _restart_when_shown(driver, "Answer 1 begins.")
        finally:
            for gate in gates:
                gate.open()
            driver.close()
    assert "Answer 0 begins." in final and "Answer 1 begins." in final
    assert final.count("the kernel stopped (kernel shutdown for a restart)") == 2
    assert "never" not in final and "answering" not in final


@pytest.mark.parametrize("flags", ["", " --bg"])
def test_restart_mid_map_says_the_kernel_stopped(fake, flags):
    gate = Gate()
    fake.enqueue(Reply.stream(Reply.token("First item answer."), gate, Reply.token(" never")))
    driver = start_magic_kernel({"OLLAMA_HOST": fake.host})
    try:
        driver.kc.execute("items = ['a', 'b', 'c']")
        driver.kc.execute(f"%%ollama llama3.2 --map items{flags}\nSay {{item}}.")
        assert gate.wait_reached(timeout=30)
        final = _restart_when_shown(driver, "0/3 answered")
    finally:
        gate.open()
        driver.close()
    assert "Mapped 0 of 3 items" in final
    assert "the kernel stopped (kernel shutdown for a restart)" in final
    assert "never" not in final
