"""An Ollama-compatible HTTP server for tests and demos: scripted, streamed, standard library only.

Why a real socket server rather than a mocked ``requests``: the bugs worth catching in a
streaming client live in the transport. A JSON line split across two chunks (even inside a
multi-byte character), an error line after the status is already 200, a connection dropped
mid-answer, a server that stalls before its first byte, a user who interrupts the cell and
hangs up: :class:`FakeOllama` produces each of these on purpose, over real HTTP/1.1 with
chunked encoding, flushing every chunk as it is written.

Tests script answers with :class:`Reply` and synchronise with :class:`Gate` instead of
sleeping::

    from ollama_magic.testing import FakeOllama, Gate, Reply

    with FakeOllama(models=("llama3.2", "qwen3:8b"), thinking_models=("qwen3:8b",)) as server:
        server.enqueue(Reply.answer(["Hel", "lo"]))
        ...  # point the client at server.url (or OLLAMA_HOST=server.host)
        assert server.requests[-1].json()["model"] == "llama3.2"

Without a scripted reply the server echoes the prompt (``"You said: ..."``, or the JSON
``{"you_said": ...}`` when the request asks for a ``format``), validates
model names and ``think`` like Ollama does, and answers the small endpoints (``/``,
``/api/version``, ``/api/tags``, ``/api/ps``, ``/api/show``, ``/api/pull``).

``python -m ollama_magic.testing --delay 0.05`` serves a paced fake for demos and benchmarks.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from .testing_chunks import _Call, _now, _Renderer
from .testing_http import (
    RecordedRequest,
    _decode,
    _Server,
    comma_list,
    serve_until_interrupted,
    server_arguments,
)
from .testing_lens import (
    FAKE_PROBABILITIES,
    TOO_LONG,
    fake_logprobs,
    render_template,
)
from .testing_models import (
    ModelRoutes,
    ModelState,
    _digest,
)
from .testing_steps import (
    JSON_UTF8,
    NDJSON,
    TEXT_UTF8,
    ErrorLine,
    Final,
    Gate,
    Hangup,
    Pause,
    Reply,
    Step,
    Thinking,
    Token,
    split_tokens,
)

__all__ = [
    "FAKE_PROBABILITIES",
    "JSON_UTF8",
    "NDJSON",
    "TEXT_UTF8",
    "ErrorLine",
    "FakeOllama",
    "Final",
    "Gate",
    "Hangup",
    "Pause",
    "RecordedRequest",
    "Reply",
    "Step",
    "Thinking",
    "Token",
    "fake_logprobs",
    "main",
    "render_template",
    "split_tokens",
]

#: What ``GET /api/version`` reports.
VERSION = "0.33.0"

_DEFAULT_THINKING = ("Let me think.", " The user wants their words echoed back.")


# --------------------------------------------------------------------------------------------
# The Ollama routes


class _Handler(ModelRoutes):
    server_version = "FakeOllama/" + VERSION

    _ROUTES: ClassVar[dict[str, tuple[str, ...]]] = {
        "/": ("GET", "HEAD"),
        "/api/version": ("GET", "HEAD"),
        "/api/tags": ("GET", "HEAD"),
        "/api/ps": ("GET",),
        "/api/show": ("POST",),
        "/api/chat": ("POST",),
        "/api/generate": ("POST",),
        "/api/pull": ("POST",),
    }

    # -- routes ------------------------------------------------------------------------------

    def _route(self, path: str, body: bytes) -> None:
        methods = self._ROUTES.get(path)
        if methods is None:
            self._send(404, b"404 page not found", "text/plain")
        elif self.command not in methods:
            self._send(405, b"405 method not allowed", "text/plain")
        elif path == "/":
            self._send(200, b"Ollama is running", TEXT_UTF8)
        elif path == "/api/version":
            self._send_json(200, {"version": self.server.fake.version})
        elif path == "/api/tags":
            self._send_json(200, {"models": [self._tag(name) for name in self.server.fake.models]})
        elif path == "/api/ps":
            self._send_json(200, {"models": self.server.fake._ps_rows()})
        elif path == "/api/show":
            self._show(body)
        elif path == "/api/pull":
            self._pull(body)
        else:
            endpoint = path.rsplit("/", 1)[-1]
            go_type = "ChatRequest" if endpoint == "chat" else "GenerateRequest"
            request, error = _decode(body, go_type)
            call = _Call(endpoint, request, error)
            if not error:
                self.server.fake._note_use(call.model, request.get("keep_alive"))
                self.server.fake._note_window(call.model, request.get("options"))
            if request.get("_debug_render_only") is True and not error:
                return self._render_only(call)
            reply = self.server.fake._next_reply()
            if reply is None:
                self._default(call)
            else:
                self._serve(reply, call)

    def _pull(self, body: bytes) -> None:
        request, error = _decode(body, "PullRequest")
        if error:
            return self._send_error(400, error)
        fake = self.server.fake
        name = request.get("model") or request.get("name") or ""
        ok = fake.has_model(name) or fake.can_pull(name)
        if request.get("stream") is False:
            if not ok:
                return self._send_error(500, "pull model manifest: file does not exist")
            fake._add_model(name)
            return self._send_json(200, {"status": "success"})
        digest = "sha256:" + _digest(name)
        steps: list[Step] = [{"status": "pulling manifest"}]
        if ok:
            total = 2_019_377_376
            layer = {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total}
            steps += [
                layer,
                {**layer, "completed": total // 2},
                {**layer, "completed": total},
                {"status": "verifying sha256 digest"},
                {"status": "writing manifest"},
                {"status": "success"},
            ]
        else:
            steps.append(ErrorLine("pull model manifest: file does not exist"))
        delay = fake.default_delay
        paced: list[Step] = []
        for step in steps:
            if paced and delay > 0:
                paced.append(Pause(delay))
            paced.append(step)
        fake._add_model(name)  # installed before the client can read "success"
        self._stream(Reply.stream(*paced), _Call("pull", request))

    # -- chat / generate -----------------------------------------------------------------------

    def _default(self, call: _Call) -> None:
        """Answer like Ollama would, echoing the prompt."""
        fake = self.server.fake
        if call.error:
            return self._send_error(400, call.error)
        model = call.model
        if not model and call.endpoint == "chat":
            return self._send_error(400, "model is required")
        if not fake.has_model(model):
            return self._send_error(404, f"model '{model}' not found")
        think = call.request.get("think")
        if (think is True or isinstance(think, str)) and not fake.thinks(model):
            return self._send_error(400, f'"{model}" does not support thinking')
        top_logprobs = call.request.get("top_logprobs")
        if isinstance(top_logprobs, int) and not 0 <= top_logprobs <= 20:
            return self._send_error(400, "top_logprobs must be between 0 and 20")
        window = fake.window(model)
        prompt_tokens = 10 + len(call.prompt.split())  # as the final chunk counts them
        if prompt_tokens > window and not fake.context_shift:
            return self._send_error(400, TOO_LONG)
        empty = not call.request.get("messages") if call.endpoint == "chat" else not call.prompt
        if empty:
            keep_alive = call.request.get("keep_alive")
            reason = "unload" if keep_alive in (0, "0", "0s", "0m", "0h") else "load"
            final = {**_Renderer(call, None)._text(""), "done": True, "done_reason": reason}
            return self._send_json(200, final)
        if call.request.get("format"):
            # Structured output was asked for: answer with JSON, as a real model would.
            tokens = split_tokens(json.dumps({"you_said": call.prompt}, ensure_ascii=False))
        else:
            tokens = split_tokens("You said: " + call.prompt)
        done_reason = "stop"
        options = call.request.get("options")
        limit = options.get("num_predict") if isinstance(options, dict) else None
        if isinstance(limit, (int, float)) and 0 < limit < len(tokens):
            tokens, done_reason = tokens[: int(limit)], "length"
        thinking = _DEFAULT_THINKING if fake.thinks(model) and think is not False else ()
        # An over-long prompt is cut to the window silently, as Ollama does by default.
        stats = {"prompt_eval_count": window} if prompt_tokens > window else {}
        reply = Reply.answer(
            tokens,
            thinking=thinking,
            delay=fake.default_delay,
            done_reason=done_reason,
            stats=stats,
        )
        self._serve(reply, call)

    def _render_only(self, call: _Call) -> None:
        """``_debug_render_only``: the prompt as the template renders it; nothing generated."""
        if not self.server.fake.has_model(call.model):
            return self._send_error(404, f"model '{call.model}' not found")
        messages = call.request.get("messages")
        if call.endpoint == "generate":
            messages = [{"role": "user", "content": call.prompt}]
        rendered, images = render_template(messages if isinstance(messages, list) else [])
        info: dict[str, Any] = {"rendered_template": rendered}
        if images:
            info["image_count"] = images
        message = {"role": "", "content": ""}
        self._send_json(
            200,
            {"model": call.model, "created_at": _now(), "message": message, "done": False}
            | {"_debug_info": info},
        )

    def _serve(self, reply: Reply, call: _Call) -> None:
        if reply.before is not None:
            self._wait(reply.before)
        if reply.mode == "hangup":
            self._hang_up()
        elif reply.mode == "default":
            self._default(call)
        elif reply.mode == "fixed":
            self._send(reply.status, reply.body or b"", reply.content_type, reply.headers)
        elif reply.mode == "answer" and not call.streaming:
            self._whole(reply, call)
        else:
            self._stream(reply, call)

    def _run(self, step: Step) -> bool:
        """Carry out a control step; False if ``step`` is content to send."""
        if isinstance(step, Gate):
            self._wait(step)
        elif isinstance(step, Pause):
            self._wait(step.seconds)
        elif isinstance(step, Hangup):
            self._hang_up(step.reset)
        else:
            return False
        return True

    def _stream(self, reply: Reply, call: _Call) -> None:
        renderer = _Renderer(call, reply.model)
        renderer.gives_logprobs = self.server.fake.logprobs
        for step in reply.steps:
            if not self._run(step):
                self._chunk(reply, renderer.step_bytes(step))
                if isinstance(step, ErrorLine):
                    break
        self._chunk(reply, b"")
        self._write(b"0\r\n\r\n")

    def _whole(self, reply: Reply, call: _Call) -> None:
        """The non-streamed form of an answer: one object with all the text (T10, T11)."""
        renderer = _Renderer(call, reply.model)
        content: list[str] = []
        thinking: list[str] = []
        for step in reply.steps:
            if self._run(step):
                continue
            if isinstance(step, ErrorLine):
                return self._send_error(500, step.message)
            if isinstance(step, Token):
                renderer.tokens += 1
                content.append(step.text)
            elif isinstance(step, Thinking):
                thinking.append(step.text)
            elif isinstance(step, Final):
                text = "".join(content) + step.text
                return self._send_json(200, renderer.final(step, text, "".join(thinking)))


# --------------------------------------------------------------------------------------------
# Public server object


class FakeOllama(ModelState):
    """A local Ollama look-alike on a free port, for tests, notebooks and demos.

    ``models`` are the installed models (``thinking_models`` are installed too, and can
    think); names match with or without ``:latest``. ``pullable`` models can be installed
    through ``/api/pull``. ``default_delay`` paces default answers (seconds per chunk).
    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        models: Iterable[str] = ("llama3.2",),
        thinking_models: Iterable[str] = ("qwen3:8b",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default_delay: float = 0.0,
        pullable: Iterable[str] = (),
        version: str = VERSION,
        logprobs: bool = True,
        context_length: int = 4096,
        context_shift: bool = True,
    ) -> None:
        self.thinking_models = list(thinking_models)
        self.models = list(models) + [m for m in self.thinking_models if m not in models]
        self.pullable = list(pullable)
        self.default_delay = default_delay
        self.version = version
        #: Whether ``logprobs`` requests get them (False: like Ollama before 0.12.11).
        self.logprobs = logprobs
        #: The window a model loads with unless a request sets ``num_ctx`` (``/api/ps``).
        self.context_length = context_length
        #: True: an over-long prompt is cut to the window silently (Ollama's default);
        #: False: it is refused with Ollama's HTTP 400.
        self.context_shift = context_shift
        self._windows: dict[str, int] = {}
        self._bind = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._queue: deque[Reply] = deque()
        self._by_path: dict[str, deque[Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._hangups = 0
        self._changed = threading.Condition()
        self._loaded: dict[str, datetime] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeOllama:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is not None:
            return self
        self._server = _Server(self._bind, self, _Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeOllama:{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every connection; handlers blocked on gates give up at once."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FakeOllama {where} models={self.models!r}>"

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (a free one when constructed with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("FakeOllama is not running: call start() or use `with`")
        return self._server.server_port

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, suitable for ``OLLAMA_HOST``."""
        return f"{self._bind[0]}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    # -- scripting and inspection ------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies for the next ``/api/chat``/``/api/generate`` requests, in order."""
        with self._changed:
            self._queue.extend(replies)

    def enqueue_for(self, path: str, *replies: Reply) -> None:
        """Queue replies for the next requests to ``path`` (any endpoint, ``/v1/...`` too),
        served instead of the route's own answer: :meth:`Reply.raw`,
        :meth:`Reply.echo_request` or :meth:`Reply.hangup_before_headers`."""
        with self._changed:
            self._by_path.setdefault(path, deque()).extend(replies)

    @property
    def pending(self) -> int:
        """How many enqueued replies no request has consumed yet."""
        with self._changed:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in order."""
        with self._changed:
            return list(self._requests)

    @property
    def hangups(self) -> int:
        """How many times a client closed the connection before its reply was finished."""
        with self._changed:
            return self._hangups

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` requests have arrived; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= n, timeout)

    def wait_for_hangup(self, timeout: float = 5.0, count: int = 1) -> bool:
        """Block until ``count`` client hang-ups have been recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._hangups >= count, timeout)

    def reset(self) -> None:
        """Forget queued replies, recorded requests and hang-ups (between tests)."""
        with self._changed:
            self._queue.clear()
            self._by_path.clear()
            self._requests.clear()
            self._hangups = 0

    # -- called by handlers ------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _next_reply(self) -> Reply | None:
        with self._changed:
            return self._queue.popleft() if self._queue else None

    def _next_reply_for(self, path: str) -> Reply | None:
        with self._changed:
            queue = self._by_path.get(path)
            return queue.popleft() if queue else None

    def _note_hangup(self) -> None:
        with self._changed:
            self._hangups += 1
            self._changed.notify_all()


# --------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake Ollama until Ctrl+C, for demos and benchmarks without a GPU."""
    parser = server_arguments(
        "python -m ollama_magic.testing",
        "Serve an Ollama-compatible fake that echoes prompts, paced per token.",
        port=11434,
    )
    parser.add_argument(
        "--thinking-models", default="qwen3:8b", help="comma-separated models that think"
    )
    args = parser.parse_args(argv)
    server = FakeOllama(
        comma_list(args.models),
        comma_list(args.thinking_models),
        host=args.host,
        port=args.port,
        default_delay=args.delay,
    ).start()  # the address is known from here on (port 0 picks one)
    return serve_until_interrupted(
        server, f"Fake Ollama at {server.url} serving {', '.join(server.models)}"
    )


if __name__ == "__main__":
    sys.exit(main())
