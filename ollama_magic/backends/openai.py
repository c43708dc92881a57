"""An OpenAI-compatible server behind the backend interface (``/v1/chat/completions``).

vLLM, llama.cpp's server, LM Studio, LocalAI and hosted APIs serve chats and a model list;
they cannot download, unload or describe models, so those subcommands say so plainly.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..client import CONNECT_TIMEOUT
from ..errors import ModelNotFoundError, OllamaUsageError
from ..openai_compat import CHAT_PATH, OpenAIClient, openai_chat_body
from .base import AnswerEvents, GuardedBackend, LineHook


class OpenAIBackend(GuardedBackend):
    kind = "openai"
    label = "the OpenAI-compatible server"

    def __init__(
        self, base_url: str, *, timeout: float | None, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        self.client = OpenAIClient(base_url, timeout=timeout, connect_timeout=connect_timeout)
        self.base_url = self.client.base_url

    def __repr__(self) -> str:
        return f"<OpenAIBackend {self.base_url}>"

    def _secrets(self) -> tuple[str, ...]:
        return self.client.secrets

    def _open_stream(self, body: dict[str, Any], trace: LineHook | None) -> AnswerEvents:
        return self.client.stream("/api/chat", body, trace=trace)

    def describe_request(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return self.base_url + CHAT_PATH, openai_chat_body(body)

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        with self._errors():
            return self.client.installed_models(max_age=max_age, timeout=timeout)

    def list_models(self) -> list[dict[str, Any]]:
        with self._errors():
            return [{"name": m["name"]} for m in self.client.list_models()]

    def describe_model(self, name: str) -> dict[str, Any]:
        with self._errors():
            rows = self.client.list_models()
        for row in rows:
            if row["name"] == name:
                owner = row.get("owned_by")
                return {"details": {"family": owner} if owner else {}, "capabilities": []}
        raise ModelNotFoundError(
            f"{self.base_url} does not serve a model called {name!r}; %ollama list shows the "
            "ones it does.",
            404,
            "model not found",
            name,
        )

    def _cannot(self, what: str) -> OllamaUsageError:
        return OllamaUsageError(
            f"{self.base_url} is an OpenAI-compatible server: it cannot {what}. Do that on the "
            "server itself; %ollama list shows the models it serves."
        )

    def loaded_models(self) -> list[dict[str, Any]]:
        raise self._cannot("say which models are in memory")

    def pull(self, name: str) -> Generator[dict[str, Any], None, None]:
        raise self._cannot(f"download models (such as {name!r})")

    def unload(self, name: str) -> None:
        raise self._cannot("unload models")

    def version(self, *, timeout: float = 30.0) -> str:
        """The API has no version endpoint: a model list that answers is the proof of life."""
        with self._errors():
            self.client.request_json("GET", "/v1/models", timeout=timeout)
        return "OpenAI-compatible API"

    def close(self) -> None:
        self.client.close()
