"""--map over several servers: a shared queue, a failing server rests, nothing is lost."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from kernel_driver import KernelDriver, start_magic_kernel

from ollama_magic.testing import FakeOllama, Gate, Reply


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelDriver]:
    with start_magic_kernel() as driver:
        yield driver


def chats(server: FakeOllama) -> int:
    return sum(1 for r in server.requests if r.path == "/api/chat")


def answers(kernel: KernelDriver, name: str) -> list[tuple[str, bool, str]]:
    return kernel.value(f"[(str(a), a.complete, a.host) for a in {name}]")


def test_items_are_spread_over_every_server(kernel):
    with (
        FakeOllama(default_delay=0.002) as a,
        FakeOllama(default_delay=0.002) as b,
        FakeOllama(default_delay=0.002) as c,
    ):
        kernel.execute("rows = [f'row {i}' for i in range(30)]")
        hosts = ",".join(s.host for s in (a, b, c))
        run = kernel.execute(f"%%ollama llama3.2 --map rows --host {hosts} -q -o out\n{{item}}")
        assert run.status == "ok", run.reply
        got = answers(kernel, "out")
        assert [text for text, _, _ in got] == [f"You said: row {i}" for i in range(30)]
        assert all(complete for _, complete, _ in got)
        shares = Counter(host for _, _, host in got)
        assert set(shares) == {a.url, b.url, c.url}
        assert min(chats(s) for s in (a, b, c)) >= 5  # each takes a fair share of 30


def test_a_server_killed_mid_map_loses_no_item(kernel):
    gate = Gate()
    with FakeOllama() as a, FakeOllama() as b, FakeOllama() as c:
        b.enqueue(Reply.answer(["cut", " off"], gate=gate, gate_after=1))
        b_url = b.url

        def kill_b_mid_answer() -> None:
            if gate.wait_reached(30):
                b.stop()

        killer = threading.Thread(target=kill_b_mid_answer)
        killer.start()
        try:
            kernel.execute("rows = list(range(12))")
            hosts = ",".join(s.host for s in (a, b, c))
            run = kernel.execute(f"%%ollama llama3.2 --map rows --host {hosts} -q -o out\n{{item}}")
        finally:
            gate.open()
            killer.join()
        assert run.status == "ok", run.reply
        got = answers(kernel, "out")
        assert [text for text, _, _ in got] == [f"You said: {i}" for i in range(12)]
        assert all(complete for _, complete, _ in got)
        assert b_url not in {host for _, _, host in got}  # its cut-off answer was asked again


def test_a_server_without_the_model_is_left_out(kernel):
    with FakeOllama(models=("llama3.2",)) as a, FakeOllama(models=("mistral",)) as b:
        kernel.execute("rows = list(range(4))")
        run = kernel.execute(
            f"%%ollama llama3.2 --map rows --host {a.host} --host {b.host} -q -o out\n{{item}}"
        )
        assert run.status == "ok", run.reply
        assert f"{b.url} does not have llama3.2" in run.stream_text
        assert all(complete for _, complete, _ in answers(kernel, "out"))
        assert chats(b) == 0 and chats(a) == 4


def test_one_prompt_goes_to_the_first_server_that_answers(kernel, closed_port):
    with FakeOllama() as a:
        run = kernel.execute(f"%%ollama llama3.2 --host 127.0.0.1:{closed_port},{a.host} -q\nHi")
        assert run.status == "ok", run.reply
        assert kernel.value("(str(ollama_response), ollama_response.host)") == (
            "You said: Hi",
            a.url,
        )


def test_map_over_several_openai_compatible_servers(kernel):
    from ollama_magic.testing_openai import FakeOpenAI

    with FakeOpenAI(models=("llama3.2",)) as a, FakeOpenAI(models=("llama3.2",)) as b:
        kernel.execute("rows = list(range(10))")
        hosts = f"{a.url_v1},{b.url_v1}"
        run = kernel.execute(f"%%ollama llama3.2 --map rows --host {hosts} -q -o out\n{{item}}")
        assert run.status == "ok", run.reply
        got = answers(kernel, "out")
        assert all(complete for _, complete, _ in got) and len(got) == 10
        assert {host for _, _, host in got} == {a.url_v1, b.url_v1}
