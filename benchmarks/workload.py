"""The answers the benchmarks stream, shared by the server process and the harness.

Tokens look like a model's: mostly short words with their leading space, punctuation, a
paragraph break now and then, and a few two-byte UTF-8 characters (é, ü), so byte counts and
the final Markdown rendering see realistic text. They stay within Latin-1 on purpose: one
character beyond it (an emoji, a curly quote) makes CPython store every string holding the
whole answer with 2 or 4 bytes per character, which would measure CPython, not the code.

Paced answers carry their send time instead: each token is ``" [t=<seconds>]"`` on
CLOCK_MONOTONIC, written by the server process as it sends the chunk. That clock is shared by
every process on Linux, so the harness subtracts it from the time it receives the front-end
message that shows the token.
"""

from __future__ import annotations

import re

MODEL = "llama3.2"
PROMPT = "Write a long answer."

_TEXT = (
    "The sky looks blue because air molecules scatter short wavelengths of sunlight more "
    "strongly than long ones, an effect named after Lord Rayleigh. At sunset the light crosses "
    "more air, so the blue is scattered away and the reds remain; café owners in Zürich call "
    "it the golden hour. In code, `colour = scatter(wavelength)` would be a fair summary."
)
_WORDS = _TEXT.split(" ")

#: A stamp as it appears in the text of a paced token.
STAMP = re.compile(r"\[t=(\d+\.\d+)\]")


def answer_tokens(count: int) -> list[str]:
    """``count`` realistic tokens, the same for a given count in every process.

    >>> answer_tokens(3)
    ['The', ' sky', ' looks']
    >>> sum(1 for t in answer_tokens(200) if t.startswith("\\n\\n"))
    2
    """
    tokens: list[str] = []
    for index in range(count):
        word = _WORDS[index % len(_WORDS)]
        if index == 0:
            tokens.append(word)
        elif index % 80 == 0:
            tokens.append("\n\n" + word)
        else:
            tokens.append(" " + word)
    return tokens


def stamp_text(now: float) -> str:
    """The text of one paced token sent at ``now`` (seconds on CLOCK_MONOTONIC).

    >>> [float(s) for s in STAMP.findall(stamp_text(12.5) + stamp_text(13.0))]
    [12.5, 13.0]
    """
    return f" [t={now:.6f}]"
