"""Backends: how one answer is streamed from Ollama, an OpenAI-compatible server or the kernel."""

from __future__ import annotations

from typing import Any

from ..client import DEFAULT_TIMEOUT, OllamaClient, build_chat_body
from ..local import LocalClient, is_local_model
from ..openai_compat import OpenAIClient, is_openai_url, openai_chat_body

__all__ = ["DEFAULT_TIMEOUT", "backend_kind", "build_chat_body", "make_backend"]


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


class _Adapter:
    def __init__(self, client: Any, kind: str) -> None:
        self.client = client
        self.kind = kind
        self.base_url = client.base_url

    def stream_chat(self, body: dict[str, Any], *, trace: Any = None) -> Any:
        return self.client.stream("/api/chat", body, trace=trace)

    def describe_request(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if self.kind == "openai":
            return self.client.base_url + "/chat/completions", openai_chat_body(body)
        if self.kind == "local":
            return "(in this kernel, no HTTP request)", body
        return self.base_url + "/api/chat", body

    def installed_models(self, **kwargs: Any) -> dict[str, dict[str, Any]]:
        return self.client.installed_models(**kwargs)

    def model_names(self, **kwargs: Any) -> frozenset[str]:
        return self.client.model_names(**kwargs)

    def close(self) -> None:
        self.client.close()


def make_backend(model: str, base_url: str, api: str, timeout: float) -> Any:
    kind = backend_kind(model, base_url, api)
    if kind == "local":
        return _Adapter(LocalClient(timeout=timeout), kind)
    if kind == "openai":
        return _Adapter(OpenAIClient(base_url, timeout=timeout), kind)
    return _Adapter(OllamaClient(base_url, timeout=timeout), kind)
