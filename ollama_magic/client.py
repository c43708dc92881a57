"""HTTP client: turns Ollama's streamed NDJSON answer into events and typed errors.

Why not ``requests.post(...).json()``: Ollama streams by default, one JSON object per line, so
the body is many JSON documents. This module reads it as bytes, splits on ``b"\\n"`` only (text
mode would also split on U+0085, which Go sends unescaped), and translates every transport
failure into the errors of :mod:`ollama_magic.errors` in exactly one place. No IPython here.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Generator, Iterator
from typing import Any

import requests
import urllib3

from .errors import (
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaMagicError,
    OllamaResponseError,
    OllamaStreamError,
    StreamErrorLine,
    StreamTimeoutError,
    TruncatedStreamError,
    UnexpectedDataError,
)
from .events import AnswerDelta, Done, Event, Stats, ThinkingDelta, ToolCall
from .host import parse_host
from .transport import (
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    HttpClient,
    LineHook,
    _snippet,
    body_chunks,
    is_loopback,
    split_lines,
)

_JSON = json.JSONDecoder()


def parse_json_line(line: bytes) -> Any:
    """``json.loads`` for one line of a UTF-8 stream, at half its cost per line.

    ``json.loads`` sniffs the encoding of every bytes object it gets (in Python), which is most
    of its time for a token-sized line; Ollama's streams are UTF-8. Bad UTF-8 or bad JSON
    raises ``ValueError`` as before.

    >>> parse_json_line(b'{"response": "hi", "done": false} ')
    {'response': 'hi', 'done': False}
    """
    return _JSON.decode(line.decode("utf-8"))


class OllamaClient(HttpClient):
    """A small client for Ollama's chat endpoint that streams.

    >>> client = OllamaClient("http://127.0.0.1:11434")  # doctest: +SKIP
    >>> for event in client.chat("llama3.2", [{"role": "user", "content": "Hi"}]):
    ...     print(event)  # doctest: +SKIP
    """

    _server_log = "`ollama serve`'s log"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        # Any spelling OLLAMA_HOST accepts ("localhost:11434", "0.0.0.0") becomes a full URL.
        super().__init__(parse_host(base_url), timeout=timeout, connect_timeout=connect_timeout)
        self._tags: tuple[float, dict[str, dict[str, Any]]] | None = None

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        """``/api/tags`` entries by name (``x:latest`` also as ``x``), cached for ``max_age`` s.

        Failures count as "no models" for the same period, so callers that only want a hint
        (the one-line magic, the reproducibility stamp) never wait on a server that is down.
        """
        now = time.monotonic()
        cached = self._tags
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        models: dict[str, dict[str, Any]] = {}
        try:
            entries = self.model_list("/api/tags", timeout=timeout)
        except OllamaMagicError:
            entries = []
        for entry in entries:
            name = str(entry.get("name") or entry.get("model") or "")
            if name:
                models[name] = entry
                models.setdefault(name.removesuffix(":latest"), entry)
        self._tags = (now, models)
        return models

    def model_list(self, path: str = "/api/tags", *, timeout: float = 30) -> list[dict[str, Any]]:
        """The ``models`` array of ``/api/tags`` or ``/api/ps``, checked; errors raise."""
        data = self.request_json("GET", path, timeout=timeout)
        models = data.get("models") if isinstance(data, dict) else None
        if data is None or (models is None and isinstance(data, dict)):
            return []
        if not isinstance(models, list):
            raise UnexpectedDataError(
                f"{self.base_url}{path} did not answer with a model list. "
                "Is this an Ollama server? Check --host / OLLAMA_HOST."
            )
        return [m for m in models if isinstance(m, dict)]

    def stream_json(self, path: str, body: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
        """The objects of any NDJSON endpoint (``/api/pull`` progress, ...), as dicts.

        An ``{"error": ...}`` line raises :class:`StreamErrorLine`; closing the generator
        closes the connection.
        """
        response = self._send("POST", path, body)
        try:
            yield from self._json_lines(response)
        finally:
            response.close()

    def _unreachable(self, reason: str) -> OllamaConnectionError:
        local = is_loopback(self.base_url)
        hint = (
            "Start it with `ollama serve` (or open the Ollama app)"
            if local
            else "Check that the server is running and reachable from this machine"
        )
        return OllamaConnectionError(
            f"Could not connect to Ollama at {self.base_url} ({reason}). {hint}, or point "
            "%%ollama at another server with --host URL or the OLLAMA_HOST environment variable.",
            url=self.base_url,
        )

    def _stalled(self, seconds: float) -> StreamTimeoutError:
        return StreamTimeoutError(
            f"{self.base_url} accepted the request but sent nothing for {seconds:g} s. "
            "A large model may still be loading: raise the limit with --timeout (0 waits "
            "forever), or warm the model up first."
        )

    def _not_json(self, path: str, data: bytes) -> UnexpectedDataError:
        return UnexpectedDataError(
            f"{self.base_url}{path} answered with something that is not JSON: "
            f"{_snippet(data)!r}. Is this an Ollama server?"
        )

    def _http_error(self, response: requests.Response, model: str) -> OllamaResponseError:
        status = response.status_code
        raw = response.content[:4096]
        error = _snippet(raw, 500)
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
            error = decoded["error"]
        elif isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
            error = str(decoded["error"].get("message", decoded["error"]))
        where = f"{self.base_url}"
        if status == 404 and decoded is not None and "not found" in error:
            return ModelNotFoundError(
                f"The model '{model}' is not installed on {where} (Ollama said: {error}). "
                f"Download it with %ollama pull {model} (or add --pull to the magic line); "
                "%ollama list shows the installed models.",
                status,
                error,
                model,
            )
        if status == 404:
            return OllamaResponseError(
                f"{where} answered HTTP 404 ({error or 'empty body'}) for {response.url}. "
                "Is this an Ollama server? Check --host / OLLAMA_HOST, including any path prefix.",
                status,
                error,
            )
        if status == 403 and not error:
            return OllamaResponseError(
                f"{where} refused the request (HTTP 403, empty body). Ollama does this when the "
                "Host header is not a local name; connect through 127.0.0.1 or allow the origin "
                "with OLLAMA_ORIGINS on the server.",
                status,
                error,
            )
        if 400 <= status < 500:
            hint = ""
            if "does not support thinking" in error:
                hint = " Drop --think for this model, or use --no-think."
            elif "json:" in error or "invalid character" in error:
                hint = " Check the --option and --format values."
            return OllamaResponseError(
                f"Ollama rejected the request (HTTP {status}): {error}.{hint}", status, error
            )
        hint = " Check `ollama serve`'s log for details."
        if status == 503:
            hint = " The server is busy with other requests; try again in a moment."
        elif "must be of type" in error:
            hint = " Fix the --option value."
        return OllamaResponseError(
            f"Ollama failed (HTTP {status}): {error or 'no details given'}.{hint}", status, error
        )

    # -- streaming ---------------------------------------------------------------------------

    def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        options: dict[str, Any] | None = None,
        format: str | dict[str, Any] | None = None,
        think: bool | str | None = None,
        keep_alive: str | int | float | None = None,
    ) -> AnswerStream:
        """Stream ``/api/chat``: yields ThinkingDelta/AnswerDelta events, then one Done.

        Raises an :class:`~ollama_magic.errors.OllamaMagicError` subclass on any failure. Closing
        the generator (or an exception such as KeyboardInterrupt inside it) closes the HTTP
        connection, which is how Ollama is told to stop generating.
        """
        body = build_chat_body(
            model, messages, options=options, format=format, think=think, keep_alive=keep_alive
        )
        return self.stream("/api/chat", body)

    def stream(
        self, path: str, body: dict[str, Any], *, trace: LineHook | None = None
    ) -> AnswerStream:
        """Stream any generating endpoint (``/api/chat`` or ``/api/generate``) as events.

        ``trace``, when given, is called with every raw line and its arrival time
        (``time.perf_counter()``), for showing how streaming works.
        """
        started = time.perf_counter()
        response = self._send("POST", path, body)
        return AnswerStream(response, self._events(response, started, trace))

    def _json_lines(
        self, response: requests.Response, trace: LineHook | None = None
    ) -> Iterator[dict[str, Any]]:
        """Each line of an NDJSON body as a dict; transport failures and error lines raise."""
        lines = split_lines(body_chunks(response))
        timeout = self.timeout
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except urllib3.exceptions.ReadTimeoutError:
                raise StreamTimeoutError(
                    f"Ollama sent nothing for {timeout:g} s in the middle of the answer. "
                    "The server may be overloaded or stuck; check `ollama ps` and its log, "
                    "or allow longer waits with --timeout."
                ) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise TruncatedStreamError(
                    "The connection to Ollama broke before the answer was complete "
                    f"({self._reason(exc)}). Check whether `ollama serve` is still running "
                    "(its log says why it stopped), then re-run the cell."
                ) from None
            if trace is not None:
                trace(line, time.perf_counter())
            try:
                chunk = parse_json_line(line)
            except ValueError:
                raise UnexpectedDataError(
                    f"The server sent a line that is not JSON: {_snippet(line)!r}. "
                    f"Is {self.base_url} an Ollama server (or a proxy that rewrites it)?"
                ) from None
            if not isinstance(chunk, dict):
                raise UnexpectedDataError(
                    f"The server sent {_snippet(line)!r} where a JSON object was expected."
                )
            error = chunk.get("error")
            if error:
                raise StreamErrorLine(
                    f"{error}. Check `ollama serve`'s log; re-run the cell to try again.",
                    str(error),
                )
            yield chunk

    def _events(
        self, response: requests.Response, started: float, trace: LineHook | None = None
    ) -> Iterator[Event]:
        done: Done | None = None
        chunks = 0
        first_token: float | None = None
        try:
            for chunk in self._json_lines(response, trace):
                if done is not None:
                    continue  # anything after the final chunk is not part of the answer
                message = chunk.get("message")
                source = message if isinstance(message, dict) else chunk
                thinking = source.get("thinking")
                text = source.get("content") if source is message else source.get("response")
                if thinking:
                    chunks += 1
                    if first_token is None:
                        first_token = time.perf_counter() - started
                    yield ThinkingDelta(thinking)
                logprobs = chunk.get("logprobs")
                if not isinstance(logprobs, list) or not logprobs:
                    logprobs = None
                if text:
                    chunks += 1
                    if first_token is None:
                        first_token = time.perf_counter() - started
                    yield AnswerDelta(text, logprobs)
                elif logprobs is not None and not thinking:
                    yield AnswerDelta("", logprobs)  # a token whose text is not yet whole
                if source is message:
                    yield from ollama_tool_calls(message.get("tool_calls"))
                if chunk.get("done"):
                    stats = Stats.from_final_chunk(chunk)
                    stats.wall_time = time.perf_counter() - started
                    stats.first_token_time = first_token
                    stats.chunks = chunks
                    reason = chunk.get("done_reason")
                    model = chunk.get("model")
                    done = Done(reason if isinstance(reason, str) else None, model, stats)
                    yield done
        except OllamaStreamError:
            if done is None:
                raise
            # The answer was complete; only the stream's tail was lost.
        finally:
            response.close()
        if done is None:
            raise TruncatedStreamError(
                "The connection closed before Ollama finished the answer (no final "
                "`done` chunk arrived). The server may have crashed or been restarted; "
                "check `ollama serve`'s log, then re-run the cell."
            )


def ollama_tool_calls(value: Any) -> Iterator[ToolCall]:
    """The calls of a chunk's ``message.tool_calls`` (``function.{name, arguments}``, ``id``).

    Malformed entries are skipped: what a call needs is a name; its arguments are checked
    against the tool's signature before anything runs.
    """
    for call in value if isinstance(value, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        call_id = call.get("id")
        yield ToolCall(
            function["name"],
            function.get("arguments", {}),
            call_id if isinstance(call_id, str) and call_id else None,
        )


class AnswerStream:
    """An iterator of events that owns its HTTP response: ``close()`` hangs up at any point.

    A bare generator cannot do that before its first ``next()``; this can, so an interrupt
    that lands between the response headers and the first token still closes the connection.
    """

    def __init__(self, response: requests.Response, events: Iterator[Event]) -> None:
        self.response = response
        self._events = events

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        """Stop reading and close the connection (Ollama then stops generating)."""
        if isinstance(self._events, Generator):
            self._events.close()
        self.response.close()

    def abort(self) -> None:
        """Hang up from another thread: a read blocked on this stream returns at once.

        (``close()`` cannot be used while another thread is inside the stream.)
        """
        connection = getattr(self.response.raw, "_connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> AnswerStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def build_chat_body(
    model: str,
    messages: list[dict[str, Any]],
    *,
    options: dict[str, Any] | None = None,
    format: str | dict[str, Any] | None = None,
    think: bool | str | None = None,
    keep_alive: str | int | float | None = None,
) -> dict[str, Any]:
    """The JSON body of a streamed ``/api/chat`` request; unset fields are left out."""
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
    if options:
        body["options"] = options
    if format:
        body["format"] = format
    if think is not None:
        body["think"] = think
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body
