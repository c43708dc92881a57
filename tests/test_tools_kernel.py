"""``--tools`` in a real kernel against the test server: what is sent, what runs, what is shown.

The server is scripted to ask for calls (tests/tool_replies.py); the notebook functions log
their calls into a list in the kernel, so "it ran with these arguments" is read from there,
and "the result went back" from the next request the server received.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_driver import Execution, KernelDriver, start_magic_kernel
from tool_replies import ollama_calls, openai_calls

from ollama_magic.testing import Reply
from ollama_magic.testing_openai import FakeOpenAI

TOOLS = '''
import threading
from typing import Literal

calls = []

def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    """Current weather for a city.

    Args:
        city: the city name, e.g. "Paris"
        unit: C or F
    """
    calls.append(("get_weather", city, unit))
    if city == "Atlantis":
        raise ValueError("no such city")
    return f"sunny, 21 {unit}"

def big_table(rows: int) -> list:
    """Many rows."""
    calls.append(("big_table", rows))
    return [{"row": n, "text": "x" * 40} for n in range(rows)]
'''


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    """Serves Ollama's API and, under /v1, the OpenAI-compatible one."""
    with FakeOpenAI(models=("llama3.2",)) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(fake: FakeOpenAI) -> Iterator[KernelDriver]:
    with start_magic_kernel({"OLLAMA_HOST": fake.host}) as driver:
        assert driver.execute(TOOLS).status == "ok"
        yield driver


@pytest.fixture
def server(fake: FakeOpenAI, kernel: KernelDriver) -> FakeOpenAI:
    fake.reset()
    assert kernel.execute("calls.clear()").status == "ok"
    return fake


def chat_bodies(server: FakeOpenAI) -> list[dict]:
    paths = ("/api/chat", "/v1/chat/completions")
    return [r.json() for r in server.requests if r.path in paths]


def shown_calls(run: Execution) -> list[str]:
    """The call trace as the notebook keeps it: the last Markdown of each trace output."""
    shown: dict[str, str] = {}
    for message in run.outputs:
        data = message.content.get("data", {})
        markdown = data.get("text/markdown", "")
        if "▸ " in markdown:
            key = message.content.get("transient", {}).get("display_id") or str(len(shown))
            shown[key] = markdown
    return list(shown.values())


def first_index(run: Execution, predicate) -> int:
    return next(i for i, m in enumerate(run.messages) if predicate(m))


def is_footer(output) -> bool:
    """The quiet line under a finished answer (model, time, tokens), or no Markdown at all."""
    markdown = output.get("data", {}).get("text/markdown")
    return markdown is None or markdown.startswith("<small>")


WEATHER_SCHEMA = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": 'the city name, e.g. "Paris"'},
                "unit": {
                    "type": "string",
                    "enum": ["C", "F"],
                    "description": "C or F",
                    "default": "C",
                },
            },
            "required": ["city"],
        },
    },
}


def test_schema_sent_call_run_result_sent_back_answer_stored_and_trace_shown(kernel, server):
    server.enqueue(ollama_calls(("get_weather", {"city": "Paris", "unit": "C"}, "call_7")))
    server.enqueue(Reply.answer(["No umbrella ", "needed."]))
    run = kernel.execute(
        "%%ollama llama3.2 --tools get_weather -o umbrella\nShould I take an umbrella in Paris?"
    )
    assert run.status == "ok", run.reply
    first, second = chat_bodies(server)
    assert first["tools"] == [WEATHER_SCHEMA]
    assert kernel.value("calls") == [("get_weather", "Paris", "C")]
    assert second["messages"][-2:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "function": {
                        "name": "get_weather",
                        "arguments": {"city": "Paris", "unit": "C"},
                    },
                    "id": "call_7",
                }
            ],
        },
        {
            "role": "tool",
            "content": "sunny, 21 C",
            "tool_name": "get_weather",
            "tool_call_id": "call_7",
        },
    ]
    assert second["tools"] == [WEATHER_SCHEMA]
    assert kernel.value("(str(umbrella), umbrella.complete)") == ("No umbrella needed.", True)
    assert kernel.value(
        "[(c.name, c.arguments, c.result, c.error, c.seconds >= 0) for c in umbrella.tool_calls]"
    ) == [("get_weather", {"city": "Paris", "unit": "C"}, "sunny, 21 C", None, True)]
    # Shown as it happened, in an output of its own that comes before the answer's view (so
    # the final answer, which replaces that view, does not take the trace with it).
    (trace,) = shown_calls(run)
    assert 'get_weather(city="Paris", unit="C")' in trace and "→ sunny, 21 C" in trace
    running = first_index(run, lambda m: "… running" in json.dumps(m.content, ensure_ascii=False))
    answer = first_index(run, lambda m: "No umbrella" in json.dumps(m.content))
    assert running < answer
    final = [m for m in run.outputs if "No umbrella needed." in json.dumps(m.content)]
    assert final and final[-1].msg_type == "update_display_data"


def test_parallel_calls_unknown_name_not_run_exception_sent_back_and_trace_escaped(kernel, server):
    attack = "<img src=x onerror=alert(1)>```\n<script>alert(2)</script>"
    server.enqueue(
        ollama_calls(
            ("get_weather", {"city": "Paris"}),
            ("get_weather", {"city": "Atlantis"}),
            ("os_system", {"command": attack}),
        )
    )
    server.enqueue(Reply.answer("Paris is sunny."))
    run = kernel.execute("%%ollama llama3.2 --tools get_weather -o out\nWeather?")
    assert run.status == "ok", run.reply
    # Both get_weather calls ran, in order; the unknown name never did.
    assert kernel.value("calls") == [
        ("get_weather", "Paris", "C"),
        ("get_weather", "Atlantis", "C"),
    ]
    results = [m for m in chat_bodies(server)[1]["messages"] if m["role"] == "tool"]
    assert results == [
        {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"},
        {"role": "tool", "content": "Error: ValueError: no such city", "tool_name": "get_weather"},
        {
            "role": "tool",
            "content": "Error: there is no tool named 'os_system'. The tools are: get_weather.",
            "tool_name": "os_system",
        },
    ]
    assert kernel.value("[(c.name, c.ran) for c in out.tool_calls]") == [
        ("get_weather", True),
        ("get_weather", True),
        ("os_system", False),
    ]
    traces = shown_calls(run)
    assert len(traces) == 3
    assert "✗ Error: ValueError: no such city" in traces[1]
    # The untrusted arguments stay inside one code fence that nothing in them can close.
    fence, *body, closing = traces[2].splitlines()
    assert re.fullmatch(r"(`{4,})text", fence) and closing == fence[:-4]
    assert not any(line.startswith(closing) for line in body)
    assert "<img src=x onerror=alert(1)>" in traces[2]


def test_results_are_bounded_with_a_note(kernel, server):
    server.enqueue(ollama_calls(("big_table", {"rows": 1000})))
    server.enqueue(Reply.answer("Many rows."))
    run = kernel.execute("%%ollama llama3.2 --tools big_table -o out\nRows?")
    assert run.status == "ok", run.reply
    (sent,) = [m for m in chat_bodies(server)[1]["messages"] if m["role"] == "tool"]
    assert len(sent["content"]) < 8100
    assert re.search(r"… \[[\d,]+ more characters cut\]$", sent["content"])
    (trace,) = shown_calls(run)
    assert len(trace) < 1000
    assert "characters in all: out.tool_calls[0].result]" in trace


def test_the_round_limit_ends_a_model_that_keeps_calling(kernel, server):
    for n in range(3):
        server.enqueue(ollama_calls(("get_weather", {"city": f"City{n}"})))
    run = kernel.execute("%%ollama llama3.2 --tools get_weather --max-tool-rounds 2 -o out\nLoop.")
    assert run.status == "error"
    assert run.reply["content"]["ename"] == "ToolLoopError"
    assert "after 2 rounds" in run.reply["content"]["evalue"]
    assert "--max-tool-rounds" in run.reply["content"]["evalue"]
    assert len(chat_bodies(server)) == 3
    assert kernel.value("calls") == [("get_weather", "City0", "C"), ("get_weather", "City1", "C")]
    assert kernel.value("len(out.tool_calls)") == 2


def test_the_stop_button_ends_a_slow_tool_at_once(kernel, server, tmp_path: Path):
    started = tmp_path / "started"
    setup = kernel.execute(
        "def slow_lookup(query: str) -> str:\n"
        '    """Waits for a result that never comes."""\n'
        f"    open({str(started)!r}, 'w').close()\n"
        "    threading.Event().wait()\n"
    )
    assert setup.status == "ok"
    server.enqueue(ollama_calls(("slow_lookup", {"query": "pi"}, "c1")))
    server.enqueue(Reply.answer("never asked"))
    runs: list[Execution] = []
    worker = threading.Thread(
        target=lambda: runs.append(
            kernel.execute("%%ollama llama3.2 --tools slow_lookup -o out\nLook up pi.")
        )
    )
    worker.start()
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the tool never started"
        worker.join(0.05)
    kernel.km.interrupt_kernel()
    worker.join(30)
    assert not worker.is_alive()
    (run,) = runs
    assert run.status == "error"
    assert "Stopped during a tool call" in run.reply["content"]["evalue"]
    assert len(chat_bodies(server)) == 1  # the loop ended: no next round
    assert kernel.value("(out.tool_calls[0].error, out.interrupted)") == (
        "Error: stopped by the user.",
        True,
    )
    assert "✗ Error: stopped by the user." in shown_calls(run)[0]
    assert kernel.execute("1 + 1").status == "ok"


def _answer_prompts(kernel: KernelDriver, answers: list[str], prompts: list[str]) -> None:
    """Answer the kernel's input requests (the front end's input box) in order."""
    for answer in answers:
        request = kernel.kc.stdin_channel.get_msg(timeout=30)
        assert request["msg_type"] == "input_request"
        prompts.append(request["content"]["prompt"])
        kernel.kc.input(answer)


def test_confirm_asks_before_each_call_yes_runs_no_declines(kernel, server):
    server.enqueue(
        ollama_calls(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"}))
    )
    server.enqueue(Reply.answer("Paris is sunny."))
    prompts: list[str] = []
    answering = threading.Thread(target=_answer_prompts, args=(kernel, ["y", "n"], prompts))
    answering.start()
    run = kernel.execute("%%ollama llama3.2 --tools get_weather --confirm -o out\nWeather?")
    answering.join(30)
    assert run.status == "ok", run.reply
    assert prompts == [
        'Run get_weather({"city": "Paris"})? [y/N] ',
        'Run get_weather({"city": "Oslo"})? [y/N] ',
    ]
    assert kernel.value("calls") == [("get_weather", "Paris", "C")]
    results = [m["content"] for m in chat_bodies(server)[1]["messages"] if m["role"] == "tool"]
    assert results == ["sunny, 21 C", "Error: the user declined this call."]


def test_confirm_without_an_input_box_runs_nothing(kernel, server):
    server.enqueue(ollama_calls(("get_weather", {"city": "Paris"})))
    # As nbclient runs a notebook: allow_stdin is false (the cell_id path of the driver).
    run = kernel.execute(
        "%%ollama llama3.2 --tools get_weather --confirm -o out\nWeather?", cell_id="c-1"
    )
    assert run.status == "error"
    assert "--confirm needs a front end that can ask" in run.reply["content"]["evalue"]
    assert kernel.value("calls") == []
    assert len(chat_bodies(server)) == 1


def test_calls_are_part_of_the_conversation(kernel, server):
    server.enqueue(ollama_calls(("get_weather", {"city": "Paris"}, "c9")))
    server.enqueue(Reply.answer("Sunny."))
    server.enqueue(Reply.answer("It was 21 C."))
    first = kernel.execute("%%ollama llama3.2 --tools get_weather --chat trip\nWeather in Paris?")
    assert first.status == "ok", first.reply
    second = kernel.execute("%%ollama llama3.2 --chat trip\nHow warm was it?")
    assert second.status == "ok", second.reply
    messages = chat_bodies(server)[2]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[2]["content"] == "sunny, 21 C" and messages[2]["tool_call_id"] == "c9"


def test_openai_compatible_server_fragments_are_joined_over_http(kernel, server):
    server.enqueue(
        openai_calls(
            ("get_weather", {"city": "Paris", "unit": "F"}, "call_a"),
            ("get_weather", {"city": "Oslo"}, "call_b"),
        )
    )
    server.enqueue(Reply.answer("Both are fine."))
    run = kernel.execute(
        f"%%ollama llama3.2 --host {server.url_v1} --tools get_weather -o out\nWeather?"
    )
    assert run.status == "ok", run.reply
    first, second = chat_bodies(server)
    assert first["tools"] == [WEATHER_SCHEMA]
    assert kernel.value("calls") == [("get_weather", "Paris", "F"), ("get_weather", "Oslo", "C")]
    assert second["messages"][-3:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris", "unit": "F"}',
                    },
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "content": "sunny, 21 F", "tool_call_id": "call_a"},
        {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_b"},
    ]
    assert kernel.value("str(out)") == "Both are fine."


def test_a_name_that_is_not_a_notebook_function_is_refused_before_sending(kernel, server):
    run = kernel.execute("%%ollama llama3.2 --tools get_wether\nWeather?")
    assert run.status == "error"
    assert "--tools get_wether" in run.reply["content"]["evalue"]
    assert chat_bodies(server) == []


def test_calls_after_text_of_the_same_turn_are_kept_after_the_answer(kernel, server):
    """The model wrote before asking: the calls were shown inside the open answer view, which
    the final answer replaces, so they are shown again after it, in an output that stays."""
    server.enqueue(ollama_calls(("get_weather", {"city": "Paris"}), text="Let me check. "))
    server.enqueue(Reply.answer("Sunny."))
    run = kernel.execute("%%ollama llama3.2 --tools get_weather -o out\nWeather?")
    assert run.status == "ok", run.reply
    final = first_index(
        run, lambda m: m.msg_type == "update_display_data" and "Sunny." in str(m.content)
    )
    kept = [
        m
        for m in run.messages[final + 1 :]
        if m.msg_type == "display_data" and "Tool calls of this answer" in str(m.content)
    ]
    assert len(kept) == 1
    markdown = kept[0].content["data"]["text/markdown"]
    assert 'get_weather(city="Paris")' in markdown and "→ sunny, 21 C" in markdown
    assert kernel.value("str(out)") == "Sunny."


# -- the example notebook ------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_tools_example_runs_against_the_test_server(tmp_path: Path):
    import os
    import subprocess
    import sys

    import nbformat

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "tools.out.ipynb"
    with FakeOpenAI(models=("llama3.2",)) as fake:
        fake.enqueue(ollama_calls(("get_weather", {"city": "Paris"}, "call_1")))
        fake.enqueue(Reply.answer("Yes: rain and 14 °C in Paris."))
        proc = subprocess.run(
            [sys.executable, "-m", "ollama_magic", "run", "examples/tools.ipynb", "-o", str(out)],
            env={**os.environ, "OLLAMA_HOST": fake.host, "OLLAMA_MAGIC_MODEL": "llama3.2"},
            capture_output=True,
            text=True,
            timeout=240,
            cwd=repo,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        first, second = chat_bodies(fake)
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][-1] == {
        "role": "tool",
        "content": '{"city": "Paris", "sky": "rain", "temperature": 14, "unit": "C"}',
        "tool_name": "get_weather",
        "tool_call_id": "call_1",
    }
    nb = nbformat.read(out, as_version=4)
    ask = next(c for c in nb.cells if c.source.startswith("%%ollama --tools"))
    shown = [o["data"]["text/markdown"] for o in ask.outputs if not is_footer(o)]
    assert 'get_weather(city="Paris")' in shown[0] and shown[-1].startswith("Yes: rain")
    listing = next(c for c in nb.cells if c.source.startswith("for call in"))
    assert "".join(o.get("text", "") for o in listing.outputs) == (
        "get_weather {'city': 'Paris'} → "
        '{"city": "Paris", "sky": "rain", "temperature": 14, "unit": "C"}\n'
    )


def test_tools_in_the_background(kernel, server):
    server.enqueue(ollama_calls(("get_weather", {"city": "Oslo"}, "b1")))
    server.enqueue(Reply.answer("Sunny in Oslo."))
    run = kernel.execute("%%ollama llama3.2 --tools get_weather --bg -o later\nWeather?")
    assert run.status == "ok", run.reply
    assert kernel.execute("_ = later_job.wait(30)").status == "ok"
    assert kernel.value("str(later)") == "Sunny in Oslo."
    assert kernel.value("calls") == [("get_weather", "Oslo", "C")]
    assert kernel.value("[c.result for c in later.tool_calls]") == ["sunny, 21 C"]


def test_cache_does_not_replay_a_tools_answer(kernel, server):
    for _ in range(2):
        server.enqueue(ollama_calls(("get_weather", {"city": "Rome"})))
        server.enqueue(Reply.answer("Sunny in Rome."))
    cell = "%%ollama llama3.2 --tools get_weather --cache -o cached\nWeather in Rome?"
    assert kernel.execute(cell).status == "ok"
    again = kernel.execute(cell)
    assert again.status == "ok", again.reply
    assert "asked again" in again.stream_text
    assert kernel.value("str(cached)") == "Sunny in Rome."
    assert kernel.value("calls") == [("get_weather", "Rome", "C")] * 2
    assert len(chat_bodies(server)) == 4
