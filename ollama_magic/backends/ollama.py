"""Ollama behind the backend interface: ``/api/chat``, ``/api/tags``, ``/api/show`` and the rest."""

from __future__ import annotations

import difflib
from collections.abc import Generator
from typing import Any

from ..client import CONNECT_TIMEOUT, OllamaClient
from ..errors import ModelNotFoundError, UnexpectedDataError
from .base import AnswerEvents, GuardedBackend, LineHook, requested_window


class OllamaBackend(GuardedBackend):
    """An Ollama server (``ollama serve``, the app, or anything that speaks its API)."""

    kind = "ollama"
    label = "Ollama"

    def __init__(
        self, base_url: str, *, timeout: float | None, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        self.client = OllamaClient(base_url, timeout=timeout, connect_timeout=connect_timeout)
        self.base_url = self.client.base_url

    def __repr__(self) -> str:
        return f"<OllamaBackend {self.base_url}>"

    def _open_stream(self, body: dict[str, Any], trace: LineHook | None) -> AnswerEvents:
        return self.client.stream("/api/chat", body, trace=trace)

    def describe_request(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return self.base_url + "/api/chat", body

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        with self._errors():
            return self.client.installed_models(max_age=max_age, timeout=timeout)

    def list_models(self) -> list[dict[str, Any]]:
        with self._errors():
            return self.client.model_list("/api/tags")

    def describe_model(self, name: str) -> dict[str, Any]:
        with self._errors():
            data = self.client.request_json("POST", "/api/show", {"model": name})
            if not isinstance(data, dict):
                raise UnexpectedDataError(
                    f"{self.base_url}/api/show did not describe '{name}'. Is this an Ollama server?"
                )
            return data

    def loaded_models(self) -> list[dict[str, Any]]:
        with self._errors():
            return self.client.model_list("/api/ps")

    def pull(self, name: str) -> Generator[dict[str, Any], None, None]:
        progress = self.client.stream_json("/api/pull", {"model": name, "stream": True})
        try:
            with self._errors():
                yield from progress
        finally:
            progress.close()  # hang up: Ollama stops downloading

    def unload(self, name: str) -> None:
        with self._errors():
            self.client.request_json("POST", "/api/generate", {"model": name, "keep_alive": 0})

    def version(self, *, timeout: float = 30.0) -> str:
        with self._errors():
            data = self.client.request_json("GET", "/api/version", timeout=timeout)
        version = data.get("version") if isinstance(data, dict) else None
        return str(version) if version else "unknown"

    def check_model(self, name: str) -> None:
        """Unknown names are refused from the installed list, with the closest installed one.

        An empty list means the server could not say (down, or slow): its answer will.
        """
        installed = self.model_names(timeout=2.0)
        if not installed or name in installed:
            return
        close = difflib.get_close_matches(name, sorted(installed), n=1, cutoff=0.5)
        guess = f" Did you mean {close[0]}?" if close else ""
        raise ModelNotFoundError(
            f"The model {name!r} is not installed on {self.base_url}.{guess} Download it with "
            f"%ollama pull {name} (or add --pull to the magic line); %ollama list shows the "
            "installed models.",
            404,
            "model not found",
            name,
        )

    def context_window(self, model: str, body: dict[str, Any]) -> int | None:
        """What ``/api/ps`` says the loaded model runs with, else ``num_ctx``, else the
        model's own maximum (``/api/show``)."""
        with self._errors():
            for entry in self.client.model_list("/api/ps"):
                if model in {entry.get("name"), entry.get("model")} or f"{model}:latest" in {
                    entry.get("name"),
                    entry.get("model"),
                }:
                    value = entry.get("context_length")
                    if isinstance(value, int) and value > 0:
                        return value
            explicit = requested_window(body)
            if explicit is not None:
                return explicit
            data = self.client.request_json("POST", "/api/show", {"model": model}, timeout=2.0)
        for key, value in ((data or {}).get("model_info") or {}).items():
            if key.endswith(".context_length") and isinstance(value, int) and value > 0:
                return value
        return None

    def render_prompt(self, body: dict[str, Any]) -> tuple[str, int] | None:
        """Ollama 0.11.5+ renders a request without generating (``_debug_render_only``)."""
        request = {**body, "stream": False, "_debug_render_only": True}
        with self._errors():
            data = self.client.request_json("POST", "/api/chat", request, timeout=60)
            info = data.get("_debug_info") if isinstance(data, dict) else None
            if not isinstance(info, dict) or not isinstance(info.get("rendered_template"), str):
                if isinstance(data, dict) and data.get("done"):
                    raise UnexpectedDataError(
                        f"{self.base_url} generated an answer instead of rendering the prompt: "
                        "--show-prompt needs Ollama 0.11.5 or later (`ollama --version`)."
                    )
                raise UnexpectedDataError(
                    f"{self.base_url} did not return the rendered prompt (no _debug_info in its "
                    "answer); --show-prompt needs Ollama 0.11.5 or later."
                )
        images = info.get("image_count")
        return info["rendered_template"], images if isinstance(images, int) else 0

    def close(self) -> None:
        self.client.close()
