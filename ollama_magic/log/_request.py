"""What is kept of a request, and when two requests count as the same one."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

_SECRET_KEY = re.compile(
    r"(?:^|[-_])(?:api[-_]?key|apikey|authori[sz]ation|auth|bearer|password|passwd|secret|"
    r"token|access[-_]?token|refresh[-_]?token|cookie|headers?|credentials?)$",
    re.IGNORECASE,
)


def _without_secrets(data: dict[str, Any]) -> dict[str, Any]:
    """A copy without key-like fields (no credential is passed here; this is a second guard)."""
    return {k: v for k, v in data.items() if not _SECRET_KEY.search(str(k))}


def _image_hash(image: Any) -> str:
    """``sha256:HEX`` of an image's bytes (of the text when it is not base64)."""
    raw: bytes
    if isinstance(image, (bytes, bytearray)):
        raw = bytes(image)
    else:
        text = str(image)
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            raw = text.encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def stored_request(body: dict[str, Any]) -> dict[str, Any]:
    """The request body as logged: images replaced by their hashes, key-like fields dropped.

    >>> stored_request({"model": "m", "api_key": "k", "options": {"seed": 1, "token": "t"},
    ...                 "messages": [{"role": "user", "content": "hi", "images": ["aGk="]}]})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'model': 'm', 'options': {'seed': 1}, 'messages': [{'role': 'user', 'content': 'hi',
     'images': ['sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4']}]}
    """
    request = _without_secrets(body)
    if isinstance(request.get("options"), dict):
        request["options"] = _without_secrets(request["options"])
    messages = request.get("messages")
    if isinstance(messages, list):
        cleaned = []
        for message in messages:
            if isinstance(message, dict):
                message = _without_secrets(message)
                if isinstance(message.get("images"), list):
                    message["images"] = [_image_hash(i) for i in message["images"]]
            cleaned.append(message)
        request["messages"] = cleaned
    return request


def _canonical(value: Any) -> Any:
    """Equal requests compare equal: ``1.0`` and ``1`` alike, empty option maps like none."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def request_hash(request: dict[str, Any], *, backend: str, host: str) -> str:
    """The identity of a request for replay: everything that shapes the answer but the digest.

    (The digest is compared as a column of its own: it is often known only after the answer.)

    >>> a = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    >>> b = {**a, "options": {}, "keep_alive": "5m"}
    >>> request_hash(a, backend="ollama", host="h") == request_hash(b, backend="ollama", host="h")
    True
    >>> request_hash(a, backend="ollama", host="h") == request_hash(a, backend="openai", host="h")
    False
    """
    identity = {
        "backend": backend,
        "host": host,
        "messages": request.get("messages") or [],
        "options": request.get("options") or None,
        "format": request.get("format") or None,
        "think": request.get("think"),
        "tools": request.get("tools") or None,
    }
    text = json.dumps(_canonical(identity), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def prompt_of(request: dict[str, Any]) -> str:
    """The last user message: what a person will recognise the record by."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content, default=str)
    return ""
