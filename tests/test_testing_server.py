"""The fake Ollama server, exercised over real HTTP the way a streaming client uses it.

No test sleeps to synchronise: gates say when the server has reached a point in its script.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ollama_magic.testing import FakeOllama, Gate, Reply, main

pytestmark = pytest.mark.timeout(10)

CHAT_KEYS = ["model", "created_at", "message", "done"]
METRICS = [
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2", "qwen3:8b"), thinking_models=("qwen3:8b",)) as server:
        yield server


def chat_body(text: str = "Hi there", model: str = "llama3.2", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def post(server: FakeOllama, path: str, body: Any, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    if isinstance(body, bytes):
        return requests.post(server.url + path, data=body, **kwargs)
    return requests.post(server.url + path, json=body, **kwargs)


def lines(response: requests.Response) -> list[dict[str, Any]]:
    """Every body line, each parsed as JSON (bytes mode, as a correct client reads them)."""
    return [json.loads(line) for line in response.iter_lines() if line]


def read_until_broken(response: requests.Response) -> tuple[list[bytes], bool]:
    received: list[bytes] = []
    try:
        for line in response.iter_lines():
            received.append(line)
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
        return received, True
    return received, False


# -- default answers ----------------------------------------------------------------------------


def test_default_chat_stream_echoes_the_prompt(fake: FakeOllama) -> None:
    response = post(fake, "/api/chat", chat_body("Hi there"), stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Transfer-Encoding"] == "chunked"
    chunks = lines(response)
    *tokens, final = chunks
    for chunk in tokens:
        assert list(chunk) == CHAT_KEYS
        assert chunk["model"] == "llama3.2"
        assert chunk["created_at"].endswith("Z")
        assert chunk["message"]["role"] == "assistant"
        assert chunk["done"] is False
    assert "".join(c["message"]["content"] for c in tokens) == "You said: Hi there"
    assert final["done"] is True
    assert final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert [key for key in final if key in METRICS] == METRICS
    assert final["eval_count"] == len(tokens)
    assert all(isinstance(final[key], int) and final[key] > 0 for key in METRICS)


def test_default_generate_stream_has_response_and_context(fake: FakeOllama) -> None:
    response = post(fake, "/api/generate", {"model": "llama3.2", "prompt": "Why?"}, stream=True)
    *tokens, final = lines(response)
    assert [list(c) for c in tokens] == [["model", "created_at", "response", "done"]] * len(tokens)
    assert "".join(c["response"] for c in tokens) == "You said: Why?"
    assert final["done"] is True and final["response"] == ""
    assert all(isinstance(n, int) for n in final["context"])
    assert list(final)[:6] == ["model", "created_at", "response", "done", "done_reason", "context"]
    assert final["eval_count"] == len(tokens)


def test_default_answer_without_streaming_is_one_json_object(fake: FakeOllama) -> None:
    chat = post(fake, "/api/chat", chat_body("Hi", stream=False))
    assert chat.headers["Content-Type"] == "application/json; charset=utf-8"
    assert int(chat.headers["Content-Length"]) == len(chat.content)
    body = chat.json()
    assert body["message"] == {"role": "assistant", "content": "You said: Hi"}
    assert body["done"] is True and body["eval_count"] == 3

    generate = post(fake, "/api/generate", {"model": "qwen3:8b", "prompt": "Hi", "stream": False})
    body = generate.json()
    assert body["response"] == "You said: Hi"
    assert body["thinking"].startswith("Let me think.")
    assert body["done"] is True and "context" in body


def test_enqueued_answer_without_streaming_joins_the_chunks(fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer(["2 + 2 = ", "4"], thinking=["Okay", ", easy."], final_text="!"))
    body = post(fake, "/api/chat", chat_body(model="qwen3:8b", stream=False)).json()
    assert body["message"] == {
        "role": "assistant",
        "content": "2 + 2 = 4!",
        "thinking": "Okay, easy.",
    }
    assert body["eval_count"] == 2

    fake.enqueue(Reply.answer("partial", error="runner stopped"))
    failed = post(fake, "/api/generate", {"model": "llama3.2", "prompt": "x", "stream": False})
    assert (failed.status_code, failed.json()) == (500, {"error": "runner stopped"})


def test_thinking_model_streams_thinking_first(fake: FakeOllama) -> None:
    chunks = lines(post(fake, "/api/chat", chat_body(model="qwen3:8b"), stream=True))
    kinds = ["thinking" if "thinking" in c["message"] else "content" for c in chunks[:-1]]
    assert kinds[:2] == ["thinking", "thinking"]
    assert set(kinds[2:]) == {"content"}
    assert chunks[0]["message"]["content"] == ""

    no_think = lines(post(fake, "/api/chat", chat_body(model="qwen3:8b", think=False), stream=True))
    assert not any("thinking" in c["message"] for c in no_think)


def test_scripted_thinking_on_generate_is_top_level(fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer(["4"], thinking="Two plus two."))
    chunks = lines(post(fake, "/api/generate", {"model": "x", "prompt": "2+2"}, stream=True))
    assert chunks[0] == {**chunks[0], "response": "", "thinking": "Two", "done": False}
    assert chunks[1]["thinking"] == " plus"
    assert chunks[3]["response"] == "4" and "thinking" not in chunks[3]
    assert chunks[-1]["eval_count"] == 1


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_unknown_model_is_404_with_ollama_text(fake: FakeOllama, path: str) -> None:
    body = {"model": "llama9", "prompt": "x", "messages": [{"role": "user", "content": "x"}]}
    response = post(fake, path, body, stream=True)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {"error": "model 'llama9' not found"}


def test_latest_tag_is_optional_both_ways() -> None:
    with FakeOllama(models=("llama3.2:latest", "phi3"), thinking_models=()) as server:
        assert post(server, "/api/chat", chat_body(model="llama3.2")).status_code == 200
        assert post(server, "/api/chat", chat_body(model="phi3:latest")).status_code == 200
        assert post(server, "/api/chat", chat_body(model="phi3:mini")).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/chat", {"messages": []}, 400, "model is required"),
        ("/api/generate", {"prompt": "x"}, 404, "model '' not found"),
        ("/api/chat", b"", 400, "missing request body"),
        ("/api/chat", b"xyz", 400, "invalid character 'x' looking for beginning of value"),
        ("/api/chat", b'{"model": "llama3.2",', 400, "unexpected EOF"),
        ("/api/chat", chat_body(think=True), 400, '"llama3.2" does not support thinking'),
        (
            "/api/generate",
            {"model": "llama3.2", "prompt": "x", "think": "high"},
            400,
            '"llama3.2" does not support thinking',
        ),
    ],
)
def test_bad_requests_get_ollamas_errors(
    fake: FakeOllama, path: str, body: Any, status: int, error: str
) -> None:
    response = post(fake, path, body)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_invalid_think_level_is_rejected(fake: FakeOllama) -> None:
    response = post(fake, "/api/chat", chat_body(model="qwen3:8b", think="extreme"))
    assert response.status_code == 400
    assert response.json()["error"].startswith('invalid think value: "extreme"')


@pytest.mark.parametrize("as_json", [True, False])
def test_scripted_http_error(fake: FakeOllama, as_json: bool) -> None:
    fake.enqueue(Reply.error(503, "server busy", json=as_json))
    response = post(fake, "/api/chat", chat_body(), stream=True)
    assert response.status_code == 503
    if as_json:
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.json() == {"error": "server busy"}
    else:
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.text == "server busy"


def test_error_line_mid_stream_ends_the_stream_cleanly(fake: FakeOllama) -> None:
    fake.enqueue(
        Reply.stream(
            Reply.token(" Yes"),
            Reply.token(","),
            Reply.error_line("model runner has unexpectedly stopped"),
            Reply.token("never sent"),
        )
    )
    response = post(fake, "/api/generate", {"model": "gemma3", "prompt": "?"}, stream=True)
    assert response.status_code == 200
    chunks = lines(response)  # ends normally: no exception from a truncated body
    assert [c.get("response") for c in chunks[:2]] == [" Yes", ","]
    assert chunks[0]["model"] == "gemma3"
    assert chunks[2:] == [{"error": "model runner has unexpectedly stopped"}]


def test_answer_with_error_replaces_the_final_chunk(fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer(["a", "b"], error="boom"))
    chunks = lines(post(fake, "/api/chat", chat_body(), stream=True))
    assert [c.get("message", {}).get("content") for c in chunks[:2]] == ["a", "b"]
    assert chunks[2] == {"error": "boom"}
    assert not any(c.get("done") for c in chunks)


# -- framing -----------------------------------------------------------------------------------


def test_raw_chunks_split_inside_characters_reassemble(fake: FakeOllama) -> None:
    line = json.dumps({"response": "café 👋", "done": False}, ensure_ascii=False).encode() + b"\n"
    cut_e = line.index("é".encode()) + 1  # inside the 2-byte é
    cut_emoji = line.index("👋".encode()) + 2  # inside the 4-byte emoji
    done = {"response": "", "done": True}
    fake.enqueue(
        Reply.stream(
            line[:cut_e],
            line[cut_e:cut_emoji],
            line[cut_emoji:],
            b'{"response":"x","done":false}\n{"response":"y","done":false}\n',  # two in one
            "not json at all\n",
            done,
        )
    )
    response = post(fake, "/api/generate", {"model": "llama3.2", "prompt": "x"}, stream=True)
    received = list(response.iter_lines())
    assert json.loads(received[0])["response"] == "café 👋"
    assert [json.loads(r)["response"] for r in received[1:3]] == ["x", "y"]
    assert received[3] == b"not json at all"
    assert json.loads(received[4]) == done


def test_each_step_is_its_own_http_chunk(fake: FakeOllama) -> None:
    fake.enqueue(Reply.stream(b"ab", b"", b"cd\n", Reply.done()))
    response = post(fake, "/api/chat", chat_body(), stream=True)
    chunks = list(response.raw.read_chunked())
    assert chunks[:2] == [b"ab", b"cd\n"]
    assert json.loads(chunks[2])["done"] is True


def test_megabyte_final_line(fake: FakeOllama) -> None:
    context = list(range(200_000))
    fake.enqueue(Reply.answer(["x"], stats={"context": context}))
    response = post(fake, "/api/generate", {"model": "llama3.2", "prompt": "x"}, stream=True)
    raw = list(response.iter_lines(chunk_size=1 << 16))  # the default 512 is quadratic here
    assert len(raw[-1]) > 1_000_000
    final = json.loads(raw[-1])
    assert final["context"] == context and final["done"] is True


def test_stats_override_and_remove_metrics(fake: FakeOllama) -> None:
    fake.enqueue(
        Reply.answer(
            ["a"],
            done_reason="length",
            stats={"prompt_eval_count": None, "eval_duration": 0, "extra": 1},
            model="other",
        )
    )
    final = lines(post(fake, "/api/chat", chat_body(), stream=True))[-1]
    assert final["done_reason"] == "length" and final["model"] == "other"
    assert "prompt_eval_count" not in final
    assert final["eval_duration"] == 0 and final["extra"] == 1


# -- hang-ups and stalls ------------------------------------------------------------------------


def test_hangup_mid_stream_truncates_the_body(fake: FakeOllama) -> None:
    fake.enqueue(Reply.stream(Reply.token("Hel"), Reply.token("lo"), Reply.HANGUP, Reply.done()))
    response = post(fake, "/api/chat", chat_body(), stream=True)
    received, broken = read_until_broken(response)
    assert broken
    assert [json.loads(r)["message"]["content"] for r in received] == ["Hel", "lo"]
    assert fake.hangups == 0  # the server hung up, not the client


def test_hangup_after_and_reset_break_the_stream(fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer(["a", "b", "c"], hangup_after=1))
    received, broken = read_until_broken(post(fake, "/api/chat", chat_body(), stream=True))
    assert broken and len(received) == 1
    fake.enqueue(Reply.stream(Reply.token("a"), Reply.RESET))
    received, broken = read_until_broken(post(fake, "/api/chat", chat_body(), stream=True))
    assert broken and len(received) <= 1  # some systems drop data still in flight on a reset


def test_hangup_before_headers(fake: FakeOllama) -> None:
    fake.enqueue(Reply.hangup_before_headers())
    with pytest.raises(requests.exceptions.ConnectionError):
        post(fake, "/api/chat", chat_body(), stream=True)
    assert post(fake, "/api/chat", chat_body()).status_code == 200  # the next one is normal


def test_client_hangup_during_stall_is_detected(fake: FakeOllama) -> None:
    gate = Gate()
    fake.enqueue(Reply.stall(gate))
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    connection.request("POST", "/api/chat", json.dumps(chat_body()))
    assert gate.wait_reached()
    connection.close()  # like an interrupted cell, before any byte of the answer arrived
    assert fake.wait_for_hangup(timeout=5)
    assert fake.hangups == 1 and not gate.is_open


def test_stall_then_default_answer(fake: FakeOllama) -> None:
    gate = Gate()
    fake.enqueue(Reply.stall(gate))
    result: dict[str, requests.Response] = {}
    thread = threading.Thread(
        target=lambda: result.update(r=post(fake, "/api/chat", chat_body("slow")))
    )
    thread.start()
    assert gate.wait_reached()
    assert "r" not in result  # nothing (not even headers) was sent while the gate was closed
    gate.open()
    thread.join(5)
    assert result["r"].status_code == 200
    assert "".join(c["message"]["content"] for c in lines(result["r"])) == "You said: slow"


def test_client_hangup_at_gate_between_tokens(fake: FakeOllama) -> None:
    gate = Gate()
    fake.enqueue(Reply.answer(["one", " two", " three"], gate=gate, gate_after=1))
    response = post(fake, "/api/chat", chat_body(), stream=True)
    first = next(response.iter_lines())
    assert json.loads(first)["message"]["content"] == "one"
    assert gate.wait_reached()
    response.close()
    assert fake.wait_for_hangup(timeout=5)


def test_gate_orders_the_stream(fake: FakeOllama) -> None:
    """The client sees the first chunk while the second has not been sent yet."""
    gate = Gate()
    fake.enqueue(Reply.stream(Reply.token("first"), gate, Reply.token("second"), Reply.done()))
    response = post(fake, "/api/chat", chat_body(), stream=True)
    received = response.iter_lines()
    assert json.loads(next(received))["message"]["content"] == "first"
    assert gate.wait_reached() and not gate.is_open
    gate.open()
    rest = [json.loads(line) for line in received]
    assert rest[0]["message"]["content"] == "second" and rest[-1]["done"] is True
    assert fake.hangups == 0


def test_paced_answer_arrives_in_order(fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer("a b c d", delay=0.01))
    chunks = lines(post(fake, "/api/chat", chat_body(), stream=True))
    assert [c["message"]["content"] for c in chunks] == ["a", " b", " c", " d", ""]
    assert chunks[-1]["done"] is True


def test_stop_does_not_hang_on_a_closed_gate() -> None:
    server = FakeOllama().start()
    gate = Gate()
    server.enqueue(Reply.stream(Reply.token("a"), gate, Reply.done()))
    response = post(server, "/api/chat", chat_body(), stream=True)
    assert gate.wait_reached()
    server.stop()  # the handler is blocked on the gate: stop() must still return
    _, broken = read_until_broken(response)
    assert broken and server.hangups == 0


# -- other endpoints, recording, connections -----------------------------------------------------


def test_tags_lists_models_like_ollama(fake: FakeOllama) -> None:
    response = requests.get(fake.url + "/api/tags", timeout=5)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    models = response.json()["models"]
    assert [m["name"] for m in models] == ["llama3.2:latest", "qwen3:8b"]
    for model in models:
        assert list(model) == ["name", "model", "modified_at", "size", "digest", "details"]
        assert len(model["digest"]) == 64 and isinstance(model["size"], int)
        assert model["details"]["format"] == "gguf"
        assert set(model["details"]) == {
            "parent_model",
            "format",
            "family",
            "families",
            "parameter_size",
            "quantization_level",
        }


def test_small_endpoints(fake: FakeOllama) -> None:
    root = requests.get(fake.url + "/", timeout=5)
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert requests.get(fake.url + "/api/version", timeout=5).json() == {"version": "0.33.0"}
    assert requests.get(fake.url + "/api/ps", timeout=5).json() == {"models": []}
    show = post(fake, "/api/show", {"model": "qwen3:8b"}).json()
    assert show["capabilities"] == ["completion", "thinking"]
    assert post(fake, "/api/show", {"model": "llama3.2"}).json()["capabilities"] == ["completion"]
    assert post(fake, "/api/show", {"model": "nope"}).status_code == 404
    missing = requests.get(fake.url + "/api/nope", timeout=5)
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert missing.headers["Content-Type"] == "text/plain"
    assert requests.get(fake.url + "/api/chat", timeout=5).status_code == 405


def test_pull_streams_progress_then_installs() -> None:
    with FakeOllama(models=(), thinking_models=(), pullable=("phi3",)) as server:
        statuses = [c["status"] for c in lines(post(server, "/api/pull", {"model": "phi3"}))]
        assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
        assert server.has_model("phi3:latest")
        failed = lines(post(server, "/api/pull", {"model": "nope"}))
        assert failed == [
            {"status": "pulling manifest"},
            {"error": "pull model manifest: file does not exist"},
        ]


def test_every_request_is_recorded_in_order(fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer("ok"))
    post(fake, "/api/chat", chat_body("first"), headers={"X-Test": "1"}).close()
    requests.get(fake.url + "/api/tags", timeout=5).close()
    post(fake, "/api/generate", {"model": "nope", "prompt": "p"}).close()
    assert fake.wait_for_requests(3, timeout=5)
    first, second, third = fake.requests
    assert (first.method, first.path) == ("POST", "/api/chat")
    assert first.json()["messages"][0]["content"] == "first"
    assert first.header("x-test") == "1"
    assert first.header("content-type") == "application/json"
    assert (second.method, second.path, second.body) == ("GET", "/api/tags", b"")
    assert second.json() is None
    assert third.json() == {"model": "nope", "prompt": "p"}
    assert fake.pending == 0
    assert not fake.wait_for_requests(4, timeout=0)


def test_enqueued_replies_are_fifo_and_only_for_inference(fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer("one"), Reply.answer("two"))
    assert requests.get(fake.url + "/api/tags", timeout=5).status_code == 200
    assert fake.pending == 2
    first = lines(post(fake, "/api/generate", {"model": "llama3.2", "prompt": "x"}))
    second = lines(post(fake, "/api/chat", chat_body()))
    assert first[0]["response"] == "one" and second[0]["message"]["content"] == "two"
    third = lines(post(fake, "/api/chat", chat_body("x")))
    assert third[0]["message"]["content"] == "You"  # queue empty: the default answer again


def test_keep_alive_reuses_one_connection(fake: FakeOllama) -> None:
    fake.enqueue(Reply.answer("streamed answer"), Reply.error(500, "bad"))
    with requests.Session() as session:
        url = fake.url + "/api/chat"
        streamed = session.post(url, json=chat_body(), stream=True, timeout=5)
        assert lines(streamed)[-1]["done"] is True
        error = session.post(url, json=chat_body(), timeout=5)
        assert error.status_code == 500
        whole = session.post(url, json=chat_body("x", stream=False), timeout=5)
        assert whole.json()["message"]["content"] == "You said: x"
    ports = {request.client_port for request in fake.requests}
    assert len(fake.requests) == 3 and len(ports) == 1


def test_not_running_has_no_url() -> None:
    server = FakeOllama()
    with pytest.raises(RuntimeError):
        _ = server.url
    server.stop()  # harmless when never started


def test_answer_rejects_gate_positions_out_of_range() -> None:
    with pytest.raises(ValueError):
        Reply.answer(["a"], gate=Gate(), gate_after=3)


# -- command line --------------------------------------------------------------------------------


def _serve_from_command_line(module: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start a fake server's command line on a free port; return it and the URL it announced."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", "--delay", "0.001", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    return process, banner.split(" at ", 1)[1].split()[0]


def test_command_line_serves_paced_default_answers() -> None:
    process, url = _serve_from_command_line(
        "ollama_magic.testing", "--models", "a,b:7b", "--thinking-models", ""
    )
    try:
        assert url.startswith("http://127.0.0.1:")
        names = [m["name"] for m in requests.get(url + "/api/tags", timeout=5).json()["models"]]
        assert names == ["a:latest", "b:7b"]
        response = requests.post(url + "/api/chat", json=chat_body("hi", model="a"), timeout=5)
        assert "".join(c["message"]["content"] for c in lines(response)) == "You said: hi"
    finally:
        process.terminate()
        process.wait(5)


def test_openai_command_line_serves_its_models_behind_a_key() -> None:
    process, url = _serve_from_command_line(
        "ollama_magic.testing_openai", "--models", "a, b", "--api-key", "k"
    )
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert requests.get(url + "/models", timeout=5).status_code == 401
        models = requests.get(url + "/models", headers={"Authorization": "Bearer k"}, timeout=5)
        assert [m["id"] for m in models.json()["data"]] == ["a", "b"]
    finally:
        process.terminate()
        process.wait(5)


def test_main_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["--port", "not-a-number"])
