"""Client for OpenAI-compatible servers: the magic's Ollama chat body in, the same events out.

Why a second client: vLLM, llama.cpp's server, LM Studio, LocalAI and hosted APIs all speak
``POST /v1/chat/completions`` with server-sent events instead of Ollama's NDJSON. This module
maps the Ollama chat body the magic builds onto that request, decodes the event stream
(``data:`` lines, multi-line events, comments, CRLF or CR line ends, ``data: [DONE]``) and
yields :class:`~ollama_magic.events.ThinkingDelta`, :class:`~ollama_magic.events.AnswerDelta`
and one :class:`~ollama_magic.events.Done`, so the live view, the variable, the errors and
the stop button behave exactly as with Ollama. Every failure is an
:mod:`ollama_magic.errors` exception with a message that says what to do.

>>> is_openai_url("http://127.0.0.1:8000/v1"), is_openai_url("http://127.0.0.1:11434")
(True, False)
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from .client import (
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    AnswerStream,
    HttpClient,
    _snippet,
    body_chunks,
    build_chat_body,
)
from .errors import (
    OllamaMagicError,
    OllamaStreamError,
    OllamaUsageError,
    StreamTimeoutError,
    UnexpectedDataError,
)
from .events import AnswerDelta, Done, Event, Stats, ThinkingDelta, ToolCall
from .logprobs import choice_logprobs
from .openai_errors import OpenAIErrors, _error_text, _retitled
from .sse import sse_events, sse_lines

__all__ = [
    "OpenAIClient",
    "chat_events",
    "is_openai_url",
    "openai_chat_body",
    "sse_events",
    "sse_lines",
]

#: Environment variable read when no ``api_key`` is given (as the OpenAI SDKs do).
API_KEY_ENV = "OPENAI_API_KEY"
CHAT_PATH = "/chat/completions"
SSE = "text/event-stream"

#: Ollama option → OpenAI request field.
_RENAMED_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
#: Sampling options outside OpenAI's schema that llama.cpp's server and vLLM accept as is.
_EXTENSION_OPTIONS = ("top_k", "min_p", "typical_p", "repeat_penalty")
#: Options fixed when a server loads its model: not settable per request, so left out.
_LOAD_OPTIONS = frozenset(
    {
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
        "use_mmap",
        "use_mlock",
        "numa",
        "low_vram",
        "num_keep",
        "draft_num_predict",
    }
)
_IMAGE_TYPES = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)

#: Called with each raw line of the event stream and its arrival time (``perf_counter``).
LineHook = Callable[[bytes, float], None]


def is_openai_url(url: str) -> bool:
    """True for a server URL whose path ends in ``/v1``: the API root of OpenAI-style servers.

    >>> is_openai_url("https://api.example.com/openai/v1/"), is_openai_url("gpu:11434")
    (True, False)
    """
    return urlsplit(url.strip()).path.rstrip("/").endswith("/v1")


def api_root(base_url: str) -> str:
    """The ``.../v1`` root requests go under; ``/v1`` is added when the URL lacks it.

    >>> api_root("http://127.0.0.1:8000"), api_root("http://h:1/openai/v1/")
    ('http://127.0.0.1:8000/v1', 'http://h:1/openai/v1')
    """
    root = base_url.strip().rstrip("/")
    return root if is_openai_url(root) else root + "/v1"


# --------------------------------------------------------------------------------------------
# Request mapping


def _image_part(data: str) -> dict[str, Any]:
    """An Ollama base64 image as an OpenAI ``image_url`` content part (a data: URL)."""
    if data.startswith("data:"):
        return {"type": "image_url", "image_url": {"url": data}}
    try:
        head = base64.b64decode(data[:16] + "=" * (-len(data[:16]) % 4))
    except ValueError:
        raise OllamaUsageError(
            "An image in the request is not base64 data; pass image files with --image PATH."
        ) from None
    mime = next((kind for magic, kind in _IMAGE_TYPES if head.startswith(magic)), "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    """One Ollama chat message → OpenAI; images become content parts beside the text."""
    out: dict[str, Any] = {"role": str(message.get("role", "user")).lower()}
    content = message.get("content") or ""
    images = message.get("images") or []
    if images:
        parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
        parts += [_image_part(str(image)) for image in images]
        out["content"] = parts
    else:
        out["content"] = content
    for key in ("name", "tool_call_id"):
        if message.get(key):
            out[key] = message[key]
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        out["tool_calls"] = [_openai_call(call, n) for n, call in enumerate(calls)]
    return out


def _openai_call(call: Mapping[str, Any], position: int) -> dict[str, Any]:
    """One call of an assistant message in OpenAI's shape: an id, and arguments as JSON text."""
    function = call.get("function") or {}
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {
        "id": call.get("id") or f"call_{position}",
        "type": "function",
        "function": {"name": function.get("name", ""), "arguments": arguments},
    }


def openai_chat_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Map the Ollama ``/api/chat`` body the magic builds onto ``/v1/chat/completions``.

    Options with an OpenAI name are renamed (``num_predict`` → ``max_tokens``), ``top_k``-like
    sampling extensions are passed on, load-time options (``num_ctx``, ...) are left out as
    they belong to the server's own configuration, and anything else is refused rather than
    silently ignored. ``keep_alive`` has no OpenAI equivalent and is dropped.

    >>> openai_chat_body({"model": "m", "messages": [], "options": {"num_predict": 8},
    ...                   "format": "json"})  # doctest: +NORMALIZE_WHITESPACE
    {'model': 'm', 'messages': [], 'stream': True, 'stream_options': {'include_usage': True},
     'max_tokens': 8, 'response_format': {'type': 'json_object'}}
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise OllamaUsageError("The request has no messages list; nothing to send.")
    request: dict[str, Any] = {
        "model": body.get("model", ""),
        "messages": [_message(m) for m in messages if isinstance(m, Mapping)],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    options = body.get("options") or {}
    unknown: list[str] = []
    for key, value in options.items():
        if key in _RENAMED_OPTIONS:
            if key == "stop" and isinstance(value, str):
                value = [value]
            request[_RENAMED_OPTIONS[key]] = value
        elif key == "num_predict":
            if isinstance(value, (int, float)) and value > 0:
                request["max_tokens"] = int(value)  # -1 and -2 mean "no limit" to Ollama
        elif key in _EXTENSION_OPTIONS:
            request[key] = value
        elif key not in _LOAD_OPTIONS:
            unknown.append(key)
    if unknown:
        supported = sorted([*_RENAMED_OPTIONS, "num_predict", *_EXTENSION_OPTIONS])
        raise OllamaUsageError(
            f"OpenAI-compatible servers take no option {', '.join(map(repr, unknown))}. "
            f"Per-request options there: {', '.join(supported)} (load-time options such as "
            "num_ctx are set when the server starts)."
        )
    fmt = body.get("format")
    if fmt == "json":
        request["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, Mapping):
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": dict(fmt)},
        }
    elif fmt:
        raise OllamaUsageError(f"--format takes `json` or a JSON schema object, got {fmt!r}.")
    if body.get("tools"):
        request["tools"] = list(body["tools"])  # Ollama's tool schema is OpenAI's
    think = body.get("think")
    if think is False:
        request["reasoning_effort"] = "none"
    elif isinstance(think, str):
        request["reasoning_effort"] = think
    if body.get("logprobs") is True:
        request["logprobs"] = True
        request["top_logprobs"] = body.get("top_logprobs") or 0
    return request


def _text(value: Any) -> str:
    """A delta field as text: strings as they are, lists of content parts joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, Mapping))
    return ""


def chat_events(
    chunks: Iterable[Mapping[str, Any]],
    started: float,
    model: str | None = None,
) -> Generator[Event, None, Done]:
    """OpenAI ``chat.completion.chunk`` objects → thinking/answer deltas; returns the Done.

    Shared by the HTTP client and the embedded model (llama.cpp yields the same objects).
    Only choice 0 is read. ``delta.reasoning`` (Ollama, vLLM) or ``delta.reasoning_content``
    (DeepSeek, llama.cpp) is thinking. Usage (``stream_options.include_usage``) and
    llama.cpp's ``timings`` fill the statistics. The Done is returned, not yielded: only the
    caller knows whether the stream really ended (its ``done_reason`` is None when no
    ``finish_reason`` came). A stream error after the ``finish_reason`` only loses the tail
    (the usage), so the answer still counts as complete.

    >>> chunk = {"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}]}
    >>> events = chat_events([chunk], 0.0)
    >>> next(events), _last(events).done_reason
    (AnswerDelta('Hi'), 'stop')
    """
    finish: str | None = None
    usage: Mapping[str, Any] = {}
    timings: Mapping[str, Any] = {}
    count = 0
    first_token: float | None = None
    calls: dict[int, dict[str, Any]] = {}
    source = iter(chunks)
    while True:
        try:
            chunk = next(source)
        except StopIteration:
            break
        except OllamaStreamError:
            if finish is None:
                raise
            break
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            model = chunk["model"]
        if isinstance(chunk.get("usage"), Mapping):
            usage = chunk["usage"]
        if isinstance(chunk.get("timings"), Mapping):
            timings = chunk["timings"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if not isinstance(delta, Mapping):
                delta = choice.get("message")  # a whole, non-streamed completion
            if isinstance(delta, Mapping):
                thinking = _text(delta.get("reasoning")) or _text(delta.get("reasoning_content"))
                content = _text(delta.get("content"))
                if (thinking or content) and first_token is None:
                    first_token = time.perf_counter() - started
                if thinking:
                    count += 1
                    yield ThinkingDelta(thinking)
                logprobs = choice_logprobs(choice)
                if content:
                    count += 1
                    yield AnswerDelta(content, logprobs)
                elif logprobs is not None and not thinking:
                    yield AnswerDelta("", logprobs)
                _join_call_fragments(calls, delta.get("tool_calls"))
            if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
                finish = choice["finish_reason"]
    for index, call in sorted(calls.items()):
        if call["name"]:
            # A call without an id gets one: the result must name the call it answers.
            yield ToolCall(call["name"], call["arguments"], call["id"] or f"call_{index}")
    stats = _stats(usage, timings)
    stats.wall_time = time.perf_counter() - started
    stats.first_token_time = first_token
    stats.chunks = count
    return Done(finish, model, stats)


def _join_call_fragments(calls: dict[int, dict[str, Any]], fragments: Any) -> None:
    """Add ``delta.tool_calls`` fragments to the calls so far, by their ``index``.

    The first fragment of a call carries its id and name; the arguments arrive as pieces of
    one JSON text, joined here and parsed only when the call is checked.

    >>> calls = {}
    >>> _join_call_fragments(calls, [{"index": 0, "id": "c1", "function": {"name": "f",
    ...                                "arguments": '{"x"'}}])
    >>> _join_call_fragments(calls, [{"index": 0, "function": {"arguments": ': 1}'}}])
    >>> calls
    {0: {'id': 'c1', 'name': 'f', 'arguments': '{"x": 1}'}}
    """
    for position, fragment in enumerate(fragments if isinstance(fragments, list) else ()):
        if not isinstance(fragment, Mapping):
            continue
        index = fragment.get("index", position)
        call = calls.setdefault(
            index if isinstance(index, int) else position, {"id": None, "name": "", "arguments": ""}
        )
        if isinstance(fragment.get("id"), str) and fragment["id"]:
            call["id"] = fragment["id"]
        function = fragment.get("function")
        if isinstance(function, Mapping):
            if isinstance(function.get("name"), str) and function["name"]:
                call["name"] = function["name"]
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call["arguments"] += arguments
            elif isinstance(arguments, Mapping):
                call["arguments"] = dict(arguments)


def _last(events: Generator[Event, None, Done]) -> Done:
    """Drain ``events`` and return the generator's Done (for doctests and simple callers)."""
    while True:
        try:
            next(events)
        except StopIteration as stop:
            return stop.value


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _stats(usage: Mapping[str, Any], timings: Mapping[str, Any]) -> Stats:
    def count(*values: Any) -> int | None:
        for value in values:
            if _number(value) is not None:
                return int(value)
        return None

    def seconds(value: Any) -> float | None:
        number = _number(value)
        return number / 1000 if number is not None else None

    return Stats(
        eval_count=count(usage.get("completion_tokens"), timings.get("predicted_n")),
        prompt_eval_count=count(usage.get("prompt_tokens"), timings.get("prompt_n")),
        eval_duration=seconds(timings.get("predicted_ms")),
        prompt_eval_duration=seconds(timings.get("prompt_ms")),
    )


# --------------------------------------------------------------------------------------------
# The client


class OpenAIClient(OpenAIErrors, HttpClient):
    """Streams chat answers from an OpenAI-compatible server (``.../v1``) as the magic's events.

    ``base_url`` is the API root (``http://127.0.0.1:8000/v1``; ``/v1`` is added if missing).
    The key is ``api_key``, else ``$OPENAI_API_KEY``, sent as ``Authorization: Bearer`` only
    when set; it is never part of a message. Proxies are bypassed for loopback servers.

    >>> client = OpenAIClient("http://127.0.0.1:8000/v1")  # doctest: +SKIP
    >>> with client.stream("/api/chat", build_chat_body("m", messages)) as events:
    ...     for event in events: print(event)  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        api_key: str | None = None,
    ) -> None:
        super().__init__(api_root(base_url), timeout=timeout, connect_timeout=connect_timeout)
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        self._api_key = key.strip()
        if self._api_key:
            self.session.headers["Authorization"] = f"Bearer {self._api_key}"
        self._models: tuple[float, dict[str, dict[str, Any]]] | None = None

    def __repr__(self) -> str:
        return f"<OpenAIClient {self.base_url} key={'set' if self._api_key else 'none'}>"

    def _url(self, path: str) -> str:
        """``/api/chat`` and ``/v1/chat/completions`` → the chat URL; ``/v1/x`` → root + ``/x``."""
        if path in ("/api/chat", "/v1/chat/completions", CHAT_PATH):
            return self.base_url + CHAT_PATH
        if path.startswith("/v1/"):
            path = path[3:]
        if path.startswith("/api/"):
            raise OllamaUsageError(
                f"{path} is an Ollama endpoint; {self.base_url} is an OpenAI-compatible server "
                "(it serves /v1/chat/completions and /v1/models)."
            )
        return self.base_url + path

    def list_models(self) -> list[dict[str, Any]]:
        """The served models as ``{"name", "owned_by", "created"}`` rows (``GET /v1/models``)."""
        data = self.request_json("GET", "/v1/models")
        rows = data.get("data") if isinstance(data, Mapping) else None
        if not isinstance(rows, list):
            raise self._not_api(json.dumps(data))
        return [
            {
                "name": str(row.get("id", "")),
                "owned_by": row.get("owned_by"),
                "created": row.get("created"),
            }
            for row in rows
            if isinstance(row, Mapping)
        ]

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        """Served models by name, cached for ``max_age`` s; a failure counts as none.

        The same contract as :meth:`OllamaClient.installed_models`, for hints that must
        never wait on a server that is down.
        """
        now = time.monotonic()
        if self._models is not None and now - self._models[0] < max_age:
            return self._models[1]
        try:
            data = self.request_json("GET", "/v1/models", timeout=timeout)
        except OllamaMagicError:
            data = None
        rows = data.get("data") if isinstance(data, Mapping) else None
        models = {
            str(row["id"]): {"name": str(row["id"]), "owned_by": row.get("owned_by")}
            for row in (rows if isinstance(rows, list) else ())
            if isinstance(row, Mapping) and row.get("id")
        }
        self._models = (now, models)
        return models

    def stream(
        self, path: str, body: dict[str, Any], *, trace: LineHook | None = None
    ) -> AnswerStream:
        """Stream an Ollama chat ``body`` from ``/v1/chat/completions`` as events.

        ``path`` is accepted for symmetry with :meth:`OllamaClient.stream` (``/api/chat``).
        ``trace(line, time)`` sees each raw line of the event stream. Closing the stream (or
        an interrupt while iterating) hangs up, which tells the server to stop generating.
        """
        if path not in ("/api/chat", "/v1/chat/completions", CHAT_PATH):
            raise OllamaUsageError(
                f"OpenAI-compatible servers only stream chat completions, not {path}."
            )
        request = openai_chat_body(body)
        started = time.perf_counter()
        response = self._send("POST", CHAT_PATH, request, timeout=None)
        return AnswerStream(response, self._events(response, started, request["model"], trace))

    def chat(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> AnswerStream:
        """Like :meth:`OllamaClient.chat`: build the Ollama body, then :meth:`stream` it."""
        return self.stream("/api/chat", build_chat_body(model, messages, **kwargs))

    # -- streaming ---------------------------------------------------------------------------

    def _lines(self, response: requests.Response, trace: LineHook | None) -> Iterator[bytes]:
        """Raw event-stream lines; transport failures become stream errors."""
        lines = sse_lines(body_chunks(response))
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except urllib3.exceptions.ReadTimeoutError:
                raise _retitled(
                    StreamTimeoutError(
                        f"{self.base_url} sent nothing for {self.timeout:g} s in the middle of "
                        "the answer. The server may be overloaded or stuck; allow longer waits "
                        "with --timeout, or re-run the cell."
                    ),
                    "The server stopped responding",
                ) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise self._truncated(f" ({self._reason(exc)})") from None
            if trace is not None and line:
                trace(line, time.perf_counter())
            yield line

    def _chunks(
        self, response: requests.Response, trace: LineHook | None, end: list[bool]
    ) -> Iterator[dict]:
        """The JSON objects of the event stream; ``end[0]`` turns True at ``data: [DONE]``."""
        for kind, data, complete in sse_events(self._lines(response, trace)):
            if kind == "error":
                try:
                    obj: Any = json.loads(data)
                except ValueError:
                    obj = data
                raise self._stream_error(_error_text(obj)[0] or data)
            if data.strip() == "[DONE]":
                end[0] = True
                return
            try:
                obj = json.loads(data)
            except ValueError:
                if not complete:
                    return  # cut inside the last event: reported as a truncation
                raise _retitled(
                    UnexpectedDataError(
                        f"The server sent an event that is not JSON: {_snippet(data)!r}. "
                        f"Is {self.base_url} an OpenAI-compatible API?"
                    ),
                    "Unexpected data from the server",
                ) from None
            if not isinstance(obj, dict):
                raise _retitled(
                    UnexpectedDataError(
                        f"The server sent {_snippet(data)!r} where an object belongs."
                    ),
                    "Unexpected data from the server",
                )
            if obj.get("error"):
                raise self._stream_error(_error_text(obj)[0])
            yield obj

    def _events(
        self, response: requests.Response, started: float, model: str, trace: LineHook | None
    ) -> Iterator[Event]:
        content_type = response.headers.get("Content-Type", SSE).split(";")[0].strip().lower()
        end = [False]
        try:
            if content_type == "application/json":
                chunks: Iterable[Mapping[str, Any]] = [self._whole(response, trace)]
                end[0] = True
            elif content_type in (SSE, "text/plain", ""):
                chunks = self._chunks(response, trace, end)
            else:
                raise self._not_api(response.raw.read(512, decode_content=True) or b"")
            done = yield from chat_events(chunks, started, model)
        finally:
            response.close()
        if done.done_reason is None:
            if not end[0]:
                raise self._truncated("")
            done.done_reason = "stop"  # [DONE] without a finish_reason: the server is finished
        yield done

    def _whole(self, response: requests.Response, trace: LineHook | None) -> dict[str, Any]:
        """A server that ignored ``stream: true`` and sent one ``chat.completion`` object."""
        data = response.content
        if trace is not None:
            trace(data, time.perf_counter())
        try:
            obj = json.loads(data)
        except ValueError:
            raise self._not_api(data) from None
        if not isinstance(obj, dict):
            raise self._not_api(data)
        if obj.get("error"):
            raise self._stream_error(_error_text(obj)[0])
        return obj
