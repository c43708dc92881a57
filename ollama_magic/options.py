"""Model options from the magic line: ``-O KEY=VALUE`` values and ``--keep-alive`` durations."""

from __future__ import annotations

import json
from typing import Any

from .errors import OllamaUsageError


def parse_option(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → (key, value); the value is JSON when it parses, else a string.

    >>> parse_option("num_ctx=8192"), parse_option('stop=["\\\\n"]'), parse_option("x=abc")
    (('num_ctx', 8192), ('stop', ['\\n']), ('x', 'abc'))
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OllamaUsageError(
            f"--option expects KEY=VALUE (for example -O num_ctx=8192), got {item!r}."
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def parse_keep_alive(value: str) -> str | int | float:
    """Ollama takes a number of seconds or a duration string like ``"10m"``.

    >>> parse_keep_alive("300"), parse_keep_alive("-1"), parse_keep_alive("10m")
    (300, -1, '10m')
    """
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number
