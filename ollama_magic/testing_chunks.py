"""How the fake Ollama writes its chunks: one request's facts, and steps as Ollama's JSON lines.

Standard library only, like the server in :mod:`ollama_magic.testing` that uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .testing_lens import fake_logprobs, logprob_entry, requested_top
from .testing_steps import ErrorLine, Final, Step, Thinking, Token, _dumps

_CONTEXT_HEAD = (128006, 882, 128007, 271)


def _line(obj: Any) -> bytes:
    return _dumps(obj) + b"\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class _Call:
    """What the handler knows about one chat/generate request."""

    endpoint: str  # "chat" or "generate"
    request: dict[str, Any]
    error: str | None = None  # why the body is unusable (400), if it is

    @property
    def model(self) -> str:
        model = self.request.get("model")
        return model if isinstance(model, str) else ""

    @property
    def streaming(self) -> bool:
        return self.request.get("stream") is not False

    @property
    def prompt(self) -> str:
        if self.endpoint == "generate":
            prompt = self.request.get("prompt")
            return prompt if isinstance(prompt, str) else ""
        messages = self.request.get("messages")
        for message in reversed(messages if isinstance(messages, list) else []):
            if isinstance(message, dict) and str(message.get("role", "")).lower() == "user":
                content = message.get("content")
                return content if isinstance(content, str) else ""
        return ""


class _Renderer:
    """Turns endpoint-neutral steps into Ollama's chat or generate chunk objects."""

    def __init__(self, call: _Call, model: str | None) -> None:
        self.call = call
        self.model = call.model if model is None else model
        self.tokens = 0
        #: Whether this server sends logprobs when asked (False: Ollama before 0.12.11).
        self.gives_logprobs = True

    def _head(self) -> dict[str, Any]:
        return {"model": self.model, "created_at": _now()}

    def _text(self, content: str, thinking: str = "") -> dict[str, Any]:
        obj = self._head()
        if self.call.endpoint == "chat":
            message = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            obj["message"] = message
        else:
            obj["response"] = content
            if thinking:
                obj["thinking"] = thinking
        return obj

    def chunk(self, step: Token | Thinking) -> dict[str, Any]:
        if isinstance(step, Token):
            self.tokens += 1
            obj = self._text(step.text)
        else:
            obj = self._text("", step.text)
        obj["done"] = False
        if isinstance(step, Token) and self.logprobs:
            obj["logprobs"] = [self.logprob_entry(step)]
        return obj

    @property
    def logprobs(self) -> bool:
        """The request asked for logprobs and this server returns them."""
        return self.call.request.get("logprobs") is True and self.gives_logprobs

    def logprob_entry(self, step: Token) -> dict[str, Any]:
        count = requested_top(self.call.request)
        if step.logprob is not None:
            return logprob_entry(step.text, step.logprob, step.top[:count])
        return fake_logprobs(step.text, self.tokens - 1, count)

    def final(self, done: Final, content: str, thinking: str = "") -> dict[str, Any]:
        obj = self._text(content, thinking)
        obj["done"] = True
        if done.done_reason is not None:
            obj["done_reason"] = done.done_reason
        if self.call.endpoint == "generate" and not self.call.request.get("raw"):
            obj["context"] = [*_CONTEXT_HEAD, *range(1000, 1000 + self.tokens)]
        words = len(self.call.prompt.split())
        load, prompt_eval = 12_000_000, 20_000_000 + words * 1_000_000
        evaluation = self.tokens * 25_000_000  # 40 tokens/s
        defaults = {
            "total_duration": load + prompt_eval + evaluation + 3_000_000,
            "load_duration": load,
            "prompt_eval_count": 10 + words,
            "prompt_eval_duration": prompt_eval,
            "eval_count": self.tokens,
            "eval_duration": evaluation,
        }
        obj.update((key, value) for key, value in defaults.items() if value)  # Go omitempty
        for key, value in done.metrics.items():
            if value is None:
                obj.pop(key, None)
            else:
                obj[key] = value
        return obj

    def step_bytes(self, step: Step) -> bytes:
        if isinstance(step, bytes):
            return step
        if isinstance(step, str):
            return step.encode()
        if isinstance(step, (Token, Thinking)):
            return _line(self.chunk(step))
        if isinstance(step, Final):
            return _line(self.final(step, step.text))
        if isinstance(step, ErrorLine):
            return _line({"error": step.message})
        if isinstance(step, Mapping):
            return _line(dict(step))
        raise TypeError(f"not a Reply step: {step!r}")
