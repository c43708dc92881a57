"""Tab completion for ``%%ollama`` and ``%ollama``: model names from the server, subcommands.

The names come from whichever backend the magic is configured for (Ollama's model list, an
OpenAI-compatible server's ``/v1/models``), followed by the installed embedded ``local:``
models.

Completion runs on every Tab press, on the same thread that runs the user's code: a slow or
absent server must never freeze typing. So the model list is fetched in a helper thread that
the Tab press waits for at most :data:`DEADLINE` seconds (socket timeouts cannot bound a slow
DNS lookup), with short connect and read timeouts, and the answer (or the failure) is kept for
:data:`CACHE_SECONDS`, per server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .backends import Backend, LocalBackend, make_backend
from .errors import OllamaMagicError
from .manage import SUBCOMMANDS

#: How long a model list (or a failure to get one) is reused, in seconds.
CACHE_SECONDS = 30.0
#: Longest time a Tab press waits for the server, in seconds.
DEADLINE = 0.3
#: Connect and read timeouts of the background request; together within :data:`DEADLINE`.
CONNECT_TIMEOUT = 0.15
READ_TIMEOUT = 0.15
#: The magics whose arguments are completed, as IPython's completer names them.
COMMANDS = ("%ollama", "%%ollama")
#: Subcommands whose argument is a model name.
TAKES_MODEL = ("pull", "show", "unload")


@dataclass
class _Entry:
    names: list[str] = field(default_factory=list)
    expires: float = 0.0
    fetching: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def fetch_model_names(server: Backend) -> list[str]:
    """The server's model names (``:latest`` left off) in its order, then the embedded ones.

    Asked with short timeouts of its own, so a server that never answers holds no thread long.
    """
    quick = make_backend(
        "", server.base_url, server.kind, READ_TIMEOUT, connect_timeout=CONNECT_TIMEOUT
    )
    try:
        rows = quick.list_models()
    except OllamaMagicError:
        rows = []  # down, slow or not a model server: the embedded models still complete
    finally:
        quick.close()
    names: list[str] = []
    for row in [*rows, *LocalBackend().list_models()]:
        name = row.get("name") or row.get("model")
        if isinstance(name, str) and name:
            name = name.removesuffix(":latest")
            if name not in names:
                names.append(name)
    return names


class ModelNameCache:
    """Model names per server, fetched in the background and kept for ``ttl`` seconds.

    A Tab press waits at most ``deadline`` seconds (default :data:`DEADLINE`); a fetch that
    takes longer still fills the cache for the next press.

    A failed fetch is remembered like a successful one (as no names), so a server that is down
    costs one quick attempt per ``ttl``, not one per key press.
    """

    def __init__(
        self,
        backend_factory: Callable[[], Backend],
        *,
        ttl: float = CACHE_SECONDS,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[Backend], list[str]] = fetch_model_names,
    ) -> None:
        self._backend_factory = backend_factory
        self._ttl = ttl
        self._deadline = DEADLINE if deadline is None else deadline
        self._clock = clock
        self._fetch = fetch
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        #: How many fetches were started (each is one request to a server).
        self.fetches = 0

    def names(self) -> list[str]:
        """The cached names, refreshed when stale; waits at most ``deadline`` for the server."""
        try:
            server = self._backend_factory()
        except Exception:  # a bad --host / OLLAMA_HOST: the magic itself will say so
            return []
        key = (server.kind, server.base_url)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.fetching or self._clock() < entry.expires):
                return list(entry.names)
            entry = self._entries[key] = _Entry(
                names=entry.names if entry is not None else [], fetching=True
            )
            self.fetches += 1
        threading.Thread(
            target=self._refresh, args=(server, entry), name="ollama-magic-complete", daemon=True
        ).start()
        entry.done.wait(self._deadline)
        with self._lock:
            return list(entry.names)

    def _refresh(self, server: Backend, entry: _Entry) -> None:
        try:
            names = self._fetch(server)
        except Exception:  # down, slow, not Ollama: complete nothing until the entry expires
            names = []
        with self._lock:
            entry.names = names
            entry.expires = self._clock() + self._ttl
            entry.fetching = False
        entry.done.set()

    def clear(self) -> None:
        """Forget every cached list (the next Tab asks the server again)."""
        with self._lock:
            self._entries.clear()


def complete(
    text_until_cursor: str,
    symbol: str,
    model_names: Callable[[], list[str]],
    subcommands: Iterable[str] = SUBCOMMANDS,
) -> list[str]:
    """Completions for the word at the cursor of a ``%ollama``/``%%ollama`` line.

    IPython replaces only ``symbol``, the part of the word after its last delimiter (``:`` and
    ``/`` are delimiters), so each completion is returned relative to it.

    >>> names = lambda: ["llama3.2", "qwen3:8b", "qwen3:32b"]
    >>> complete("%ollama p", "p", names)
    ['ps', 'pull']
    >>> complete("%ollama pull qw", "qw", names)
    ['qwen3:8b', 'qwen3:32b']
    >>> complete("%%ollama qwen3:3", "3", names), complete("%%ollama qwen3:", "", names)
    (['32b'], ['8b', '32b'])
    >>> complete("%%ollama llama3.2 --system ", "", names)
    []
    >>> complete("%ollama h", "h", names, subcommands=["history", "pull"])
    ['history']
    """
    words = text_until_cursor.split()
    if not words or words[0] not in COMMANDS:
        return []
    if text_until_cursor[-1:].isspace():
        words.append("")
    position, word = len(words) - 1, words[-1]
    candidates: list[str] = []
    if position == 1:
        if words[0] == "%ollama":
            candidates += sorted(subcommands)
        if not word.startswith("-"):
            candidates += model_names()
    elif position == 2 and words[1] in TAKES_MODEL:
        candidates += model_names()
    matches = [c for c in candidates if c.startswith(word)]
    if not word.endswith(symbol):  # a tokenizer we do not know: offer whole names
        return matches
    cut = len(word) - len(symbol)
    return [m[cut:] for m in matches if m[cut:]]


class OllamaCompleter:
    """The ``complete_command`` hook IPython calls for lines that start with the magic."""

    def __init__(
        self,
        cache: ModelNameCache,
        subcommands: Callable[[], Iterable[str]] = lambda: SUBCOMMANDS,
    ) -> None:
        self.cache = cache
        self.subcommands = subcommands

    def __call__(self, *args: Any) -> list[str]:
        """``(shell, event)`` as ``set_hook`` binds it, or just ``(event)``; never raises."""
        event = args[-1]
        try:
            return complete(
                event.text_until_cursor, event.symbol or "", self.cache.names, self.subcommands()
            )
        except Exception:
            return []


def install(
    shell: Any,
    backend_factory: Callable[[], Backend],
    subcommands: Callable[[], Iterable[str]] | None = None,
) -> None:
    """Complete model and subcommand names after ``%%ollama`` and ``%ollama`` in ``shell``.

    ``backend_factory`` returns the backend of the configured server; only its kind and URL
    are used (completion makes its own short-timeout requests). ``subcommands`` gives the names
    ``%ollama`` accepts (default: :data:`~ollama_magic.manage.SUBCOMMANDS`). Installing again
    replaces the previous completer.
    """
    uninstall(shell)
    cache = ModelNameCache(backend_factory)
    completer = OllamaCompleter(cache, subcommands) if subcommands else OllamaCompleter(cache)
    for command in COMMANDS:
        shell.set_hook("complete_command", completer, str_key=command)


def uninstall(shell: Any) -> None:
    """Remove the completers :func:`install` added (for ``unload_ipython_extension``)."""
    dispatcher = getattr(shell, "strdispatchers", {}).get("complete_command")
    for command in COMMANDS:
        chain = getattr(dispatcher, "strs", {}).get(command)
        if chain is None:
            continue
        chain.chain = [
            (priority, hook)
            for priority, hook in chain.chain
            if not isinstance(getattr(hook, "__func__", hook), OllamaCompleter)
        ]
