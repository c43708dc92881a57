"""Prompt building: notebook variables in the prompt, images, output formats, dry runs."""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import OllamaUsageError

# `{name}` or `{In[3]}` / `{Out[-1]}`; nothing else inside braces is ever touched.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\[(-?\d+)\])?\}")


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace ``{name}`` by ``str(name)`` for notebook variables, and ``{In[3]}``/``{Out[3]}``.

    Every other brace stays literal: code, JSON, set literals, f-string examples and unknown
    names pass through untouched, because a prompt is mostly prose and code, not a template.

    >>> ns = {"city": "Paris", "In": ["", "x = 1"], "Out": {1: 42}}
    >>> interpolate("Weather in {city}? {nope} {'a': 1} f'{x!r}' {In[1]} {Out[1]}", ns)
    "Weather in Paris? {nope} {'a': 1} f'{x!r}' x = 1 42"
    """

    def replace(match: re.Match[str]) -> str:
        name, index = match.group(1), match.group(2)
        if name not in namespace or name.startswith("_"):
            return match.group(0)
        value = namespace[name]
        if index is None:
            return str(value)
        if name not in ("In", "Out"):
            return match.group(0)
        try:
            return str(value[int(index)])
        except (IndexError, KeyError, TypeError):
            return match.group(0)

    return _PLACEHOLDER.sub(replace, text)


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


def dry_run_markdown(url: str, body: Mapping[str, Any]) -> str:
    """What --dry-run shows: the endpoint, the exact JSON body and the curl command."""
    shown = json.loads(json.dumps(body))
    for message in shown.get("messages", []):
        if "images" in message:
            message["images"] = [f"<{len(i)} base64 characters>" for i in message["images"]]
    pretty = json.dumps(shown, ensure_ascii=False, indent=2)
    fence = "````" if "```" in pretty else "```"
    return (
        f"**Dry run**: nothing was sent. `POST {url}`\n\n{fence}json\n{pretty}\n{fence}\n\n"
        f"Equivalent command:\n\n{fence}bash\n{curl_command(url, body)}\n{fence}\n"
    )
