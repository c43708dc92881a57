"""What the magic reads from the running IPython shell: cells as typed, which cell runs, input.

Everything below the magic layer takes these as plain values, so prompt building, the request
and the modes never import IPython.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from IPython.core.error import StdinNotImplementedError

from .errors import ToolLoopError
from .tools import ToolCallRecord


def raw_inputs(shell: Any) -> Sequence[str] | None:
    """The shell's cells as the user typed them (magics and ``!`` commands included), for
    ``{In[n]}``; None when ``In`` in the namespace is not this shell's history."""
    history = getattr(shell, "history_manager", None)
    if history is None or shell.user_ns.get("In") is not history.input_hist_parsed:
        return None
    raw: Sequence[str] = history.input_hist_raw
    return raw


def cell_key(shell: Any) -> str:
    """Which cell is running: the front end's cell id when it sends one, else In[n]."""
    parent = getattr(shell, "parent_header", None)
    kernel = getattr(shell, "kernel", None)
    if not parent and kernel is not None:
        parent = kernel.get_parent("shell")
    metadata = (parent or {}).get("metadata") or {}
    cell_id = metadata.get("cellId") or metadata.get("cell_id")
    if cell_id:
        return f"cell:{cell_id}"
    return f"In[{shell.execution_count}]"


def show_markdown(shell: Any, markdown: str) -> None:
    """Markdown as a rich output in a notebook, as text in a terminal."""
    if getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display({"text/markdown": markdown, "text/plain": markdown}, raw=True)
    else:
        print(markdown)


def confirm_call(record: ToolCallRecord) -> bool:
    """``--confirm``: ask in the front end's input box before a tool runs."""
    arguments = json.dumps(record.arguments, ensure_ascii=False, default=repr)[:300]
    try:
        reply = input(f"Run {record.name}({arguments})? [y/N] ")
    except (StdinNotImplementedError, EOFError):
        raise ToolLoopError(
            "--confirm needs a front end that can ask (JupyterLab, Notebook, VS Code or terminal "
            "IPython); this one cannot, so no tool ran. Drop --confirm to let the calls run."
        ) from None
    return reply.strip().lower() in ("y", "yes")
