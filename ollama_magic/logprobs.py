"""Token log-probabilities of an answer (``--logprobs``), stored compactly.

A long answer has tens of thousands of tokens, each with up to 20 alternatives. One Python
object per token (a dict, a tuple of tuples) costs several hundred bytes; here every field lives
in a flat array or byte buffer, about 100 bytes per token with five alternatives, and an entry
object is made only when one is read. No IPython here.
"""

from __future__ import annotations

import codecs
import math
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from .errors import OllamaUsageError

#: The most alternatives Ollama returns per token (``top_logprobs`` is 0..20).
MAX_TOP = 20
DEFAULT_TOP = 5


class TokenLogprob:
    """One streamed token: ``.token`` (its text), ``.logprob``, ``.bytes`` (raw UTF-8, which
    may be part of a character) and ``.top``, the alternatives as ``(token, logprob)`` pairs,
    most likely first."""

    __slots__ = ("bytes", "logprob", "token", "top")

    def __init__(
        self, token: str, logprob: float, raw: bytes, top: tuple[tuple[str, float], ...]
    ) -> None:
        self.token = token
        self.logprob = logprob
        self.bytes = raw
        self.top = top

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenLogprob):
            return NotImplemented
        return (self.token, self.logprob, self.bytes, self.top) == (
            other.token,
            other.logprob,
            other.bytes,
            other.top,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TokenLogprob({self.token!r}, {self.logprob:.4f}, top={len(self.top)})"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _raw(value: Any) -> bytes | None:
    if isinstance(value, list):
        try:
            return bytes(value)
        except (TypeError, ValueError):
            return None
    return None


class Logprobs(Sequence[TokenLogprob]):
    """The tokens of one answer in order, with their log-probabilities and alternatives.

    The tokens' texts joined are the answer text: a token that carries only part of a
    character (its ``bytes`` end inside it) gets the text ``""`` and the token that completes
    the character gets the whole character.

    >>> lp = Logprobs()
    >>> lp.extend([{"token": "Hi", "logprob": -0.5, "top_logprobs": [{"token": "Hi",
    ...     "logprob": -0.5}, {"token": "Yo", "logprob": -1.5}]}])
    >>> lp[0].token, lp[0].top, round(lp.perplexity, 4)
    ('Hi', (('Hi', -0.5), ('Yo', -1.5)), 1.6487)
    """

    def __init__(self, entries: Iterable[Mapping[str, Any]] = ()) -> None:
        self._text = bytearray()
        self._text_end = array("I")
        self._logprob = array("d")
        self._top_end = array("I")
        self._alt_text = bytearray()
        self._alt_end = array("I")
        self._alt_logprob = array("d")
        #: Raw bytes of the few tokens whose bytes are not their text's UTF-8 (split characters).
        self._odd_bytes: dict[int, bytes] = {}
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = False
        self.extend(entries)

    # -- building ------------------------------------------------------------------------------

    def extend(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Add entries in Ollama's and OpenAI's shape: ``{token, logprob, bytes, top_logprobs}``."""
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            top = entry.get("top_logprobs") or ()
            self.append(
                _string(entry.get("token")),
                _number(entry.get("logprob")),
                _raw(entry.get("bytes")),
                [
                    (_string(alt.get("token")), alt.get("logprob"))
                    for alt in top
                    if isinstance(alt, Mapping)
                ],
            )

    def append(
        self,
        token: str,
        logprob: float,
        raw: bytes | None = None,
        top: Iterable[tuple[str, Any]] = (),
    ) -> None:
        """Add one token (``raw`` defaults to the token's UTF-8)."""
        text = token
        if raw is not None and (self._pending or "\ufffd" in token):
            # The server could not show part of a character: rebuild the text from the bytes.
            text = self._decoder.decode(raw)
            self._pending = bool(self._decoder.getstate()[0])
        elif self._pending:
            text = self._decoder.decode(b"", final=True) + token
            self._decoder.reset()
            self._pending = False
        encoded = _utf8(text)
        if raw is not None and raw != encoded:
            self._odd_bytes[len(self._logprob)] = raw
        self._text += encoded
        self._text_end.append(len(self._text))
        self._logprob.append(logprob)
        for alt_token, alt_logprob in top:
            self._alt_text += _utf8(alt_token)
            self._alt_end.append(len(self._alt_text))
            self._alt_logprob.append(_number(alt_logprob))
        self._top_end.append(len(self._alt_logprob))

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._logprob)

    @overload
    def __getitem__(self, index: int) -> TokenLogprob: ...

    @overload
    def __getitem__(self, index: slice) -> list[TokenLogprob]: ...

    def __getitem__(self, index: int | slice) -> TokenLogprob | list[TokenLogprob]:
        if isinstance(index, slice):
            return [self._entry(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("token index out of range")
        return self._entry(index)

    def __iter__(self) -> Iterator[TokenLogprob]:
        for i in range(len(self)):
            yield self._entry(i)

    def token(self, index: int) -> str:
        """The text of token ``index`` (cheaper than building its entry)."""
        start = self._text_end[index - 1] if index else 0
        return self._text[start : self._text_end[index]].decode("utf-8", "surrogatepass")

    def logprob(self, index: int) -> float:
        return self._logprob[index]

    def top(self, index: int) -> tuple[tuple[str, float], ...]:
        """The alternatives of token ``index`` as ``(token, logprob)`` pairs."""
        first = self._top_end[index - 1] if index else 0
        pairs = []
        for k in range(first, self._top_end[index]):
            start = self._alt_end[k - 1] if k else 0
            text = self._alt_text[start : self._alt_end[k]].decode("utf-8", "surrogatepass")
            pairs.append((text, self._alt_logprob[k]))
        return tuple(pairs)

    def _entry(self, index: int) -> TokenLogprob:
        token = self.token(index)
        raw = self._odd_bytes.get(index)
        return TokenLogprob(
            token, self._logprob[index], raw if raw is not None else _utf8(token), self.top(index)
        )

    @property
    def text(self) -> str:
        """The tokens joined (the answer text)."""
        return self._text.decode("utf-8", "surrogatepass")

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays and buffers (what ``.logprobs`` costs in memory)."""
        parts: list[Any] = [self._text, self._alt_text]
        arrays = (self._text_end, self._logprob, self._top_end, self._alt_end, self._alt_logprob)
        return sum(len(p) for p in parts) + sum(a.itemsize * len(a) for a in arrays)

    # -- summaries -----------------------------------------------------------------------------

    @property
    def perplexity(self) -> float:
        """``exp(-mean(logprob))``: 1 when every token was certain; NaN without tokens."""
        if not self._logprob:
            return math.nan
        return math.exp(-math.fsum(self._logprob) / len(self._logprob))

    def entropy(self, index: int) -> float | None:
        """Entropy in bits over token ``index``'s alternatives (renormalised to sum to one);
        None when the server sent fewer than two."""
        first = self._top_end[index - 1] if index else 0
        probs = [math.exp(lp) for lp in self._alt_logprob[first : self._top_end[index]]]
        total = math.fsum(probs)
        if len(probs) < 2 or total <= 0:
            return None
        return -math.fsum(p / total * math.log2(p / total) for p in probs if p > 0) + 0.0

    @property
    def mean_entropy(self) -> float | None:
        """The mean of :meth:`entropy` over the tokens that have alternatives."""
        values = [e for e in (self.entropy(i) for i in range(len(self))) if e is not None]
        return math.fsum(values) / len(values) if values else None

    def least_confident(self, count: int = 5) -> list[int]:
        """Indexes of the ``count`` least likely tokens, least likely first (ties in order)."""
        return sorted(range(len(self)), key=lambda i: (self._logprob[i], i))[:count]

    def frame(self) -> Any:
        """A pandas DataFrame, one row per token: token, logprob, probability, entropy, top."""
        try:
            import pandas as pd
        except ImportError:
            raise OllamaUsageError(
                "logprobs_frame() needs pandas, which is not installed: `pip install pandas`, "
                "or read the tokens from .logprobs directly (a list of entries)."
            ) from None
        return pd.DataFrame(
            {
                "token": [self.token(i) for i in range(len(self))],
                "logprob": list(self._logprob),
                "probability": [math.exp(lp) for lp in self._logprob],
                "entropy": [self.entropy(i) for i in range(len(self))],
                "top": [self.top(i) for i in range(len(self))],
            }
        )

    def __repr__(self) -> str:
        return f"<Logprobs: {len(self)} tokens, perplexity {self.perplexity:.3f}>"


def check_top_logprobs(value: int | None) -> int | None:
    """``--logprobs N``: N alternatives per token, 0 to 20 (Ollama's limit)."""
    if value is not None and not 0 <= value <= MAX_TOP:
        raise OllamaUsageError(
            f"--logprobs takes 0 to {MAX_TOP} alternatives per token (default {DEFAULT_TOP}), "
            f"got {value}."
        )
    return value


def as_pairs(entries: Sequence[TokenLogprob]) -> list[tuple[str, float]]:
    """``(token, logprob)`` of each entry, for quick looks and tests."""
    return [(e.token, e.logprob) for e in entries]


def choice_logprobs(choice: Mapping[str, Any]) -> list[Any] | None:
    """A choice's token logprobs in OpenAI's shape (``logprobs.content``), or None.

    Each entry is ``{token, logprob, bytes, top_logprobs}``, as in Ollama's own API.

    >>> choice_logprobs({"logprobs": {"content": [{"token": "Hi", "logprob": -0.1}]}})
    [{'token': 'Hi', 'logprob': -0.1}]
    """
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    return content if isinstance(content, list) and content else None
