"""ollama_magic: talk to local Ollama models from Jupyter with ``%%ollama``.

Load it in a notebook with ``%load_ext ollama_magic``.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .client import OllamaClient
from .errors import OllamaMagicError
from .result import OllamaResponse

__all__ = ["OllamaClient", "OllamaMagicError", "OllamaResponse", "__version__"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%ollama`` (called by ``%load_ext ollama_magic``)."""
    from .cmdline import keep_question_marks
    from .completion import install
    from .fix import watch_errors
    from .magics import OllamaMagics
    from .shell import stop_answers_at_shutdown

    ipython.register_magics(OllamaMagics)
    if keep_question_marks not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(keep_question_marks)
    magics = ipython.magics_manager.registry["OllamaMagics"]
    install(ipython, lambda: magics._context().backend, subcommands=magics._subcommands)
    watch_errors(ipython)
    stop_answers_at_shutdown(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the tab completion hook (IPython keeps the magics registered)."""
    from .cmdline import keep_question_marks
    from .completion import uninstall
    from .fix import unwatch_errors
    from .shell import restore_shutdown

    restore_shutdown(ipython)
    uninstall(ipython)
    unwatch_errors(ipython)
    if keep_question_marks in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(keep_question_marks)
