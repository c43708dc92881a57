"""Did the prompt fit? The context window an answer ran with, and what to do when it was full.

Ollama cuts an over-long prompt to the window silently by default (the only sign is a
``prompt_eval_count`` close to it), or, with context shift off, refuses it with HTTP 400. The
window is what ``/api/ps`` reports for the loaded model, else the request's explicit
``num_ctx``, else the model's own maximum from ``/api/show``. No IPython here.
"""

from __future__ import annotations

import time
from typing import Any

from .backends.base import Backend, requested_window
from .errors import OllamaMagicError, OllamaResponseError
from .result import OllamaResponse

#: Ollama's refusal of an over-long prompt (HTTP 400, since 0.30.9).
TOO_LONG = "prompt is longer than the context length"
#: How long a looked-up window is trusted (seconds): one answer after another asks once.
_MAX_AGE = 10.0
_cache: dict[tuple[str, str], tuple[float, int | None]] = {}


def filled(prompt_tokens: int, window: int) -> bool:
    """The prompt took the whole window (within 2%, at least 16 tokens): it was likely cut.

    >>> filled(2040, 2048), filled(1500, 2048)
    (True, False)
    """
    return prompt_tokens >= window - max(16, window // 50)


def context_length(backend: Backend, model: str, body: dict[str, Any]) -> int | None:
    """The window ``model`` ran with (None when it cannot be told); looked up once a while."""
    explicit = requested_window(body)
    key = (backend.base_url, model)
    cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < _MAX_AGE and explicit is None:
        return cached[1]
    try:
        window = backend.context_window(model, body)
    except OllamaMagicError:
        window = explicit
    _cache[key] = (time.monotonic(), window)
    return window


def fix_hint(window: int | None, chat: bool) -> str:
    bigger = max(8192, 2 * window) if window else 8192
    longer = f"give the model a longer window with -O num_ctx={bigger}"
    if chat:
        return f"{longer}, or start the conversation afresh with %ollama reset NAME"
    return longer


def check_context(backend: Backend, body: dict[str, Any], result: OllamaResponse) -> None:
    """Record the window on the result (``.stats.context_length``, ``.truncated``), and make
    the over-long-prompt refusal name ``num_ctx`` and the numbers."""
    error = result.error
    too_long = isinstance(error, OllamaResponseError) and TOO_LONG in error.error
    prompt_tokens = result.stats.prompt_eval_count
    if not too_long and prompt_tokens is None:
        return
    window = context_length(backend, result.model or str(body.get("model", "")), body)
    result.stats.context_length = window
    chat = len(body.get("messages") or ()) > 2
    if too_long and error is not None:
        chars = sum(len(str(m.get("content") or "")) for m in body.get("messages") or ())
        size = f"{window:,} tokens" if window else "an unknown number of tokens"
        error.message += (
            f" The model's context window (num_ctx) is {size} and the prompt has {chars:,} "
            f"characters (roughly {chars // 4:,} tokens); {fix_hint(window, chat)}."
        )
        error.args = (error.message,)
        return
    if window and prompt_tokens is not None:
        result.truncated = filled(prompt_tokens, window) or bool(result.stats.prompt_cut)


def context_line(result: OllamaResponse) -> str:
    """One line for the final output when the prompt filled the window ('' otherwise)."""
    window = result.stats.context_length
    if not getattr(result, "truncated", False) or not window:
        return ""
    chat = len((result.request or {}).get("messages") or ()) > 2
    cut = result.stats.prompt_cut
    if cut:
        return (
            f"The prompt did not fit the context window ({window:,} tokens), so its first "
            f"{cut:,} tokens were cut and the model never saw them: {fix_hint(window, chat)}."
        )
    return (
        f"The prompt filled the context window ({result.stats.prompt_eval_count:,} of "
        f"{window:,} tokens), so the model likely did not see all of it: "
        f"{fix_hint(window, chat)}."
    )
