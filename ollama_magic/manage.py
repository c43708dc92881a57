"""Model management subcommands of ``%ollama``: list, pull, ps, show, unload, version."""

from __future__ import annotations

from typing import Any

from .commands import CommandContext, Subcommand
from .errors import OllamaUsageError


def version(ctx: CommandContext, argv: list[str]) -> str:
    """``%ollama version``: the server's version."""
    if argv:
        raise OllamaUsageError("%ollama version takes no arguments.")
    data: Any = ctx.client.request_json("GET", "/api/version") or {}
    return str(data.get("version", "unknown"))


SUBCOMMANDS: dict[str, Subcommand] = {"version": version}
