"""The OpenAI-compatible client against FakeOpenAI over real HTTP: SSE framing, events, errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from ollama_magic.client import build_chat_body
from ollama_magic.errors import (
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaResponseError,
    OllamaUsageError,
    StreamErrorLine,
    StreamTimeoutError,
    TruncatedStreamError,
    UnexpectedDataError,
)
from ollama_magic.events import AnswerDelta, Done, ThinkingDelta
from ollama_magic.openai_compat import (
    OpenAIClient,
    api_root,
    is_openai_url,
    openai_chat_body,
    sse_events,
    sse_lines,
)
from ollama_magic.testing import Gate, Reply
from ollama_magic.testing_openai import FakeOpenAI, error_reply, sse

USER = [{"role": "user", "content": "Hi"}]
KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("llama3.2", "qwen3:8b"), thinking_models=("qwen3:8b",)) as server:
        yield server


@pytest.fixture
def client(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIClient]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    c = OpenAIClient(fake.url_v1, timeout=5)
    yield c
    c.close()


def chat(client: OpenAIClient, model: str = "llama3.2", **kwargs) -> list:
    return list(client.stream("/api/chat", build_chat_body(model, USER, **kwargs)))


def answer(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, AnswerDelta))


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# -- pure parts -------------------------------------------------------------------------------


def test_sse_lines_any_chunking_and_line_ends():
    body = "data: é👋\r\n\r\n: ping\n\ndata: a\rdata: b\r\r".encode()
    expected = [b"data: \xc3\xa9\xf0\x9f\x91\x8b", b"", b": ping", b"", b"data: a", b"data: b", b""]
    for size in range(1, 8):
        pieces = [p for i in range(0, len(body), size) for p in (body[i : i + size], b"")]
        assert list(sse_lines(pieces)) == expected


def test_sse_events_rules():
    lines = [b"\xef\xbb\xbfdata: one", b"data:two", b"", b":comment", b"event: ping", b"", b""]
    lines += [b'error: {"message":"x"}', b"data: cut"]
    assert list(sse_events(lines)) == [
        ("message", "one\ntwo", True),
        ("error", '{"message":"x"}', True),
        ("message", "cut", False),
    ]


def test_urls():
    assert is_openai_url("http://127.0.0.1:8000/v1/") and not is_openai_url("http://h:11434")
    assert api_root("http://h:8000") == "http://h:8000/v1"


def test_body_mapping():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(20)).decode()
    messages = [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "look", "images": [png]},
    ]
    body = build_chat_body(
        "m",
        messages,
        options={"temperature": 0.2, "seed": 7, "num_predict": 16, "stop": "\n", "top_k": 5},
        format={"type": "object"},
        think=False,
        keep_alive="5m",
    )
    mapped = openai_chat_body(body)
    assert mapped["temperature"] == 0.2 and mapped["seed"] == 7 and mapped["max_tokens"] == 16
    assert mapped["stop"] == ["\n"] and mapped["top_k"] == 5
    assert mapped["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert mapped["reasoning_effort"] == "none" and "keep_alive" not in mapped
    text, image = mapped["messages"][1]["content"]
    assert text == {"type": "text", "text": "look"}
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert openai_chat_body(build_chat_body("m", USER, options={"num_ctx": 8192})).keys() == {
        "model",
        "messages",
        "stream",
        "stream_options",
    }
    with pytest.raises(OllamaUsageError, match="mirostat"):
        openai_chat_body(build_chat_body("m", USER, options={"mirostat": 1}))


# -- over HTTP --------------------------------------------------------------------------------


def test_events_usage_and_request(client, fake):
    fake.enqueue(Reply.answer(["Hel", "lo"], thinking=["hmm"], final_text="!"))
    events = chat(client, "qwen3:8b", options={"temperature": 0})
    assert [type(e) for e in events] == [ThinkingDelta, AnswerDelta, AnswerDelta, AnswerDelta, Done]
    assert answer(events) == "Hello!"
    done = events[-1]
    assert (done.done_reason, done.model) == ("stop", "qwen3:8b")
    assert done.stats.eval_count == 2 and done.stats.prompt_eval_count == 11
    assert done.stats.chunks == 4 and done.stats.first_token_time is not None
    request = fake.requests[-1]
    assert request.path == "/v1/chat/completions" and request.header("Authorization") is None
    sent = request.json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0 and sent["messages"] == USER


def test_default_echo_length_and_reasoning_content(monkeypatch):
    with FakeOpenAI(thinking_models=("r1",), reasoning_field="reasoning_content") as server:
        client = OpenAIClient(server.url, api_key="")  # /v1 is added
        events = chat(client, "r1", options={"num_predict": 2})
        client.close()
    assert isinstance(events[0], ThinkingDelta) and answer(events) == "You said:"
    assert events[-1].done_reason == "length"


def test_framing_comments_crlf_multiline_and_split_character(client, fake):
    event = sse(chunk({"content": "é👋"}))
    cut = event.index("👋".encode()) + 2
    multi = b'data: {"choices":[{"delta":\r\ndata: {"content":"!"}}]}\r\n\r\n'
    fake.enqueue(
        Reply.stream(
            b": keep-alive\n\n",
            event[:cut],
            event[cut:],
            multi,
            sse(chunk({}, "stop")).replace(b"\n", b"\r\n"),
            b"data: [DONE]\n\n",
        )
    )
    events = chat(client)
    assert answer(events) == "é👋!" and events[-1].done_reason == "stop"


def test_truncation_rules(client, fake):
    fake.enqueue(Reply.stream(sse(chunk({"content": "a"})), Reply.HANGUP))
    with pytest.raises(TruncatedStreamError, match=r"\[DONE\]"):
        chat(client)
    fake.enqueue(Reply.stream(sse(chunk({"content": "a"})), b'data: {"choi'))
    with pytest.raises(TruncatedStreamError):
        chat(client)
    # A finish_reason without [DONE]: the answer is whole, only the tail was lost.
    fake.enqueue(Reply.stream(sse(chunk({"content": "a"}, "length")), Reply.RESET))
    assert chat(client)[-1].done_reason == "length"
    # [DONE] without a finish_reason: the server said it is finished.
    fake.enqueue(Reply.stream(sse(chunk({"content": "a"})), b"data: [DONE]\n\n"))
    assert chat(client)[-1].done_reason == "stop"


def test_mid_stream_errors(client, fake):
    fake.enqueue(Reply.answer(["partial"], error="out of memory"))
    stream = client.stream("/api/chat", build_chat_body("llama3.2", USER))
    assert next(stream).text == "partial"
    with pytest.raises(StreamErrorLine, match="out of memory") as info:
        next(stream)
    assert info.value.title == "The server reported an error mid-answer"
    fake.enqueue(Reply.stream(b'error: {"code":500,"message":"slot failed"}\n\n'))
    with pytest.raises(StreamErrorLine, match="slot failed"):
        chat(client)


def test_http_errors(client, fake):
    with pytest.raises(ModelNotFoundError, match="%ollama list") as info:
        chat(client, "nope")
    assert info.value.model == "nope" and info.value.status_code == 404
    fake.enqueue(error_reply(500, "CUDA error"))
    with pytest.raises(OllamaResponseError, match=r"HTTP 500.*CUDA error"):
        chat(client)
    fake.enqueue(Reply.raw(404, "404 page not found", "text/plain"))
    with pytest.raises(OllamaResponseError, match="ending in /v1"):
        chat(client)
    fake.enqueue(Reply.raw(200, "<html>a web page</html>", "text/html"))
    with pytest.raises(UnexpectedDataError, match="not the OpenAI API"):
        chat(client)
    fake.enqueue(Reply.stream(b"data: not json\n\n"))
    with pytest.raises(UnexpectedDataError, match="not JSON"):
        chat(client)


def test_api_key_sent_and_never_shown(monkeypatch):
    with FakeOpenAI(api_key=KEY) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        good = OpenAIClient(server.url_v1)
        assert answer(chat(good)) == "You said: Hi"
        assert server.requests[-1].header("Authorization") == f"Bearer {KEY}"
        assert KEY not in repr(good)
        bad = OpenAIClient(server.url_v1, api_key=KEY[:-4] + "wxyz")
        with pytest.raises(OllamaResponseError, match="OPENAI_API_KEY") as info:
            chat(bad)
        assert info.value.status_code == 401 and "wxyz" not in info.value.message
        monkeypatch.delenv("OPENAI_API_KEY")
        with pytest.raises(OllamaResponseError, match="No key was sent"):
            OpenAIClient(server.url_v1).list_models()


def test_unreachable_and_stall(fake, closed_port):
    with pytest.raises(OllamaConnectionError, match="OpenAI-compatible server") as info:
        OpenAIClient(f"http://127.0.0.1:{closed_port}/v1").list_models()
    assert "Ollama" not in info.value.title
    gate = Gate()
    fake.enqueue(Reply.answer(["one", "two"], gate=gate, gate_after=1))
    client = OpenAIClient(fake.url_v1, timeout=0.3)
    stream = client.stream("/api/chat", build_chat_body("llama3.2", USER))
    assert next(stream).text == "one"
    with pytest.raises(StreamTimeoutError):
        next(stream)
    gate.open()


def test_a_server_that_takes_the_request_and_hangs_up_is_not_called_unreachable(client, fake):
    fake.enqueue(Reply.hangup_before_headers())
    with pytest.raises(TruncatedStreamError, match="closed the connection without") as info:
        chat(client)
    assert info.value.title == "The answer was cut off"
    assert "the server's log" in str(info.value) and "ollama serve" not in str(info.value)


def test_close_hangs_up_and_trace(client, fake):
    gate = Gate()
    fake.enqueue(Reply.answer(["one", "two"], gate=gate, gate_after=1))
    seen: list[bytes] = []
    with client.stream(
        "/api/chat", build_chat_body("llama3.2", USER), trace=lambda line, t: seen.append(line)
    ) as stream:
        assert next(stream).text == "one"
    assert fake.wait_for_hangup(timeout=5)
    gate.open()
    assert json.loads(seen[0].removeprefix(b"data: "))["choices"][0]["delta"]["content"] == "one"


def test_whole_json_answer_and_model_list(client, fake):
    whole = {"model": "m", "choices": [{"message": {"content": "all"}, "finish_reason": "stop"}]}
    fake.enqueue(Reply.raw(200, json.dumps(whole)))
    events = chat(client)
    assert answer(events) == "all" and events[-1].done_reason == "stop"
    assert [m["name"] for m in client.list_models()] == ["llama3.2", "qwen3:8b"]
    assert client.request_json("GET", "/v1/models")["object"] == "list"
    assert client.model_names() == {"llama3.2", "qwen3:8b"}


def test_model_hints_never_raise(closed_port):
    client = OpenAIClient(f"http://127.0.0.1:{closed_port}/v1")
    assert client.installed_models() == {} and client.model_names() == frozenset()
