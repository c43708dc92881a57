"""What a ``%ollama SUBCOMMAND`` receives, so subcommands stay independent of the magic class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backends import Backend


@dataclass
class CommandContext:
    """The shell, the configured server's backend, and whether a widget front end is there."""

    shell: Any
    backend: Backend
    #: True inside a Jupyter kernel (widgets can be shown); False in terminal IPython.
    live: bool


#: A subcommand takes the context and the words after its name; what it returns becomes the
#: line magic's result (shown as ``Out[n]`` and usable in later cells).
Subcommand = Callable[[CommandContext, list[str]], Any]
