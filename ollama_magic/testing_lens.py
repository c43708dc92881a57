"""What the fake servers say about tokens and prompts: deterministic logprobs, a chat template.

Standard library only. Tests assert exact values, so the made-up probabilities follow a fixed
cycle (:data:`FAKE_PROBABILITIES`), and the "rendered prompt" is a Llama-3-style template.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: The probabilities the fake gives its answer tokens in turn, when asked for logprobs.
FAKE_PROBABILITIES = (0.9, 0.6, 0.95, 0.3, 0.75)

#: Ollama's HTTP 400 for a prompt longer than the window, when it does not shift the context.
TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten "
    "the prompt, adjust the context length in settings, or use a model with a longer context "
    "length"
)


def fake_logprobs(text: str, index: int, top: int) -> dict[str, Any]:
    """The deterministic ``logprobs`` entry of the ``index``-th answer token (from 0).

    The token's probability is ``FAKE_PROBABILITIES[index % 5]``; with ``top`` alternatives,
    the first is the token itself and alternative ``k`` (``"alt{k}"``) has half the
    probability of the one before, starting from half of what the token leaves.

    >>> entry = fake_logprobs("Hi", 1, 3)
    >>> [(alt["token"], round(math.exp(alt["logprob"]), 2)) for alt in entry["top_logprobs"]]
    [('Hi', 0.6), ('alt1', 0.2), ('alt2', 0.1)]
    """
    probability = FAKE_PROBABILITIES[index % len(FAKE_PROBABILITIES)]
    alternatives = [(text, math.log(probability))]
    rest = 1.0 - probability
    for k in range(1, top):
        rest /= 2
        alternatives.append((f"alt{k}", math.log(rest)))
    alternatives.sort(key=lambda pair: -pair[1])  # most likely first, as servers send them
    return logprob_entry(text, math.log(probability), alternatives[:top])


def logprob_entry(text: str, logprob: float, top: Iterable[tuple[str, float]]) -> dict[str, Any]:
    """One entry in Ollama's shape (``bytes`` and ``top_logprobs`` omitted when empty)."""
    entry: dict[str, Any] = {"token": text, "logprob": logprob}
    if text:
        entry["bytes"] = list(text.encode())
    alternatives = [
        {"token": t, "logprob": lp, **({"bytes": list(t.encode())} if t else {})} for t, lp in top
    ]
    if alternatives:
        entry["top_logprobs"] = alternatives
    return entry


def requested_top(request: Mapping[str, Any]) -> int:
    """How many alternatives a request asks for (``top_logprobs``, 0 to 20)."""
    top = request.get("top_logprobs")
    return top if isinstance(top, int) and 0 <= top <= 20 else 0


def render_template(messages: Sequence[Any]) -> tuple[str, int]:
    """The prompt the test server's models "see": a Llama-3-style chat template.

    Returns the text and the number of images (each shows as ``[img-N]``).

    >>> text, images = render_template([{"role": "user", "content": "Hi", "images": ["aGk="]}])
    >>> images, text.startswith("<|start_header_id|>user<|end_header_id|>\\n\\n[img-0]Hi")
    (1, True)
    """
    parts, images = [], 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        placeholders = ""
        for _ in message.get("images") or ():
            placeholders += f"[img-{images}]"
            images += 1
        role, content = message.get("role", ""), message.get("content") or ""
        parts.append(
            f"<|start_header_id|>{role}<|end_header_id|>\n\n{placeholders}{content}<|eot_id|>"
        )
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts), images
