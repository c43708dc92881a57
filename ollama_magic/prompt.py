"""Prompt building: notebook variables in the prompt, images, output formats, dry runs."""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .errors import OllamaUsageError

# `{name}` or `{In[3]}` / `{Out[-1]}`; nothing else inside braces is ever touched.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\[(-?\d+)\])?\}")
_FENCE_OPEN = re.compile(r"[ \t]*(`{3,}|~{3,})([^\r\n]*)")
_TICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*\r?\n")


class Interpolation(NamedTuple):
    """The prompt after interpolation, and what was filled in (``x``, ``In[3]``...)."""

    text: str
    names: list[str]


class _Code(NamedTuple):
    """A fenced block or inline span: its whole extent and the code inside the markers."""

    start: int
    inner_start: int
    inner_end: int
    end: int


def _code_regions(text: str) -> list[_Code]:
    """Every fenced code block and inline code span, in order.

    Fences open with three or more backticks or tildes at the start of a line (any
    indentation) and close with a line of at least as many of the same character; an
    unclosed fence runs to the end. Spans pair backtick runs of equal length within a
    paragraph, as in CommonMark.
    """
    regions: list[_Code] = []
    lines = text.splitlines(keepends=True)
    prose_start = position = index = 0
    while index < len(lines):
        line = lines[index]
        opening = _FENCE_OPEN.fullmatch(line.rstrip("\r\n"))
        index += 1
        if opening is None or (opening[1][0] == "`" and "`" in opening[2]):
            position += len(line)
            continue
        fence = opening[1]
        closing = re.compile(rf"[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*")
        inner_start = inner_end = end = position + len(line)
        while index < len(lines):
            inner_end, end = end, end + len(lines[index])
            index += 1
            if closing.fullmatch(lines[index - 1].rstrip("\r\n")):
                break
        else:
            inner_end = end  # never closed: the code runs to the end
        regions.extend(_code_spans(text, prose_start, position))
        regions.append(_Code(position, inner_start, inner_end, end))
        prose_start = position = end
    regions.extend(_code_spans(text, prose_start, len(text)))
    return regions


def _code_spans(text: str, start: int, end: int) -> list[_Code]:
    """Inline code spans: a backtick run up to the next run of the same length, if that one
    comes before the paragraph ends; an opener without such a closer is literal."""
    runs = list(_TICKS.finditer(text, start, end))
    breaks = [m.start() for m in _BLANK_LINE.finditer(text, start, end)]
    paragraph = [bisect_right(breaks, run.start()) for run in runs]
    next_same: list[int | None] = [None] * len(runs)
    latest: dict[int, int] = {}
    for index in reversed(range(len(runs))):
        width = len(runs[index][0])
        next_same[index] = latest.get(width)
        latest[width] = index
    spans = []
    index = 0
    while index < len(runs):
        closer = next_same[index]
        if closer is not None and paragraph[closer] == paragraph[index]:
            opener, closing = runs[index], runs[closer]
            spans.append(_Code(opener.start(), opener.end(), closing.start(), closing.end()))
            index = closer
        index += 1
    return spans


def interpolate_with_names(
    text: str, namespace: Mapping[str, Any], raw_inputs: Sequence[str] | None = None
) -> Interpolation:
    """Fill in notebook variables and say which were filled (rules: :func:`interpolate`).

    >>> interpolate_with_names("{x} and {x}, `{y}`, {In[1]}", {"x": 1, "y": 2, "In": ["", "a"]})
    Interpolation(text='1 and 1, `2`, a', names=['x', 'y', 'In[1]'])
    """
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, index = match.group(1), match.group(2)
        if name not in namespace or name.startswith("_"):
            return match.group(0)
        value = namespace[name]
        if index is not None:
            if name not in ("In", "Out"):
                return match.group(0)
            if name == "In" and raw_inputs is not None:
                value = raw_inputs
            try:
                value = value[int(index)]
            except (IndexError, KeyError, TypeError):
                return match.group(0)
            name = f"{name}[{index}]"
        if name not in names:
            names.append(name)
        return str(value)

    pieces = []
    done = 0
    for code in _code_regions(text):
        pieces.append(_PLACEHOLDER.sub(replace, text[done : code.start]))
        inner = text[code.inner_start : code.inner_end]
        if _PLACEHOLDER.fullmatch(inner.strip()):
            inner = _PLACEHOLDER.sub(replace, inner)
        pieces.append(text[code.start : code.inner_start] + inner + text[code.inner_end : code.end])
        done = code.end
    pieces.append(_PLACEHOLDER.sub(replace, text[done:]))
    return Interpolation("".join(pieces), names)


def interpolate(
    text: str, namespace: Mapping[str, Any], raw_inputs: Sequence[str] | None = None
) -> str:
    """Replace ``{name}`` by ``str(name)`` for notebook variables, and ``{In[3]}``/``{Out[3]}``.

    Every other brace stays literal: JSON, set literals, f-string examples and unknown names
    pass through untouched, because a prompt is mostly prose and code, not a template.

    Code the user pasted is never changed: inside a fenced code block (```` ``` ```` or
    ``~~~``) or an inline code span (`` `...` ``), ``{name}`` is left as typed, unless the
    block or span holds nothing but one placeholder. That is how a variable's text or an
    earlier cell is pasted into a fence::

        ```python
        {In[3]}
        ```

    ``{In[n]}`` is ``raw_inputs[n]`` when given (the magic passes the cells as the user typed
    them, magics and ``!`` commands included), else ``namespace["In"][n]``.

    >>> ns = {"city": "Paris", "In": ["", "x = 1"], "Out": {1: 42}}
    >>> interpolate("Weather in {city}? {nope} {'a': 1} f'{x!r}' {In[1]} {Out[1]}", ns)
    "Weather in Paris? {nope} {'a': 1} f'{x!r}' x = 1 42"
    >>> interpolate("`{city}` stays `print({city})`", ns)
    '`Paris` stays `print({city})`'
    """
    return interpolate_with_names(text, namespace, raw_inputs).text


def encode_image(source: str, namespace: Mapping[str, Any]) -> str:
    """Base64 of an image given as a file path or a notebook variable.

    The variable may hold bytes, a PIL image or a matplotlib figure (both saved as PNG).
    """
    if source.isidentifier() and source in namespace:
        value = namespace[source]
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif hasattr(value, "savefig"):
            buffer = io.BytesIO()
            value.savefig(buffer, format="png", bbox_inches="tight")
            data = buffer.getvalue()
        elif hasattr(value, "save") and hasattr(value, "mode"):
            buffer = io.BytesIO()
            value.save(buffer, format="PNG")
            data = buffer.getvalue()
        elif isinstance(value, (str, Path)):
            return encode_image(str(value), {})
        else:
            raise OllamaUsageError(
                f"--image {source}: the variable holds a {type(value).__name__}; use a file "
                "path, bytes, a PIL image or a matplotlib figure."
            )
    else:
        path = Path(source).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise OllamaUsageError(
                f"--image {source}: no notebook variable of that name and the file cannot be "
                f"read ({exc.strerror or exc}). Give a path to an image file or a variable."
            ) from None
    return base64.b64encode(data).decode("ascii")


def resolve_format(value: str, namespace: Mapping[str, Any]) -> str | dict[str, Any]:
    """``json``, an inline JSON schema, or a variable holding a schema dict or a pydantic model."""
    if value == "json":
        return value
    if value.isidentifier() and value in namespace:
        target = namespace[value]
        if isinstance(target, dict):
            return target
        schema_of = getattr(target, "model_json_schema", None) or getattr(target, "schema", None)
        if callable(schema_of):
            schema = schema_of()
            if isinstance(schema, dict):
                return schema
        raise OllamaUsageError(
            f"--format {value}: the variable holds a {type(target).__name__}; use a JSON-schema "
            "dict or a pydantic model class."
        )
    try:
        schema = json.loads(value)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise OllamaUsageError(
            f'--format takes `json`, a JSON schema object such as \'{{"type": "object"}}\', or '
            f"the name of a variable holding a schema dict or a pydantic model; got {value!r}."
        )
    return schema


def curl_command(url: str, body: Mapping[str, Any]) -> str:
    """An equivalent ``curl`` command, for --dry-run (copy it into a terminal)."""
    payload = json.dumps(body, ensure_ascii=False)
    return f"curl -N {shlex.quote(url)} -d {shlex.quote(payload)}"


def _without_image_data(body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """A copy of the body with each image's base64 replaced by its length, and whether any was.

    Megabytes of base64 in an output would only slow the notebook down.
    """
    shown = json.loads(json.dumps(body))
    shortened = False
    for message in shown.get("messages", []):
        if message.get("images"):
            message["images"] = [f"<{len(i)} base64 characters>" for i in message["images"]]
            shortened = True
        parts = message.get("content")
        for part in parts if isinstance(parts, list) else []:
            image = part.get("image_url") if isinstance(part, dict) else None
            if not isinstance(image, dict):
                continue
            url = image.get("url")
            if isinstance(url, str) and url.startswith("data:") and "," in url:
                head, data = url.split(",", 1)
                image["url"] = f"{head},<{len(data)} base64 characters>"
                shortened = True
    return shown, shortened


def dry_run_markdown(url: str, body: Mapping[str, Any]) -> str:
    """What --dry-run shows: the endpoint, the exact JSON body and the curl command."""
    shown, shortened = _without_image_data(body)
    pretty = json.dumps(shown, ensure_ascii=False, indent=2)
    fence = "````" if "```" in pretty else "```"
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", url)), default=0) + 1)
    parts = [
        f"**Dry run**: nothing was sent. {ticks} POST {url} {ticks}\n\n"
        f"{fence}json\n{pretty}\n{fence}\n"
    ]
    if url.startswith(("http://", "https://")):
        parts.append(f"\nEquivalent command:\n\n{fence}bash\n{curl_command(url, shown)}\n{fence}\n")
    if shortened:
        parts.append(
            "\nImages are shortened to their length here; the request carries them whole.\n"
        )
    return "".join(parts)
