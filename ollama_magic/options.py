"""Model options from the magic line: ``-O KEY=VALUE`` values and ``--keep-alive`` durations."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from .errors import OllamaUsageError

# What an Ollama server reads from a request's "options" (its Options and Runner structs):
# sampling settings per request, and load-time settings that reload the model when changed.
KNOWN_OPTIONS = frozenset(
    {
        # per request
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_last_n",
        "temperature",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "stop",
        # load time
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "use_mmap",
        "num_thread",
        "draft_num_predict",
    }
)
# Read by older servers only; current ones log and ignore them.
OLDER_OPTIONS = frozenset(
    {
        "numa",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "tfs_z",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "penalize_newline",
    }
)


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


def check_option_names(names: Iterable[str]) -> list[str]:
    """One warning per option name Ollama does not read, naming the closest one it does.

    The server drops unknown options without a word, so a typo would silently change
    nothing; this is only a warning because servers newer than this list may know more.

    >>> check_option_names({"num_ctx": 8192, "num_predcit": 5})
    ['unknown option num_predcit; did you mean num_predict?']
    """
    warnings = []
    for name in names:
        if name in KNOWN_OPTIONS:
            continue
        if name in OLDER_OPTIONS:
            warnings.append(
                f"option {name} is only read by older Ollama versions; current ones ignore it."
            )
            continue
        close = difflib.get_close_matches(name, sorted(KNOWN_OPTIONS | OLDER_OPTIONS), n=1)
        if close:
            warnings.append(f"unknown option {name}; did you mean {close[0]}?")
        else:
            warnings.append(
                f"unknown option {name}; Ollama will ignore it (options such as num_ctx, "
                "num_predict, temperature, top_p, stop)."
            )
    return warnings


# Go's time.ParseDuration: one or more decimal numbers, each with a unit; "0" alone is allowed.
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0")


def parse_keep_alive(value: str) -> str | int | float:
    """Ollama takes a number of seconds or a Go duration string like ``"10m"``.

    Checked here so that a typo fails at once with examples rather than as a server error
    after the request was built.

    >>> parse_keep_alive("300"), parse_keep_alive("-1"), parse_keep_alive("1h30m")
    (300, -1, '1h30m')
    """
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        if _GO_DURATION.fullmatch(text):
            return text
    else:
        if math.isfinite(number):
            return int(number) if number.is_integer() else number
    raise OllamaUsageError(
        f"--keep-alive {value!r} is not a duration: give seconds (300; 0 unloads the model "
        "at once; -1 keeps it loaded) or a duration such as 10m, 1h30m or 500ms."
    )
