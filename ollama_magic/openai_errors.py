"""What an OpenAI-compatible server's failures say to the user, with the key never in them.

The HTTP layer (:mod:`.transport`) tells the failures apart; this mixin words each one for a
server that is not Ollama (vLLM, llama.cpp's server, LM Studio, a hosted API) and scrubs the
API key, and anything shaped like a credential, from every server text it quotes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import requests

from .errors import (
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaMagicError,
    OllamaResponseError,
    StreamErrorLine,
    StreamTimeoutError,
    TruncatedStreamError,
    UnexpectedDataError,
    scrub_text,
)
from .transport import _snippet, is_loopback

_E = TypeVar("_E", bound=OllamaMagicError)


def _error_text(obj: Any) -> tuple[str, str]:
    """``(message, type)`` of an OpenAI-style error object, a bare string, or FastAPI detail."""
    if isinstance(obj, Mapping):
        error = obj.get("error", obj.get("detail", obj))
        if isinstance(error, Mapping):
            message = error.get("message") or error.get("msg") or error.get("detail") or ""
            kind = error.get("type") or error.get("code") or ""
            return str(message or json.dumps(dict(error))), str(kind)
        if isinstance(error, list) and error:  # FastAPI validation errors
            return "; ".join(
                str(e.get("msg", e)) if isinstance(e, Mapping) else str(e) for e in error
            ), "invalid_request_error"
        if error:
            return str(error), ""
    return "", ""


def _retitled(exc: _E, title: str) -> _E:
    """The same error under a heading that does not say "Ollama" (it is another server)."""
    exc.title = title
    return exc


class OpenAIErrors:
    """The error messages of :class:`~ollama_magic.openai_compat.OpenAIClient`."""

    base_url: str
    timeout: float | None
    _api_key: str

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the API key."""
        return (self._api_key,) if self._api_key else ()

    def _scrub(self, text: str) -> str:
        """Server text with the API key, and anything shaped like a credential, hidden."""
        return scrub_text(text, self.secrets)

    def _unreachable(self, reason: str) -> OllamaConnectionError:
        hint = (
            "Start the server (for example `python -m llama_cpp.server --model FILE.gguf` or "
            "`vllm serve MODEL`)"
            if is_loopback(self.base_url)
            else "Check that the server is running and reachable from this machine"
        )
        error = OllamaConnectionError(
            f"Could not connect to the OpenAI-compatible server at {self.base_url} ({reason}). "
            f"{hint}, or point %%ollama elsewhere with --host URL (ending in /v1).",
            url=self.base_url,
        )
        return _retitled(error, "The server is not reachable")

    def _stalled(self, seconds: float) -> StreamTimeoutError:
        error = StreamTimeoutError(
            f"{self.base_url} accepted the request but sent nothing for {seconds:g} s. The "
            "model may still be loading: raise the limit with --timeout (0 waits forever)."
        )
        return _retitled(error, "The server stopped responding")

    def _cut_off(self, message: str) -> TruncatedStreamError:
        return _retitled(TruncatedStreamError(message), "The answer was cut off")

    def _not_json(self, path: str, data: bytes) -> UnexpectedDataError:
        return self._not_api(data)

    def _not_api(self, data: bytes | str) -> UnexpectedDataError:
        error = UnexpectedDataError(
            f"{self.base_url} answered with something that is not the OpenAI API: "
            f"{_snippet(data)!r}. Check the URL: it should be the API root, ending in /v1."
        )
        return _retitled(error, "Unexpected data from the server")

    def _truncated(self, reason: str) -> TruncatedStreamError:
        return self._cut_off(
            f"The connection to {self.base_url} closed before the answer was finished{reason} "
            "(no finish_reason and no `data: [DONE]` arrived). The server may have crashed or "
            "been restarted; check its log, then re-run the cell."
        )

    def _stream_error(self, message: str) -> StreamErrorLine:
        message = self._scrub(message.strip() or "no details given")
        error = StreamErrorLine(
            f"{message.rstrip('.')}. Check the server's log; re-run the cell to try again.",
            message,
        )
        return _retitled(error, "The server reported an error mid-answer")

    def _http_error(self, response: requests.Response, model: str) -> OllamaResponseError:
        status = response.status_code
        raw = response.content[:4096]
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = None
        message, kind = _error_text(decoded) if decoded is not None else ("", "")
        message = self._scrub(message or _snippet(raw, 500)).rstrip(".")
        where = self.base_url
        lowered = message.lower()
        if status == 401:
            if self._api_key:
                hint = (
                    "The key that was sent is not accepted: put a valid one in OPENAI_API_KEY "
                    "(in the kernel's environment) and re-run the cell."
                )
            else:
                hint = (
                    "No key was sent: set OPENAI_API_KEY in the kernel's environment (for "
                    "example `%env OPENAI_API_KEY=...` in a cell) and re-run the cell."
                )
            text = f"{where} requires a valid API key (HTTP 401: {message or 'unauthorized'}). "
            error = OllamaResponseError(text + hint, status, message)
            return _retitled(error, "API key rejected")
        if status == 404 and (
            kind in ("model_not_found", "not_found_error")
            or ("model" in lowered and ("not found" in lowered or "does not exist" in lowered))
        ):
            missing = ModelNotFoundError(
                f"The model '{model}' is not served by {where} (the server said: {message}). "
                "See the served models with `%ollama list` (GET /v1/models) and use one of "
                "those names.",
                status,
                message,
                model,
            )
            return _retitled(missing, "Model not found")
        if status == 404:
            text = (
                f"{where} answered HTTP 404 ({message or 'empty body'}) for {response.url}. Is "
                "this an OpenAI-compatible server? The URL should be its API root, ending in /v1."
            )
        elif status == 403:
            text = (
                f"{where} refused the request (HTTP 403: {message or 'forbidden'}). The API key "
                "has no access to this model or endpoint."
            )
        elif status == 429:
            text = (
                f"{where} is rate-limiting this key (HTTP 429: {message}). Wait and re-run the "
                "cell, or check the account's quota."
            )
        elif 400 <= status < 500:
            text = (
                f"The server rejected the request (HTTP {status}): {message}. Check the "
                "--option, --format and --think values for this server."
            )
        else:
            text = (
                f"The server failed (HTTP {status}): {message or 'no details given'}. Check "
                "the server's log; re-run the cell to try again."
            )
        return _retitled(OllamaResponseError(text, status, message), "The server returned an error")
