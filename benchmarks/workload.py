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

#: In a stamped Markdown-shaped answer, one token in this many carries its send time.
STAMP_EVERY = 8

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


def _markdown_text() -> str:
    """A Markdown-heavy answer: headings, emphasis, lists, a table and code, repeated."""
    section = (
        "## Why the sky is blue\n\n"
        "Air molecules scatter **short wavelengths** more than *long* ones (Rayleigh).\n\n"
        "- blue light scatters about 5.5 times more than red\n"
        "- at sunset the path through air is longer\n"
        "- so the reds remain, and `colour = scatter(wavelength)`\n\n"
        "| colour | wavelength | scattered |\n|---|---|---|\n"
        "| blue | 450 nm | a lot |\n| red | 700 nm | little |\n\n"
        "```python\ndef scatter(nm):\n    return (550 / nm) ** 4\n```\n\n"
        "1. look up\n2. compare at noon and at dusk\n3. note the café in Zürich\n\n"
    )
    return section


def _code_text(lines: int = 300) -> str:
    """One long fenced code block, as a model writes a whole program."""
    body = "".join(
        f"    total_{i} = compute(values[{i}], scale={i % 7})  # step {i}\n" for i in range(lines)
    )
    return f"Here is the program:\n\n```python\ndef main(values):\n{body}```\n\nDone.\n"


def shaped_tokens(shape: str, count: int) -> list[str]:
    """``count`` tokens of a Markdown-heavy answer (``markdown``) or of a 300-line code block
    (``code``, which has its own length: ``count`` is ignored).

    >>> "".join(shaped_tokens("code", 0)).count("\\n") > 300
    True
    """
    text = _code_text() if shape == "code" else _markdown_text() * (count // 120 + 1)
    pieces = re.findall(r"\s*\S+", text)
    tokens = pieces if shape == "code" else pieces[:count]
    return tokens
