"""OLLAMA_HOST parsing (placeholder until the full parser lands)."""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_HOST = "http://127.0.0.1:11434"


def parse_host(value: str) -> str:
    value = value.strip().strip("\"'").strip()
    if not value:
        return DEFAULT_HOST
    if "://" not in value:
        value = "http://" + value
    scheme, rest = value.split("://", 1)
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    if not host:
        host, port = port, ""
    if port and (not port.isdigit() or int(port) > 65535):
        raise ValueError(f"OLLAMA_HOST {value!r} has an invalid port.")
    port = port or ("11434" if scheme == "http" and "://" not in value else "80")
    return f"{scheme}://{host or '127.0.0.1'}:{port}" + (f"/{path.rstrip('/')}" if path else "")


def resolve_host(value: str | None = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return parse_host(value or env.get("OLLAMA_HOST", ""))
