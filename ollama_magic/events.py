"""The small events an answer stream is made of.

The client turns Ollama's NDJSON lines into these; views and the magic consume them. Keeping
them tiny (``__slots__``, no per-event dicts) matters: a long answer produces one per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ThinkingDelta:
    """A piece of a reasoning model's thinking text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"ThinkingDelta({self.text!r})"


class AnswerDelta:
    """A piece of the answer text.

    ``logprobs`` is the chunk's list of token log-probabilities as the server sent it (with
    ``--logprobs``), else None; :mod:`ollama_magic.logprobs` stores them compactly.
    """

    __slots__ = ("logprobs", "text")

    def __init__(self, text: str, logprobs: list[Any] | None = None) -> None:
        self.text = text
        self.logprobs = logprobs

    def __repr__(self) -> str:
        return f"AnswerDelta({self.text!r})"


class ToolCall:
    """The model asks to call one of the tools it was given (one turn may ask several).

    ``arguments`` is what the server sent: a dict (Ollama) or a JSON string (OpenAI-compatible
    servers, whose argument fragments the backend joins). ``call_id`` is the server's id, if any.
    """

    __slots__ = ("arguments", "call_id", "name")

    def __init__(self, name: str, arguments: Any, call_id: str | None = None) -> None:
        self.name = name
        self.arguments = arguments
        self.call_id = call_id

    def __repr__(self) -> str:
        return f"ToolCall({self.name!r}, {self.arguments!r}, {self.call_id!r})"

    def wire(self) -> dict[str, Any]:
        """The call as it goes back in the assistant message of the next request."""
        call: dict[str, Any] = {"function": {"name": self.name, "arguments": self.arguments}}
        if self.call_id:
            call["id"] = self.call_id
        return call


_NS = 1e-9


@dataclass
class Stats:
    """Timings and counts of one answer; any of Ollama's metrics may be missing (``None``).

    Durations are in seconds (Ollama reports nanoseconds). ``wall_time`` is measured by the
    client from sending the request to the end of the stream.
    """

    eval_count: int | None = None
    eval_duration: float | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: float | None = None
    load_duration: float | None = None
    total_duration: float | None = None
    wall_time: float | None = None
    #: Time from sending the request to the first thinking or answer text.
    first_token_time: float | None = None
    #: Streamed pieces of text (thinking and answer). Ollama sends one token per chunk; other
    #: servers may send several, so the token count is ``eval_count`` when the server gives it.
    chunks: int = 0
    #: The context window the model ran with (tokens), when the server could tell.
    context_length: int | None = field(default=None, repr=False)
    #: Prompt tokens cut to fit the window, when the backend knows (the embedded model).
    prompt_cut: int | None = field(default=None, repr=False)

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed as Ollama defines it: eval_count / eval_duration."""
        if self.eval_count and self.eval_duration:
            return self.eval_count / self.eval_duration
        return None

    def __repr__(self) -> str:
        """The metrics that are known, durations to the millisecond.

        >>> Stats(eval_count=59, eval_duration=1.1858004099, chunks=59)
        Stats(eval_count=59, eval_duration=1.186, chunks=59, tokens_per_second=49.755)
        """
        shown = ", ".join(
            f"{name}={round(value, 3) if isinstance(value, float) else value}"
            for name, value in self.as_dict().items()
        )
        return f"Stats({shown})"

    def _repr_markdown_(self) -> str:
        """A small table in a notebook: what was generated, how fast, and where time went.

        >>> print(Stats(eval_count=59, eval_duration=1.19, prompt_eval_count=41,
        ...             load_duration=0.3, wall_time=2.2, first_token_time=1.0)._repr_markdown_())
        | | |
        |---|---|
        | answer | 59 tokens in 1.19 s, 49.6 tokens/s |
        | prompt | 41 tokens |
        | model load | 0.30 s |
        | wall time | 2.20 s, the first token after 1.00 s |
        """

        def span(tokens: int | None, seconds: float | None) -> str:
            parts = [f"{tokens:,} tokens" if tokens is not None else ""]
            if seconds is not None:
                parts.append(f"in {seconds:.2f} s")
            return " ".join(p for p in parts if p)

        rows = []
        answer = span(self.eval_count, self.eval_duration)
        if self.tokens_per_second:
            answer += f", {self.tokens_per_second:.1f} tokens/s"
        rows.append(("answer", answer or f"{self.chunks:,} chunks"))
        prompt = span(self.prompt_eval_count, self.prompt_eval_duration)
        if prompt:
            if self.context_length:
                prompt += f" of a {self.context_length:,}-token window"
            if self.prompt_cut:
                prompt += f" ({self.prompt_cut:,} more cut to fit)"
            rows.append(("prompt", prompt))
        if self.load_duration is not None:
            rows.append(("model load", f"{self.load_duration:.2f} s"))
        wall = self.wall_time if self.wall_time is not None else self.total_duration
        if wall is not None:
            first = self.first_token_time
            after = f", the first token after {first:.2f} s" if first is not None else ""
            rows.append(("wall time", f"{wall:.2f} s{after}"))
        return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)

    @classmethod
    def from_final_chunk(cls, chunk: dict[str, Any]) -> Stats:
        """Read the metrics of Ollama's ``done: true`` chunk, tolerating missing keys."""

        def seconds(key: str) -> float | None:
            value = chunk.get(key)
            return value * _NS if isinstance(value, (int, float)) else None

        def count(key: str) -> int | None:
            value = chunk.get(key)
            return int(value) if isinstance(value, (int, float)) else None

        return cls(
            eval_count=count("eval_count"),
            eval_duration=seconds("eval_duration"),
            prompt_eval_count=count("prompt_eval_count"),
            prompt_eval_duration=seconds("prompt_eval_duration"),
            load_duration=seconds("load_duration"),
            total_duration=seconds("total_duration"),
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for notebook metadata and JSON)."""
        data = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.tokens_per_second is not None:
            data["tokens_per_second"] = round(self.tokens_per_second, 3)
        return data


@dataclass
class Done:
    """The stream finished normally with Ollama's final chunk."""

    done_reason: str | None
    model: str | None
    stats: Stats = field(default_factory=Stats)


Event = ThinkingDelta | AnswerDelta | ToolCall | Done
