"""The HTTP client alone (no IPython): events, framing, errors, hang-up on close."""

from __future__ import annotations

import json

import pytest

from ollama_magic.client import OllamaClient, build_chat_body, is_loopback, split_lines
from ollama_magic.errors import (
    ModelNotFoundError,
    OllamaConnectionError,
    StreamErrorLine,
    UnexpectedDataError,
)
from ollama_magic.events import AnswerDelta, Done, ThinkingDelta
from ollama_magic.testing import Gate, Reply

USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def client(server):
    c = OllamaClient(server.url)
    yield c
    c.close()


def test_split_lines_any_chunking():
    lines = [json.dumps({"i": i, "t": "é👋\u0085"}, ensure_ascii=False).encode() for i in range(50)]
    data = b"\n".join(lines) + b"\n"
    for size in (1, 2, 3, 7, 64, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(split_lines(chunks)) == lines
    assert list(split_lines([b"a\n\n  \nb"])) == [b"a", b"b"]


def test_events_in_order_with_stats(client, server):
    server.enqueue(Reply.answer(["Hel", "lo"], thinking=["hmm"], final_text="!"))
    events = list(client.chat("qwen3:8b", USER))
    kinds = [type(e) for e in events]
    assert kinds == [ThinkingDelta, AnswerDelta, AnswerDelta, AnswerDelta, Done]
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "Hello!"
    done = events[-1]
    assert done.done_reason == "stop" and done.stats.eval_count == 2
    assert done.stats.chunks == 4 and done.stats.first_token_time is not None


def test_any_ollama_host_spelling_works_as_base_url(server):
    """What OLLAMA_HOST accepts works here too: bare host:port, a trailing slash."""
    port = server.host.rsplit(":", 1)[1]
    for spelling in (server.host, f"{server.url}/", f"0.0.0.0:{port}"):
        server.enqueue(Reply.answer(["ok"]))
        client = OllamaClient(spelling)
        try:
            assert client.base_url == server.url
            events = list(client.chat("llama3.2", USER))
        finally:
            client.close()
        assert [e.text for e in events if isinstance(e, AnswerDelta)] == ["ok"]


def test_generate_endpoint_shapes_too(client, server):
    server.enqueue(Reply.answer(["a", "b"]))
    events = list(client.stream("/api/generate", {"model": "llama3.2", "prompt": "x"}))
    assert [e.text for e in events if isinstance(e, AnswerDelta)] == ["a", "b"]


def test_line_split_inside_multibyte_character(client, server):
    line = json.dumps({"model": "m", "message": {"role": "assistant", "content": "é👋"}}).encode()
    cut = line.index(b"\\u00e9") + 3
    done = json.dumps({"model": "m", "done": True, "done_reason": "stop"}).encode()
    server.enqueue(Reply.stream(line[:cut], line[cut:] + b"\n" + done + b"\n"))
    events = list(client.chat("llama3.2", USER))
    assert events[0].text == "é👋" and isinstance(events[-1], Done)


def test_close_hangs_up(client, server):
    gate = Gate()
    server.enqueue(Reply.answer(["one", "two"], gate=gate, gate_after=1))
    stream = client.chat("llama3.2", USER)
    assert next(stream).text == "one"
    stream.close()
    assert server.wait_for_hangup(timeout=5)
    gate.open()


def test_errors_are_typed(client, server, closed_port):
    with pytest.raises(ModelNotFoundError) as info:
        client.chat("nope", USER)
    assert info.value.model == "nope" and info.value.status_code == 404
    server.enqueue(Reply.answer(["x"], error="boom"))
    with pytest.raises(StreamErrorLine):
        list(client.chat("llama3.2", USER))
    with pytest.raises(OllamaConnectionError):
        OllamaClient(f"http://127.0.0.1:{closed_port}").chat("m", USER)


def test_request_json_and_stream_json(client, server):
    tags = client.request_json("GET", "/api/tags")
    assert {m["name"] for m in tags["models"]} >= {"llama3.2:latest"}
    with pytest.raises(UnexpectedDataError):
        client.request_json("GET", "/")
    progress = client.stream_json("/api/pull", {"model": "unknown-model"})
    with pytest.raises(StreamErrorLine) as info:
        list(progress)
    assert "file does not exist" in str(info.value)


def test_build_chat_body_leaves_unset_fields_out():
    assert build_chat_body("m", USER) == {"model": "m", "messages": USER, "stream": True}
    body = build_chat_body("m", USER, think=False, keep_alive=0, options={"seed": 1})
    assert body["think"] is False and body["keep_alive"] == 0 and body["options"] == {"seed": 1}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:11434", True),
        ("http://127.8.9.1:1", True),
        ("http://localhost:11434", True),
        ("http://[::1]:11434", True),
        ("http://example.com:11434", False),
        ("http://10.0.0.5:11434", False),
    ],
)
def test_is_loopback(url, expected):
    assert is_loopback(url) is expected
