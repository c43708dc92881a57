"""The value stored in the notebook variable: the answer text, plus what users ask next."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from .errors import AnswerNotJSONError, OllamaMagicError
from .events import Stats


class OllamaResponse(str):
    """The answer as a plain ``str`` (exactly the concatenated text), with details attached.

    Attributes: ``model``, ``thinking`` (reasoning text, not part of the answer),
    ``done_reason`` (``"stop"``, ``"length"``, ... or ``None`` when the stream did not finish),
    ``stats`` (:class:`~ollama_magic.events.Stats`), ``interrupted`` (the user stopped it),
    ``error`` (the :class:`~ollama_magic.errors.OllamaMagicError` that ended it, or ``None``),
    ``request`` (the JSON body that was sent), ``host`` (the server's URL), ``provenance``
    (what produced the answer: model digest, options, seed, system prompt, host, timings,
    ollama_magic's version; also saved in the notebook output's metadata) and ``trace`` (the
    raw stream lines with their arrival times, with ``--trace``), ``tool_calls`` (with
    ``--tools``: each call's name, arguments, result or error and seconds),
    ``requested_calls`` (the calls the model asked for in its last turn) and ``code`` (the
    answer's Python code, with ``--code`` and ``%ollama fix``).

    >>> r = OllamaResponse("Hi", model="llama3.2")
    >>> r.upper(), r.model, r.complete
    ('HI', 'llama3.2', False)
    """

    model: str
    thinking: str
    done_reason: str | None
    stats: Stats
    interrupted: bool
    error: OllamaMagicError | None
    request: dict[str, Any] | None
    host: str
    provenance: dict[str, Any]
    trace: list[str]
    tool_calls: list[Any]
    requested_calls: list[Any]
    code: str | None
    #: With ``--logprobs``: the tokens with their log-probabilities (:class:`Logprobs`).
    logprobs: Any
    #: The prompt filled the context window, so the model likely did not see all of it.
    truncated: bool
    #: Why an interrupted answer stopped: "" when the user stopped it, else what did.
    stopped_by: str

    def __new__(
        cls,
        text: str = "",
        *,
        model: str = "",
        thinking: str = "",
        done_reason: str | None = None,
        stats: Stats | None = None,
        interrupted: bool = False,
        error: OllamaMagicError | None = None,
        request: dict[str, Any] | None = None,
        host: str = "",
        provenance: dict[str, Any] | None = None,
    ) -> OllamaResponse:
        self = super().__new__(cls, text)
        self.model = model
        self.thinking = thinking
        self.done_reason = done_reason
        self.stats = stats if stats is not None else Stats()
        self.interrupted = interrupted
        self.error = error
        self.request = request
        self.host = host
        self.provenance = provenance if provenance is not None else {}
        self.trace = []
        self.tool_calls = []
        self.requested_calls = []
        self.code = None
        self.logprobs = None
        self.truncated = False
        self.stopped_by = ""
        return self

    @property
    def text(self) -> str:
        """The answer as a plain ``str`` (drops the attributes)."""
        return str.__str__(self)

    @property
    def complete(self) -> bool:
        """True when Ollama finished the answer (no error, no interrupt)."""
        return self.done_reason is not None and self.error is None and not self.interrupted

    @property
    def perplexity(self) -> float | None:
        """``exp(-mean(logprob))`` over the answer's tokens (with ``--logprobs``), else None."""
        return self.logprobs.perplexity if self.logprobs else None

    def logprobs_frame(self) -> Any:
        """The tokens as a pandas DataFrame (token, logprob, probability, entropy, top)."""
        if self.logprobs is None:
            raise OllamaMagicError(
                "This answer has no token log-probabilities: ask again with --logprobs (and a "
                "server that returns them, such as Ollama 0.12.11 or later)."
            )
        return self.logprobs.frame()

    def json(self) -> Any:
        """The answer parsed as JSON (for ``--format json`` or a schema).

        A parse failure raises :class:`~ollama_magic.errors.AnswerNotJSONError`; the text
        stays available in this object.
        """
        try:
            return json.loads(self.text)
        except ValueError as exc:
            raise AnswerNotJSONError(
                f"The answer is not valid JSON ({exc}). Ask for JSON with --format json (or a "
                "schema), and for thinking models add --no-think; the raw text is still in this "
                "variable."
            ) from None

    def __repr__(self) -> str:
        state = "complete" if self.complete else ("interrupted" if self.interrupted else "partial")
        if self.error is not None and not self.interrupted:
            state = "failed"
        preview = str.__repr__(self.text[:60] + ("…" if len(self) > 60 else ""))
        return f"<OllamaResponse {state} from {self.model or '?'}: {preview} ({len(self)} chars)>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (self.text,))


def decode_draining(buffer: bytearray, step: int = 1 << 16) -> str:
    """Decode a UTF-8 answer buffer, emptying it from the end as it goes.

    One ``bytes.decode`` of a long answer that is not pure ASCII briefly holds the buffer and
    two copies of the text (CPython widens its first, ASCII-only result); this holds little more
    than the text. Lone surrogates pass through, as the stream's JSON may carry them.

    >>> buffer = bytearray("naïve café ".encode() * 3)
    >>> decode_draining(buffer, step=4), buffer
    ('naïve café naïve café naïve café ', bytearray(b''))
    """
    pieces = []
    while buffer:
        cut = max(len(buffer) - step, 0)
        while cut and buffer[cut] & 0xC0 == 0x80:  # not inside a multi-byte character
            cut -= 1
        pieces.append(buffer[cut:].decode("utf-8", "surrogatepass"))
        del buffer[cut:]
    pieces.reverse()
    return "".join(pieces)


def provenance(result: OllamaResponse, digest: str | None = None) -> dict[str, Any]:
    """What produced an answer, saved with it so a notebook says how to reproduce it."""
    from ._version import __version__

    request = result.request or {}
    options = request.get("options") or {}
    messages = request.get("messages") or []
    system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
    return {
        "model": result.model,
        "digest": digest,
        "host": result.host,
        "options": options,
        "seed": options.get("seed"),
        "system": system,
        "format": request.get("format"),
        "think": request.get("think"),
        "done_reason": result.done_reason,
        "interrupted": result.interrupted,
        "error": result.error.message if result.error is not None else None,
        "stats": result.stats.as_dict(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ollama_magic": __version__,
    }
