"""An OpenAI-compatible mode for the test server: ``/v1/chat/completions`` as server-sent events.

Why: the OpenAI client's bugs live in the same places as the Ollama client's (a line cut
across chunks, an error after the status is 200, a hang-up, a stall) plus the SSE framing
(``data:`` lines, blank-line event ends, comments, ``data: [DONE]``). :class:`FakeOpenAI` is
:class:`~ollama_magic.testing.FakeOllama` with the OpenAI routes added, scripted with the same
:class:`~ollama_magic.testing.Reply` and :class:`~ollama_magic.testing.Gate`: each step is
rendered as an SSE event instead of an NDJSON line::

    from ollama_magic.testing import Reply
    from ollama_magic.testing_openai import FakeOpenAI

    with FakeOpenAI(models=("llama3.2",), api_key="sk-test") as server:
        server.enqueue(Reply.answer(["Hel", "lo"], thinking="Hmm."))
        ...  # point OpenAIClient at server.url_v1
        assert server.requests[-1].json()["stream"] is True

A :class:`~ollama_magic.testing.Token` becomes a ``delta.content`` chunk (the first one also
carries ``role``), :class:`~ollama_magic.testing.Thinking` a ``delta.reasoning`` chunk (or
``reasoning_content``, see ``reasoning_field``), the final step a chunk with an empty delta and
``finish_reason``, then a usage chunk when the request asked for it, then ``data: [DONE]``.
An error step is an ``{"error": {...}}`` event, after which the stream ends without
``[DONE]``. Raw ``bytes``/``str`` steps are written as they are (for keep-alive comments,
CRLF framing or an event cut in half); :func:`sse` frames an object. :func:`error_reply` is an
HTTP error in OpenAI's shape. The Ollama endpoints keep working, as on a real Ollama.

``python -m ollama_magic.testing_openai --port 8000`` serves a paced fake for demos.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .testing import FakeOllama, _Handler
from .testing_http import comma_list, serve_until_interrupted, server_arguments
from .testing_lens import fake_logprobs, logprob_entry, requested_top
from .testing_steps import (
    JSON_UTF8,
    NDJSON,
    ErrorLine,
    Final,
    Reply,
    Step,
    Thinking,
    Token,
    _dumps,
    split_tokens,
)

__all__ = ["SSE", "FakeOpenAI", "error_reply", "main", "sse"]

SSE = "text/event-stream"
_DONE = b"data: [DONE]\n\n"
_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found_error"}
_ids = itertools.count(417)


def sse(obj: Any) -> bytes:
    """One server-sent event carrying ``obj`` as JSON (``data: {...}`` and a blank line).

    >>> sse({"a": 1})
    b'data: {"a":1}\\n\\n'
    """
    return b"data: " + _dumps(obj) + b"\n\n"


def _error_body(status: int, message: str, kind: str | None = None, code: Any = None) -> bytes:
    kind = kind or _ERROR_TYPES.get(status, "api_error")
    return _dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def error_reply(
    status: int,
    message: str,
    *,
    type: str | None = None,
    code: str | None = None,
    before: Any = None,
) -> Reply:
    """An HTTP error before any stream, as OpenAI-style servers send it.

    ``type`` defaults as Ollama's compatibility layer does: ``invalid_request_error`` for 400,
    ``not_found_error`` for 404, ``api_error`` otherwise.
    """
    return Reply.raw(status, _error_body(status, message, type, code), JSON_UTF8, before=before)


def _prompt(request: Mapping[str, Any]) -> str:
    messages = request.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, Mapping)
                ).strip()
            return content if isinstance(content, str) else ""
    return ""


class _Renderer:
    """Turns the endpoint-neutral steps of a Reply into OpenAI chunk events."""

    def __init__(self, request: Mapping[str, Any], model: str, reasoning_field: str) -> None:
        self.request = request
        self.model = model
        self.reasoning_field = reasoning_field
        self.id = f"chatcmpl-{next(_ids) % 999}"
        self.created = int(time.time())
        self.tokens = 0
        self.role_sent = False

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self.role_sent and delta:
            delta = {"role": "assistant", **delta}
            self.role_sent = True
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def usage(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        prompt = 10 + len(_prompt(self.request).split())
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": self.tokens,
            "total_tokens": prompt + self.tokens,
        }
        for key, value in metrics.items():
            if value is None:
                usage.pop(key, None)
            else:
                usage[key] = value
        return usage

    def final(self, step: Final) -> bytes:
        data = b""
        if step.text:
            data += sse(self.chunk({"content": step.text}))
        data += sse(self.chunk({}, step.done_reason))
        options = self.request.get("stream_options")
        if isinstance(options, Mapping) and options.get("include_usage"):
            last = {**self.chunk({}), "choices": [], "usage": self.usage(step.metrics)}
            data += sse(last)
        return data + _DONE

    def step_bytes(self, step: Step) -> bytes:
        if isinstance(step, bytes):
            return step
        if isinstance(step, str):
            return step.encode()
        if isinstance(step, Token):
            self.tokens += 1
            chunk = self.chunk({"content": step.text})
            if self.request.get("logprobs") is True:
                chunk["choices"][0]["logprobs"] = {"content": [self.logprob_entry(step)]}
            return sse(chunk)
        if isinstance(step, Thinking):
            return sse(self.chunk({self.reasoning_field: step.text}))
        if isinstance(step, Final):
            return self.final(step)
        if isinstance(step, ErrorLine):
            return sse({"error": {"message": step.message, "type": "api_error"}})
        if isinstance(step, Mapping):
            return sse(dict(step))
        raise TypeError(f"not a Reply step: {step!r}")

    def logprob_entry(self, step: Token) -> dict[str, Any]:
        """The token's logprob in OpenAI's shape (``bytes`` always there, as OpenAI sends)."""
        count = requested_top(self.request)
        if step.logprob is not None:
            entry = logprob_entry(step.text, step.logprob, step.top[:count])
        else:
            entry = fake_logprobs(step.text, self.tokens - 1, count)
        entry.setdefault("bytes", list(step.text.encode()))
        entry.setdefault("top_logprobs", [])
        return entry

    def whole(self, content: str, thinking: str, step: Final) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message[self.reasoning_field] = thinking
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": step.done_reason}],
            "usage": self.usage(step.metrics),
        }


class _OpenAIHandler(_Handler):
    """The Ollama handler with ``/v1/chat/completions`` and ``/v1/models`` in front."""

    server_version = "FakeOpenAI/1.0"

    def _route(self, path: str, body: bytes) -> None:
        if not path.startswith("/v1/"):
            return super()._route(path, body)
        fake: FakeOpenAI = self.server.fake
        if fake.api_key is not None:
            sent = self.headers.get("Authorization", "")
            if sent != f"Bearer {fake.api_key}":
                key = sent.removeprefix("Bearer ").strip()
                shown = f"{key[:3]}{'*' * max(len(key) - 7, 0)}{key[-4:]}" if key else "none"
                return self._send(
                    401,
                    _error_body(
                        401, f"Incorrect API key provided: {shown}.", None, "invalid_api_key"
                    ),
                )
        if path == "/v1/models" and self.command == "GET":
            data = [
                {"id": name, "object": "model", "created": 1761499224, "owned_by": "library"}
                for name in fake.models
            ]
            return self._send(200, _dumps({"object": "list", "data": data}))
        if path != "/v1/chat/completions":
            return self._send(404, b"404 page not found", "text/plain")
        if self.command != "POST":
            return self._send(405, b"405 method not allowed", "text/plain")
        try:
            request = json.loads(body)
        except ValueError:
            return self._send(400, _error_body(400, "invalid request body"))
        if not isinstance(request, dict):
            return self._send(400, _error_body(400, "invalid request body"))
        reply = fake._next_reply()
        if reply is None:
            return self._default_v1(request)
        return self._serve_v1(reply, request)

    def _start(self, status: int, content_type: str, headers: Mapping[str, str]) -> None:
        # Reply.answer and Reply.stream default to NDJSON; here a stream is an event stream.
        if content_type == NDJSON:
            content_type = SSE
            headers = {"Cache-Control": "no-cache", **headers}
        super()._start(status, content_type, headers)

    def _default_v1(self, request: dict[str, Any]) -> None:
        """Answer like Ollama's compatibility layer, echoing the prompt."""
        fake: FakeOpenAI = self.server.fake
        model = request.get("model")
        if not isinstance(model, str) or not model:
            return self._send(400, _error_body(400, "model is required"))
        if not fake.has_model(model):
            return self._send(404, _error_body(404, f"model '{model}' not found"))
        tokens = split_tokens("You said: " + _prompt(request))
        finish = "stop"
        limit = request.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < len(tokens):
            tokens, finish = tokens[:limit], "length"
        effort = request.get("reasoning_effort")
        thinking = ("Let me think.", " They want an echo.")
        reply = Reply.answer(
            tokens,
            thinking=thinking if fake.thinks(model) and effort != "none" else (),
            delay=fake.default_delay,
            done_reason=finish,
        )
        self._serve_v1(reply, request)

    def _serve_v1(self, reply: Reply, request: dict[str, Any]) -> None:
        fake: FakeOpenAI = self.server.fake
        if reply.before is not None:
            self._wait(reply.before)
        if reply.mode == "hangup":
            return self._hang_up()
        if reply.mode == "default":
            return self._default_v1(request)
        if reply.mode == "fixed":
            return self._send(reply.status, reply.body or b"", reply.content_type, reply.headers)
        model = reply.model or str(request.get("model", ""))
        renderer = _Renderer(request, model, fake.reasoning_field)
        if reply.mode == "answer" and request.get("stream") is not True:
            return self._whole_v1(reply, renderer)
        for step in reply.steps:
            if not self._run(step):
                self._chunk(reply, renderer.step_bytes(step))
                if isinstance(step, ErrorLine):
                    break
        self._chunk(reply, b"")
        self._write(b"0\r\n\r\n")

    def _whole_v1(self, reply: Reply, renderer: _Renderer) -> None:
        """``stream`` false (OpenAI's default): one ``chat.completion`` object."""
        content: list[str] = []
        thinking: list[str] = []
        for step in reply.steps:
            if self._run(step):
                continue
            if isinstance(step, ErrorLine):
                return self._send(500, _error_body(500, step.message))
            if isinstance(step, Token):
                renderer.tokens += 1
                content.append(step.text)
            elif isinstance(step, Thinking):
                thinking.append(step.text)
            elif isinstance(step, Final):
                text = "".join(content) + step.text
                whole = renderer.whole(text, "".join(thinking), step)
                return self._send(200, _dumps(whole))


class FakeOpenAI(FakeOllama):
    """A local OpenAI-compatible server (also serving Ollama's API), for tests and demos.

    ``api_key``, when set, is required as ``Authorization: Bearer <key>`` on ``/v1`` routes
    (401 in OpenAI's shape otherwise, echoing the key masked as OpenAI does).
    ``reasoning_field`` names the delta field of thinking text: ``"reasoning"`` (Ollama,
    vLLM) or ``"reasoning_content"`` (DeepSeek, llama.cpp). Scripting and inspection are
    those of :class:`~ollama_magic.testing.FakeOllama`.
    """

    def __init__(
        self,
        models: Iterable[str] = ("llama3.2",),
        thinking_models: Iterable[str] = ("qwen3:8b",),
        *,
        api_key: str | None = None,
        reasoning_field: str = "reasoning",
        host: str = "127.0.0.1",
        port: int = 0,
        default_delay: float = 0.0,
    ) -> None:
        super().__init__(models, thinking_models, host=host, port=port, default_delay=default_delay)
        self.api_key = api_key
        self.reasoning_field = reasoning_field

    def start(self) -> FakeOpenAI:
        """Bind and serve in a background thread; returns ``self``."""
        super().start()
        # FakeOllama builds its server with the Ollama handler; switch before any request
        # can arrive (nobody knows the port until start() returns).
        assert self._server is not None
        self._server.RequestHandlerClass = _OpenAIHandler
        return self

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FakeOpenAI {where} models={self.models!r}>"

    @property
    def url_v1(self) -> str:
        """``http://127.0.0.1:<port>/v1``: the API root an OpenAI client is given."""
        return self.url + "/v1"


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake OpenAI-compatible API until Ctrl+C, for demos without a model."""
    parser = server_arguments(
        "python -m ollama_magic.testing_openai",
        "Serve an OpenAI-compatible fake that echoes prompts, paced per token.",
        port=8000,
    )
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    models = comma_list(args.models)
    server = FakeOpenAI(
        models, (), api_key=args.api_key, host=args.host, port=args.port, default_delay=args.delay
    ).start()
    return serve_until_interrupted(
        server, f"Fake OpenAI-compatible API at {server.url_v1} serving {', '.join(models)}"
    )


if __name__ == "__main__":
    sys.exit(main())
