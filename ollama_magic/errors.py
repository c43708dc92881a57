"""Every error ollama_magic raises, in one tree rooted at :class:`OllamaMagicError`.

Each error carries a short message that says what went wrong *and what to do next*. In IPython
they render as that paragraph only (``_render_traceback_``), so a failed cell shows a few lines
instead of a traceback wall, yet still ends in error state so "Run All" and papermill stop.
This module imports nothing from IPython: the HTTP client raises these too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_RED = "\x1b[1;31m"
_RESET = "\x1b[0m"


class OllamaMagicError(Exception):
    """Base class: a failure the user can act on, described in one paragraph."""

    #: Short label shown before the message, e.g. "Ollama is not reachable".
    title = "ollama_magic error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        """What IPython prints instead of a traceback."""
        return [f"{_RED}{self.title}{_RESET}: {self.message}"]


#: Credentials as servers and proxies echo them: an ``Authorization`` value, a bearer token,
#: an OpenAI-style key, or a key partly starred out (``sk-***abcd``; the visible ends are
#: still secret).
_CREDENTIALS = re.compile(
    r"(?i)\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:\w+\s+)?[\w.~+/=-]+"
    r"|(?i:\bbearer\s+)[\w.~+/=-]{4,}"
    r"|\bsk-[\w-]{6,}"
    r"|[\w-]*\*{3,}[\w-]*"
)
#: Characters a key is made of, for cutting an echo of it at its real end.
_KEY_CHARS = re.compile(r"[\w.~+/=-]*")


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret, and anything shaped like a credential, as ``***``.

    A secret cut short by a snippet (``…``) is caught by its first 8 characters.

    >>> scrub_text("Authorization: Basic dXNlcg== and k3y-0123456789", ["k3y-0123456789"])
    '*** and ***'
    >>> scrub_text("<td>Bearer abc.def-123</td> cut at the token limit")
    '<td>***</td> cut at the token limit'
    """
    for secret in secrets:
        if len(secret) < 4:
            continue
        text = text.replace(secret, "***")
        head = secret[:8]
        if len(secret) >= 8 and head in text:
            pieces = text.split(head)
            text = pieces[0] + "".join("***" + _KEY_CHARS.sub("", p, count=1) for p in pieces[1:])
    return _CREDENTIALS.sub("***", text)


def scrub_error(exc: OllamaMagicError, secrets: Iterable[str] = ()) -> OllamaMagicError:
    """The error with secrets removed from everything it shows: message, args, server text."""
    known = [s for s in secrets if s]
    exc.message = scrub_text(exc.message, known)
    exc.args = tuple(scrub_text(a, known) if isinstance(a, str) else a for a in exc.args)
    server_text = getattr(exc, "error", None)
    if isinstance(server_text, str):
        exc.error = scrub_text(server_text, known)  # type: ignore[attr-defined]
    return exc


class OllamaUsageError(OllamaMagicError, ValueError):
    """The magic was called with arguments that cannot work (bad option, no model, ...)."""

    title = "Invalid %%ollama arguments"


class OllamaConnectionError(OllamaMagicError):
    """No HTTP connection to the Ollama server could be made."""

    title = "Ollama is not reachable"

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class OllamaResponseError(OllamaMagicError):
    """Ollama answered with an HTTP error status; ``error`` is Ollama's own text."""

    title = "Ollama returned an error"

    def __init__(self, message: str, status_code: int, error: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error


class ModelNotFoundError(OllamaResponseError):
    """The requested model is not installed on the server (HTTP 404)."""

    title = "Model not found"

    def __init__(self, message: str, status_code: int, error: str, model: str) -> None:
        super().__init__(message, status_code, error)
        self.model = model


class OllamaStreamError(OllamaMagicError):
    """The answer stream broke after it started (error line, hang-up, garbage, stall)."""

    title = "The answer stream failed"


class StreamErrorLine(OllamaStreamError):
    """Ollama sent an ``{"error": ...}`` line in the middle of a 200 stream."""

    title = "Ollama reported an error mid-answer"

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error


class TruncatedStreamError(OllamaStreamError):
    """The connection ended before the final ``done: true`` chunk."""

    title = "The answer was cut off"


class StreamTimeoutError(OllamaStreamError):
    """No data arrived for longer than the read timeout."""

    title = "Ollama stopped responding"


class LocalRuntimeMissing(OllamaMagicError):
    """A ``local:`` model was asked for, but llama-cpp-python or the weights are missing."""

    title = "The embedded model is not installed"


class UnexpectedDataError(OllamaStreamError):
    """A line of the stream was not the JSON Ollama sends."""

    title = "Unexpected data from the server"


class Interrupted(OllamaMagicError):
    """The user stopped the cell; the partial answer was kept."""

    title = "Interrupted"


class AnswerNotJSONError(OllamaMagicError, ValueError):
    """``.json()`` was called on an answer that is not valid JSON."""

    title = "The answer is not JSON"


class PullError(StreamErrorLine):
    """Ollama reported an error while downloading a model (after the pull had started)."""

    title = "The download failed"


class CompareError(OllamaMagicError):
    """Some of the compared models failed (the others' answers were kept)."""

    title = "Some models failed"


class ToolLoopError(OllamaMagicError):
    """A ``--tools`` answer ended early: too many rounds, or a call that could not be asked."""

    title = "Tool calls stopped"
