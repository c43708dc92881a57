"""Shared fixtures: a fake Ollama on loopback and an IPython shell with the extension loaded."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from ollama_magic.testing import FakeOllama

MODELS = ("llama3.2", "qwen3:8b")

# Answers are logged while they stream: the tests (and the kernels they start, which inherit
# the environment) write to a folder of their own, never to the user's log.
os.environ["OLLAMA_MAGIC_HOME"] = tempfile.mkdtemp(prefix="ollama-magic-tests-")
THINKING = ("qwen3:8b",)


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with FakeOllama(models=MODELS, thinking_models=THINKING) as fake:
        yield fake


@pytest.fixture
def shell(server: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """IPython's own (terminal-less) shell, pointed at the fake server through OLLAMA_HOST."""
    monkeypatch.setenv("OLLAMA_HOST", server.host)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ollama_magic")
    ip.user_ns.pop("ollama_response", None)
    yield ip
    ip.run_line_magic("config", "OllamaMagics.model = ''")


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
