"""ollama_magic: talk to local Ollama models from Jupyter with ``%%ollama``.

Load it in a notebook with ``%load_ext ollama_magic``.
"""

from __future__ import annotations

from typing import Any

from .client import OllamaClient
from .errors import OllamaMagicError
from .result import OllamaResponse

__version__ = "0.1.0"
__all__ = ["OllamaClient", "OllamaMagicError", "OllamaResponse", "__version__"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%ollama`` (called by ``%load_ext ollama_magic``)."""
    from .magics import OllamaMagics

    ipython.register_magics(OllamaMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo beyond what IPython does itself."""
