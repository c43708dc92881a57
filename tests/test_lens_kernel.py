"""--logprobs in a real kernel: what a front end receives while the lens streams, and after."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator

import pytest
import requests
from display_replay import replay
from kernel_driver import Execution, KernelDriver, start_magic_kernel

from ollama_magic.testing import FakeOllama, Reply, Token

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2",)) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(fake: FakeOllama) -> Iterator[KernelDriver]:
    with start_magic_kernel({"OLLAMA_HOST": fake.host}) as driver:
        yield driver


def final_output(run: Execution):
    """The one output that holds the answer as Markdown: what the notebook keeps."""
    (final,) = [m for m in run.outputs if "text/markdown" in m.content["data"]]
    return final


def server_bytes(fake: FakeOllama, reply: Reply, top: int) -> int:
    """The body bytes the server streams for ``reply`` (asked directly, without the kernel)."""
    fake.enqueue(reply)
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "Go."}]}
    body |= {"logprobs": True, "top_logprobs": top}
    return len(requests.post(fake.url + "/api/chat", json=body, timeout=30).content)


def test_lens_streams_in_pieces_then_the_saved_output_is_the_lens(kernel, fake):
    tokens = [f" w{i % 10}" + ("\n" if i % 20 == 19 else "") for i in range(3000)]
    wire = server_bytes(fake, Reply.answer(tokens), 5)
    fake.enqueue(Reply.answer(tokens, delay=0.0005))  # long enough for a few pieces
    run = kernel.execute("%%ollama llama3.2 --logprobs -o lp\nGo.")
    assert run.status == "ok"
    text = "".join(tokens)
    # Plain display outputs only: no widget, so every front end shows the lens.
    assert not any(WIDGET_MIME in m.content["data"] for m in run.outputs)
    assert not run.of_type("comm_open", "comm_msg")
    created = [m.content["transient"]["display_id"] for m in run.of_type("display_data")]
    assert len(created) == len(set(created)) >= 3
    # The end: the first output becomes the lens, every other one becomes empty.
    ending = run.of_type("update_display_data")[-len(created) :]
    assert [m.content["transient"]["display_id"] for m in ending] == created
    assert all(m.content["data"] == {} for m in ending[1:])
    # Before that, frozen pieces above the tail: tinted HTML, each sent once (the last live
    # message to its output, which no earlier one held); together they begin the answer.
    before = replay(run)[-len(created) - 1]
    assert [o["display_id"] for o in before] == created
    pieces = [o["data"]["text/html"] for o in before[:-1]]
    live = run.outputs[: -len(created)]
    for display_id, piece in zip(created, pieces, strict=False):
        to_it = [m for m in live if m.content["transient"]["display_id"] == display_id]
        assert to_it[-1].content["data"]["text/html"] == piece
        assert all(m.content["data"].get("text/html") != piece for m in to_it[:-1])
    shown_text = html.unescape(re.sub(r"<[^>]+>", "", "".join(pieces)))
    assert text.startswith(shown_text) and len(shown_text) > len(text) // 2
    assert "background-color" in pieces[0] and "title=" not in pieces[0]
    # The final output: the lens (HTML), the answer as Markdown and text.
    final = ending[0]
    data = final.content["data"]
    assert data["text/markdown"].startswith(text.rstrip("\n")[:100])
    assert len(re.findall(r"<span[^>]* title=", data["text/html"])) == len(tokens)
    assert "perplexity" in data["text/html"] and "How sure the model was" in data["text/html"]
    assert "text/plain" in data
    # Everything sent to the front end, live and final, is at most what the server streamed.
    assert run.total_bytes <= wire, (run.total_bytes, wire)
    assert kernel.value("len(lp.logprobs)") == len(tokens)


def test_hostile_alternatives_stay_text_live_and_final(kernel, fake):
    hostile = "<img src=x onerror=alert(1)>"
    steps = [Token(hostile, -3.0, ((hostile, -0.2), ("ok", -3.0)))] * 120
    fake.enqueue(Reply.stream(*steps, Reply.done()))
    run = kernel.execute("%%ollama llama3.2 --logprobs 2\nGo.")
    assert run.status == "ok"
    # Everything the front end renders as HTML: the live tail and pieces, the final lens.
    rendered = []
    for m in run.outputs:
        rendered += [m.content["data"].get(k, "") for k in ("text/html", "text/markdown")]
    page = json.dumps(rendered)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    live = [m for m in run.outputs if "text/markdown" not in m.content["data"]]
    assert any("&lt;img src=x" in m.content["data"].get("text/html", "") for m in live)


def test_no_logprobs_from_the_server_shows_the_answer_and_one_line(kernel, fake):
    fake.logprobs = False
    try:
        run = kernel.execute("%%ollama llama3.2 --logprobs\nhello")
    finally:
        fake.logprobs = True
    assert run.status == "ok"
    final = final_output(run)
    markdown = final.content["data"]["text/markdown"]
    assert markdown.startswith("You said: hello") and "no token log-probabilities" in markdown
    assert "text/html" not in final.content["data"]
    # The first text showed at once, before the final output.
    live = [m for m in run.outputs if m is not final]
    assert any("You" in m.content["data"].get("text/html", "") for m in live)


def test_a_slow_stream_also_stays_within_the_servers_bytes(kernel, fake):
    tokens = [f" w{i % 10}" + ("\n" if i % 15 == 14 else "") for i in range(150)]
    wire = server_bytes(fake, Reply.answer(tokens), 5)
    fake.enqueue(Reply.answer(tokens, delay=0.02))  # 50 tokens a second, as a small model
    run = kernel.execute("%%ollama llama3.2 --logprobs\nGo.")
    assert run.status == "ok"
    live = [m for m in run.outputs if m.content["data"].get("text/html", "").endswith("</div>")]
    live = [m for m in live if "text/markdown" not in m.content["data"]]
    assert 5 < len(live) < len(tokens)  # it streamed live, batched
    assert run.total_bytes <= wire, (run.total_bytes, wire)


def test_the_lens_benchmark_runs():
    from benchmarks.lens import render, run_bench

    results = run_bench(tokens=300, repeat=1)
    sent = next(c for c in results["checks"] if c["what"].startswith("bytes"))
    assert sent["value"] <= 1.0 and results["tokens_join_to_text"] is True
    assert results["logprobs_tokens"] == 300 and "bytes per token" in render(results)


def test_a_background_lens_lands_in_its_cell(kernel, fake):
    first = kernel.execute("%%ollama llama3.2 --logprobs 2 --bg -o bgl\nhello")
    assert first.status == "ok"
    second = kernel.execute("bgl_job.wait(10); print(len(bgl.logprobs), bgl_job.error)")
    assert second.stream_text.strip() == "3 None"  # "You", " said:", " hello"
    updates = [m for run in (first, second) for m in run.of_type("update_display_data")]
    (final,) = [m for m in updates if "text/markdown" in m.content["data"]]
    assert final.msg["parent_header"]["msg_id"] == first.reply["parent_header"]["msg_id"]
    assert final.content["data"]["text/markdown"].startswith("You said: hello")
