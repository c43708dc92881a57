"""Every error ollama_magic raises, in one tree rooted at :class:`OllamaMagicError`.

Each error carries a short message that says what went wrong *and what to do next*. In IPython
they render as that paragraph only (``_render_traceback_``), so a failed cell shows a few lines
instead of a traceback wall, yet still ends in error state so "Run All" and papermill stop.
This module imports nothing from IPython: the HTTP client raises these too.
"""

from __future__ import annotations

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
