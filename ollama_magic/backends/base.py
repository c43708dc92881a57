"""The one interface every backend speaks, and the one place errors leave a backend.

The magic, ``%ollama list`` and the other subcommands, tab completion and ``python -m
ollama_magic run`` talk to a server only through :class:`Backend`; none of them knows which
client class is behind it. Every error a backend raises passes :meth:`GuardedBackend._errors`
(or :class:`ScrubbedStream` while an answer streams), which removes the API key and anything
shaped like a credential from what the user will see.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from typing import Any, Protocol

from ..errors import OllamaMagicError, scrub_error, scrub_text
from ..events import Event

#: Called with each raw stream line and its arrival time (``time.perf_counter()``).
LineHook = Callable[[bytes, float], None]


class AnswerEvents(Protocol):
    """A streamed answer: events, and a way to hang up (``close`` here, ``abort`` from
    another thread)."""

    def __iter__(self) -> Iterator[Event]: ...

    def __next__(self) -> Event: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc_info: object) -> None: ...


class Backend(Protocol):
    """Ollama, an OpenAI-compatible server or the embedded model, as the magic sees them."""

    #: ``ollama``, ``openai`` or ``local``: recorded with each answer, never dispatched on.
    kind: str
    #: Where answers come from (``local`` for the embedded model).
    base_url: str
    #: How messages name the server: "Ollama", "the OpenAI-compatible server", ...
    label: str

    def stream_chat(self, body: dict[str, Any], *, trace: LineHook | None = None) -> AnswerEvents:
        """Stream one answer to an Ollama-shaped chat ``body``."""
        ...

    def describe_request(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Where the body would go and what would be sent, for ``--dry-run``."""
        ...

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        """Models by name (cached; a failure counts as none): for hints that never wait."""
        ...

    def model_names(self, *, max_age: float = 30.0, timeout: float = 2.0) -> frozenset[str]:
        """The names of :meth:`installed_models`."""
        ...

    def list_models(self) -> list[dict[str, Any]]:
        """The models as rows for ``%ollama list`` (``name`` and what else is known)."""
        ...

    def describe_model(self, name: str) -> dict[str, Any]:
        """One model's card, in the shape of Ollama's ``/api/show``."""
        ...

    def loaded_models(self) -> list[dict[str, Any]]:
        """The models in memory (``%ollama ps``)."""
        ...

    def pull(self, name: str) -> Generator[dict[str, Any], None, None]:
        """Download a model: Ollama's progress objects; closing the generator hangs up."""
        ...

    def unload(self, name: str) -> None:
        """Free a model's memory now."""
        ...

    def version(self, *, timeout: float = 30.0) -> str:
        """The server's version; raises ``OllamaConnectionError`` when it cannot be reached."""
        ...

    def check_model(self, name: str) -> None:
        """Raise ``ModelNotFoundError`` (with the fix) before any request, if it can tell."""
        ...

    def context_window(self, model: str, body: dict[str, Any]) -> int | None:
        """The context length ``model`` ran with for ``body`` (None when it cannot tell)."""
        ...

    def render_prompt(self, body: dict[str, Any]) -> tuple[str, int] | None:
        """The prompt the model receives (chat template applied) and its image count,
        generating nothing; None when this backend cannot show it."""
        ...

    def close(self) -> None: ...


def requested_window(body: dict[str, Any]) -> int | None:
    """An explicit ``num_ctx`` option of a request body.

    >>> requested_window({"options": {"num_ctx": 8192}}), requested_window({})
    (8192, None)
    """
    value = (body.get("options") or {}).get("num_ctx")
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


class ScrubbedStream:
    """An answer stream whose errors (and trace lines) carry no secrets."""

    def __init__(self, stream: AnswerEvents, secrets: tuple[str, ...]) -> None:
        self._stream, self._secrets = stream, secrets

    def __iter__(self) -> ScrubbedStream:
        return self

    def __next__(self) -> Event:
        try:
            return next(self._stream)
        except OllamaMagicError as exc:
            raise scrub_error(exc, self._secrets) from None

    def close(self) -> None:
        self._stream.close()

    def abort(self) -> None:
        self._stream.abort()

    def __enter__(self) -> ScrubbedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class GuardedBackend:
    """What every backend shares: the error guard, and the default answers of a server that
    cannot do something (a clear error instead of a wrong request)."""

    kind = ""
    base_url = ""
    label = "the server"

    def _secrets(self) -> tuple[str, ...]:
        """Values that must never be shown (an API key); credential shapes are always hidden."""
        return ()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OllamaMagicError as exc:
            raise scrub_error(exc, self._secrets()) from None

    def _traced(self, trace: LineHook | None) -> LineHook | None:
        if trace is None:
            return None
        secrets = self._secrets()

        def scrubbed(line: bytes, at: float) -> None:
            text = line.decode("utf-8", "replace")
            clean = scrub_text(text, secrets)
            trace(line if clean == text else clean.encode(), at)

        return scrubbed

    def _open_stream(self, body: dict[str, Any], trace: LineHook | None) -> AnswerEvents:
        raise NotImplementedError

    def stream_chat(self, body: dict[str, Any], *, trace: LineHook | None = None) -> AnswerEvents:
        with self._errors():
            stream = self._open_stream(body, self._traced(trace))
        return ScrubbedStream(stream, self._secrets())

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def model_names(self, *, max_age: float = 30.0, timeout: float = 2.0) -> frozenset[str]:
        return frozenset(self.installed_models(max_age=max_age, timeout=timeout))

    def context_window(self, model: str, body: dict[str, Any]) -> int | None:
        """Without a way to ask the server, only an explicit ``num_ctx`` is known."""
        return requested_window(body)

    def render_prompt(self, body: dict[str, Any]) -> tuple[str, int] | None:
        return None

    def check_model(self, name: str) -> None:
        """Most servers cannot say in advance; their answer to the request will."""
