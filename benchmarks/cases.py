"""The ways of streaming an answer into a notebook that the benchmarks compare.

Each case is the code of one notebook cell, exactly as a user would write it. The kernel is set
up once (:data:`SETUP`) so that imports and connection set-up are not part of any timing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .workload import MODEL, PROMPT


@dataclass(frozen=True)
class Case:
    """One way of running the same request."""

    name: str
    label: str
    #: Whether the answer text reaches the front end as ``stream`` messages.
    displays: bool
    #: Whether the cell stores the answer in ``bench_answer`` (the ``%%ollama`` cases).
    stores: bool
    code: str
    description: str
    #: A module the cell needs that is not a dependency of the project.
    needs: str | None = None
    #: Sends one message per token (about 1 ms each): too slow to repeat at the largest sizes.
    slow: bool = False


SETUP = f"""
import json, requests
_BENCH_URL = "http://" + __import__("os").environ["OLLAMA_HOST"] + "/api/chat"
_BENCH_BODY = {{"model": {MODEL!r}, "messages": [{{"role": "user", "content": {PROMPT!r}}}],
               "stream": True}}
try:
    import ollama
except ImportError:
    ollama = None
%load_ext ollama_magic
"""

FLOOR = Case(
    "floor",
    "floor",
    displays=False,
    stores=False,
    code=(
        "with requests.post(_BENCH_URL, json=_BENCH_BODY, stream=True) as r:\n"
        "    for line in r.iter_lines():\n"
        "        json.loads(line)\n"
    ),
    description="requests.post(stream=True) + iter_lines() + json.loads, displays nothing",
)

SEED = Case(
    "seed",
    "print loop",
    displays=True,
    stores=False,
    code=(
        "with requests.post(_BENCH_URL, json=_BENCH_BODY, stream=True) as r:\n"
        "    for line in r.iter_lines():\n"
        '        print(json.loads(line)["message"]["content"], end="", flush=True)\n'
    ),
    description="the same, printing each token with print(..., end='', flush=True)",
    slow=True,
)

OFFICIAL = Case(
    "official",
    "ollama client",
    displays=True,
    stores=False,
    code=(
        f"for part in ollama.chat(model={MODEL!r}, messages=_BENCH_BODY['messages'], "
        "stream=True):\n"
        '    print(part["message"]["content"], end="", flush=True)\n'
    ),
    description="the official client, ollama.chat(stream=True), printing each part",
    needs="ollama",
    slow=True,
)

LIVE = Case(
    "live",
    "%%ollama",
    displays=True,
    stores=True,
    code=f"%%ollama {MODEL} -o bench_answer\n{PROMPT}\n",
    description="%%ollama with its live view (widget, then Markdown)",
)

QUIET = Case(
    "quiet",
    "%%ollama -q",
    displays=False,
    stores=True,
    code=f"%%ollama {MODEL} --quiet -o bench_answer\n{PROMPT}\n",
    description="%%ollama --quiet: only the variable",
)

ALL_CASES: tuple[Case, ...] = (FLOOR, SEED, OFFICIAL, LIVE, QUIET)
BY_NAME = {case.name: case for case in ALL_CASES}
