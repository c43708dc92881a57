"""Model management subcommands of ``%ollama``: list, pull, ps, show, unload, version.

Each subcommand returns data that renders itself (:mod:`.model_tables`), so the same value
reads well in a notebook (Markdown), in a terminal (an aligned text table) and in later cells
(``models = %ollama list`` is a plain ``list`` of ``dict``). They reach the server only through
the backend interface, so they work (or say plainly why not) with every kind of server.
"""

from __future__ import annotations

from .backends import LocalBackend
from .commands import CommandContext, Subcommand
from .errors import OllamaConnectionError, OllamaUsageError, PullError
from .local import is_local_model
from .model_tables import (
    _LOADED_COLUMNS,
    _MODEL_COLUMNS,
    ModelDetails,
    ModelTable,
    ServerVersion,
    _printable,
    _row,
)
from .pull import ensure_model, pull_model

#: The model suggested when nothing is installed.
EXAMPLE_MODEL = "llama3.2"


# --------------------------------------------------------------------------------------------
# Tables


def installed_models(ctx: CommandContext) -> ModelTable:
    """The server's models, then the embedded ``local:`` models installed in this Python."""
    local = LocalBackend().list_models()
    keys = ("size", "parameter_size", "quantization_level", "family", "modified_at", "digest")
    try:
        rows = [_row(m, *keys) for m in ctx.backend.list_models()]
    except OllamaConnectionError:
        if not local:
            raise
        rows = []  # no server: the embedded models still answer
    rows += [_row(m, *keys) for m in local]
    empty = (
        f"No models are installed on `{ctx.backend.base_url}` yet. Download one with "
        f"`%ollama pull {EXAMPLE_MODEL}` (or `ollama pull {EXAMPLE_MODEL}` in a terminal)."
    )
    return ModelTable(rows, _MODEL_COLUMNS, empty)


def loaded_models(ctx: CommandContext) -> ModelTable:
    """The models in memory right now."""
    keys: tuple[str, ...] = ("size", "size_vram", "context_length", "expires_at", "parameter_size")
    keys += ("quantization_level", "family", "digest")
    rows = [_row(m, *keys) for m in ctx.backend.loaded_models()]
    empty = (
        f"No model is loaded on `{ctx.backend.base_url}`. A model loads when it is first "
        "asked and unloads after 5 idle minutes (change that with `--keep-alive`)."
    )
    return ModelTable(rows, _LOADED_COLUMNS, empty)


# --------------------------------------------------------------------------------------------
# Subcommands


def _no_arguments(command: str, argv: list[str]) -> None:
    if argv:
        raise OllamaUsageError(f"`%ollama {command}` takes no arguments, got {' '.join(argv)!r}.")


def _one_name(command: str, argv: list[str]) -> str:
    if len(argv) != 1 or not argv[0].strip() or argv[0].startswith("-"):
        raise OllamaUsageError(
            f"`%ollama {command}` takes one model name, for example "
            f"`%ollama {command} {EXAMPLE_MODEL}`."
        )
    return argv[0].strip()


def list_command(ctx: CommandContext, argv: list[str]) -> ModelTable:
    """``%ollama list``: the installed models, as a table that is also a list of dicts."""
    _no_arguments("list", argv)
    return installed_models(ctx)


def _for_model(ctx: CommandContext, name: str) -> CommandContext:
    """A ``local:`` model is the embedded backend's, whatever server is configured."""
    if not is_local_model(name):
        return ctx
    return CommandContext(ctx.shell, LocalBackend(), ctx.live)


def pull_command(ctx: CommandContext, argv: list[str]) -> None:
    """``%ollama pull NAME``: download a model, with live progress."""
    name = _one_name("pull", argv)
    pull_model(_for_model(ctx, name), name)


def ps_command(ctx: CommandContext, argv: list[str]) -> ModelTable:
    """``%ollama ps``: the models in memory, where they run and when they unload."""
    _no_arguments("ps", argv)
    return loaded_models(ctx)


def show_command(ctx: CommandContext, argv: list[str]) -> ModelDetails:
    """``%ollama show NAME``: capabilities, context length, parameters, template."""
    name = _one_name("show", argv)
    return ModelDetails(name, _for_model(ctx, name).backend.describe_model(name))


def unload_command(ctx: CommandContext, argv: list[str]) -> None:
    """``%ollama unload NAME``: free the model's memory now instead of after the idle time."""
    name = _one_name("unload", argv)
    _for_model(ctx, name).backend.unload(name)
    print(f"Unloaded {_printable(name)}.")


def version_command(ctx: CommandContext, argv: list[str]) -> ServerVersion:
    """``%ollama version``: the server's version (the value is the version string)."""
    if argv:
        raise OllamaUsageError("%ollama version takes no arguments.")
    backend = ctx.backend
    return ServerVersion(backend.version(), backend.base_url, backend.label)


SUBCOMMANDS: dict[str, Subcommand] = {
    "list": list_command,
    "models": list_command,
    "pull": pull_command,
    "ps": ps_command,
    "show": show_command,
    "unload": unload_command,
    "version": version_command,
}

_HELP: dict[Subcommand, tuple[str, str]] = {
    list_command: ("", "installed models"),
    pull_command: ("NAME", "download a model"),
    ps_command: ("", "models in memory"),
    show_command: ("NAME", "a model's details"),
    unload_command: ("NAME", "free a model's memory"),
    version_command: ("", "the server's version"),
}


def describe_subcommands() -> str:
    """One line listing every ``%ollama`` subcommand, for help and error messages.

    >>> print(describe_subcommands())  # doctest: +NORMALIZE_WHITESPACE
    list (or models): installed models; pull NAME: download a model; ps: models in memory;
    show NAME: a model's details; unload NAME: free a model's memory; version: the server's
    version
    """
    names: dict[Subcommand, list[str]] = {}
    for name, function in SUBCOMMANDS.items():
        names.setdefault(function, []).append(name)
    parts = []
    for function, aliases in names.items():
        usage, description = _HELP.get(function, ("", ""))
        head = aliases[0] + (f" {usage}" if usage else "")
        if len(aliases) > 1:
            head += " (or " + ", ".join(aliases[1:]) + ")"
        parts.append(f"{head}: {description}" if description else head)
    return "; ".join(parts)


__all__ = [
    "SUBCOMMANDS",
    "ModelDetails",
    "ModelTable",
    "PullError",
    "ServerVersion",
    "describe_subcommands",
    "ensure_model",
    "installed_models",
    "loaded_models",
    "pull_model",
]
