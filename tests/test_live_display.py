"""The live view seen by a front end that implements only the Jupyter display protocol.

A real kernel runs the magic against the fake server; its IOPub messages are applied to a cell
the way VS Code, Colab or nbclient apply them (``display_data`` appends, ``update_display_data``
replaces every output with that display id, ``stream`` appends text, ``clear_output`` clears),
and every intermediate state of the cell is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from display_replay import replay, shown
from kernel_driver import Execution, KernelDriver, start_magic_kernel

from ollama_magic.testing import FakeOllama, Gate, Reply


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2", "qwen3:8b"), thinking_models=("qwen3:8b",)) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(fake: FakeOllama) -> Iterator[KernelDriver]:
    with start_magic_kernel({"OLLAMA_HOST": fake.host}) as driver:
        yield driver


@pytest.fixture(autouse=True)
def _fresh_script(fake: FakeOllama) -> Iterator[None]:
    fake.reset()
    yield
    fake.reset()


def final_state_index(run: Execution) -> int:
    """Index (in :func:`replay`'s states) of the update that made the final answer."""
    index = 0
    for message in run.messages:
        kind = message.msg_type
        if kind not in ("display_data", "update_display_data", "stream", "clear_output"):
            continue
        if kind == "update_display_data" and "ollama_magic" in message.content["metadata"]:
            return index
        index += kind != "clear_output"
    raise AssertionError("no final output")


def without_fences(markdown: str) -> str:
    return "\n".join(line for line in markdown.split("\n") if not line.startswith("```"))


def words_of(text: str) -> list[str]:
    return re.findall(r"word\d+", text)


MARKDOWN_ANSWER = (
    "## Plan\n\nThis is **bold** and this is *italic*.\n\n"
    + "".join(f"- item {i} with word{i}\n" for i in range(40))
    + "\n```python\n"
    + "".join(f"print('word{100 + i}')\n" for i in range(120))
    + "```\n\n"
    + " ".join(f"word{300 + i}" for i in range(300))
    + "\n\nThe end.\n"
)


def test_text_grows_live_and_the_final_answer_is_shown_once(kernel, fake):
    tokens = re.findall(r"\s*\S+\s*", MARKDOWN_ANSWER)
    fake.enqueue(Reply.answer(tokens, delay=0.002))
    run = kernel.execute("%%ollama llama3.2\nWrite.")
    assert run.status == "ok"
    states = replay(run)
    expected = words_of(MARKDOWN_ANSWER)
    # Live: many intermediate states, each showing a growing prefix of the answer, in order.
    live_states = states[: final_state_index(run)]
    seen = [words_of(shown(state)) for state in live_states]
    partial = [w for w in seen if 0 < len(w) < len(expected)]
    assert len(partial) >= 5, [len(w) for w in seen]
    for words in partial:
        assert words == expected[: len(words)]
    # Never shrinks, except between the two back-to-back messages that finish a piece and
    # show the text after it in the next output.
    for index, words in enumerate(seen[:-2]):
        assert len(words) <= max(len(seen[index + 1]), len(seen[index + 2]))
    # Final: every word exactly once, in one Markdown output that carries the provenance.
    final = states[-1]
    assert words_of(shown(final)) == expected
    holders = [o for o in final if o["type"] == "display" and "word0" in shown([o])]
    assert len(holders) == 1
    assert holders[0]["data"]["text/markdown"].startswith("## Plan")
    final_update = [
        m
        for m in run.of_type("update_display_data")
        if m.content["transient"]["display_id"] == holders[0]["display_id"]
    ][-1]
    assert final_update.content["metadata"]["ollama_magic"]["model"] == "llama3.2"
    # Completed pieces were already rendered as they are in the final Markdown (no jump).
    final_markdown = holders[0]["data"]["text/markdown"]
    before_end = live_states[-1]
    completed = [o["data"]["text/markdown"] for o in before_end[:-2] if o["type"] == "display"]
    assert completed
    for piece in completed:  # a code block cut in pieces is closed and reopened in each
        assert without_fences(piece).strip() in without_fences(final_markdown)
    # The last output is a quiet footer with the model and the token count.
    footer = final[-1]["data"]["text/plain"]
    assert footer.startswith("llama3.2 · ") and "tokens" in footer


def test_bold_list_and_code_are_markdown_before_the_answer_ends(kernel, fake):
    gate = Gate()
    text = "Intro with **bold**.\n\n- one\n- two\n\n```python\nx = 1\n```\n\nStill writing"
    tokens = [*re.findall(r"\s*\S+\s*", text), " more", " words."]
    fake.enqueue(Reply.answer(tokens, gate=gate, gate_after=len(tokens) - 2))
    seen: list[list[dict[str, Any]]] = []

    def watch(message: Any, run: Execution) -> None:
        if not gate.is_open and "Still writing" in shown((states := replay(run) or [[]])[-1]):
            seen.append(states[-1])
            gate.open()

    run = kernel.execute("%%ollama llama3.2\nWrite.", on_message=watch)
    assert run.status == "ok" and seen
    live = shown(seen[0])
    assert "**bold**" in live and "- one\n- two" in live and "```python\nx = 1\n```" in live
    assert all(o["type"] == "display" for o in seen[0])  # Markdown, not stream text


def test_long_code_block_is_sent_in_bounded_pieces(kernel, fake):
    code = "".join(f"line_{i} = {i} * {i}  # word{i}\n" for i in range(300))
    answer = f"Code:\n\n```python\n{code}```\n"
    fake.enqueue(Reply.answer(re.findall(r"\s*\S+\s*", answer), delay=0.001))
    run = kernel.execute("%%ollama llama3.2\nWrite code.")
    assert run.status == "ok"
    data_bytes = sum(
        len(json.dumps(m.content["data"]))
        for m in run.of_type("display_data", "update_display_data")
    )
    assert data_bytes <= 3 * len(answer.encode()), data_bytes / len(answer)
    final = replay(run)[-1]
    assert words_of(shown(final)) == words_of(answer)


def test_format_json_answer_is_a_json_code_block(kernel, fake):
    fake.enqueue(Reply.answer(['{"a":', " 1,", ' "b": [2, 3]}']))
    run = kernel.execute("%%ollama llama3.2 --format json\nGive JSON.")
    assert run.status == "ok"
    final = replay(run)[-1]
    markdown = [o["data"].get("text/markdown", "") for o in final if "text/markdown" in o["data"]]
    assert any(m.startswith('```json\n{"a": 1, "b": [2, 3]}\n```') for m in markdown), markdown


def test_stop_note_closes_an_open_code_block_and_is_said_once(kernel, fake):
    fake.enqueue(Reply.answer(["Here:\n\n", "```python\n", "x = 1\n"], done_reason="length"))
    run = kernel.execute("%%ollama llama3.2\nCode.")
    final = replay(run)[-1]
    answer = next(o["data"]["text/markdown"] for o in final if "x = 1" in shown([o]))
    assert answer.endswith(
        "x = 1\n```\n\n*cut off at the token limit (done_reason 'length'; raise num_predict)*"
    )


def test_thinking_streams_then_collapses_when_the_answer_starts(kernel, fake):
    fake.enqueue(Reply.answer(["The", " answer."], thinking=["Let", " me", " think."]))
    run = kernel.execute("%%ollama qwen3:8b\nThink.")
    states = replay(run)
    opened = [s for s in states if "<details open><summary>Thinking…" in shown(s)]
    assert opened
    final = shown(states[-1])
    assert "<details><summary>Thought for" in final and "Let me think." in final
    assert final.count("The answer.") == 1


def test_map_keeps_a_table_of_items_and_answers_in_the_cell(kernel, fake):
    for word in ("red", "green", "blue"):
        fake.enqueue(Reply.answer([f"Colour {word}", " is nice."]))
    kernel.execute("colors = ['r', 'g', 'b']")
    run = kernel.execute("%%ollama llama3.2 --map colors -o named\nName {item}")
    assert run.status == "ok"
    final = shown(replay(run)[-1])
    assert final.startswith("**Mapped 3 items** in `named`: 3 answered.")
    assert "| # | item | answer |" in final
    assert final.count("is nice.") == 3


def test_map_summary_after_a_stop_counts_what_was_answered():
    from ollama_magic.result import OllamaResponse
    from ollama_magic.view import map_summary

    results = [OllamaResponse("yes", model="m", done_reason="stop") for _ in range(2)]
    results += [OllamaResponse(model="m", interrupted=True) for _ in range(6)]
    assert map_summary(results, "x").startswith("**Mapped 2 of 8 items** in `x`: stopped")


def test_trace_stays_collapsed_after_the_end_and_is_on_the_result(kernel, fake):
    fake.enqueue(Reply.answer(["short"]))
    run = kernel.execute("%%ollama llama3.2 --trace\nHi")
    assert run.status == "ok"
    final = shown(replay(run)[-1])
    assert "<details><summary>Trace: 2 raw lines</summary>" in final  # collapsed, kept
    assert "&quot;done&quot;:true" in final  # the raw lines, escaped for HTML
    assert final.split("</details>")[1].strip().startswith("short")  # the answer, once
    assert kernel.value("len(ollama_response.trace) >= 2")


def _data_bytes(run: Execution) -> int:
    return sum(
        len(json.dumps(m.content["data"]))
        for m in run.of_type("display_data", "update_display_data")
    )


def test_smooth_updates_re_send_a_long_paragraph_that_lean_updates_hold_back(kernel, fake):
    """``live = 'smooth'`` spends bytes on updates the byte budget of 'lean' would withhold."""
    tokens = [f" word{i:04d}" for i in range(300)]  # one long paragraph, about 3 kB
    spent = {}
    for mode in ("lean", "smooth"):
        fake.enqueue(Reply.answer(tokens, delay=0.01))
        kernel.execute(f"%config OllamaMagics.live = {mode!r}")
        run = kernel.execute("%%ollama llama3.2\nA long paragraph.")
        assert run.status == "ok", run.reply
        assert "word0299" in shown(replay(run)[-1])
        spent[mode] = _data_bytes(run)
    kernel.execute("%config OllamaMagics.live = 'lean'")
    answer = len("".join(tokens))
    assert spent["lean"] < 5 * answer, spent
    assert spent["smooth"] > 2 * spent["lean"], spent
