"""Backends: how answers, model lists and model cards come from Ollama, an OpenAI-compatible
server or the embedded model, all behind the one interface :class:`Backend`."""

from __future__ import annotations

from ..client import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, build_chat_body
from ..local import is_local_model
from ..openai_compat import is_openai_url
from .base import AnswerEvents, Backend, GuardedBackend, ScrubbedStream
from .local import LocalBackend
from .ollama import OllamaBackend
from .openai import OpenAIBackend

__all__ = [
    "DEFAULT_TIMEOUT",
    "AnswerEvents",
    "Backend",
    "GuardedBackend",
    "LocalBackend",
    "OllamaBackend",
    "OpenAIBackend",
    "ScrubbedStream",
    "backend_kind",
    "build_chat_body",
    "make_backend",
]


def backend_kind(model: str, base_url: str, api: str) -> str:
    """Which backend answers: ``local``, ``openai`` or ``ollama``.

    >>> backend_kind("local:smollm2", "http://h:11434", "auto")
    'local'
    >>> backend_kind("m", "http://h:8000/v1", "auto"), backend_kind("m", "http://h:8000", "openai")
    ('openai', 'openai')
    """
    if is_local_model(model):
        return "local"
    if api == "openai" or (api == "auto" and is_openai_url(base_url)):
        return "openai"
    return "ollama"


def make_backend(
    model: str,
    base_url: str,
    api: str = "auto",
    timeout: float | None = DEFAULT_TIMEOUT,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> Backend:
    """The backend that answers ``model`` at ``base_url`` (``api``: auto, ollama or openai)."""
    kind = backend_kind(model, base_url, api)
    if kind == "local":
        return LocalBackend(timeout=timeout)
    if kind == "openai":
        return OpenAIBackend(base_url, timeout=timeout, connect_timeout=connect_timeout)
    return OllamaBackend(base_url, timeout=timeout, connect_timeout=connect_timeout)
