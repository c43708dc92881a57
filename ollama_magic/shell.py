"""What the magic reads from the running IPython shell: cells as typed, which cell runs, input,
and when the kernel is told to shut down.

Everything below the magic layer takes these as plain values, so prompt building, the request
and the modes never import IPython.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from IPython.core.error import StdinNotImplementedError

from .errors import ToolLoopError
from .stream import KERNEL_SHUTDOWN, stop_every_answer
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


#: Longest a kernel shutdown waits for streaming answers to show that they were cut short.
SHUTDOWN_GRACE = 3.0


def stop_answers_at_shutdown(shell: Any) -> None:
    """When the kernel is told to shut down (a restart), stop the answers still streaming first.

    Each one then ends as usual: its final output holds the text that arrived and says that
    the kernel stopped, so that is what the notebook saves, not a status line frozen mid-answer.
    Wraps the kernel's ``do_shutdown`` (the handler of the shutdown request) once.
    """
    kernel: Any = getattr(shell, "kernel", None)
    original = getattr(kernel, "do_shutdown", None)
    if original is None or getattr(original, "_stops_answers", False):
        return

    def do_shutdown(restart: bool) -> Any:
        stop_every_answer(KERNEL_SHUTDOWN + (" for a restart" if restart else ""), SHUTDOWN_GRACE)
        return original(restart)

    do_shutdown._stops_answers = True  # type: ignore[attr-defined]
    do_shutdown._original = original  # type: ignore[attr-defined]
    kernel.do_shutdown = do_shutdown


def restore_shutdown(shell: Any) -> None:
    """Undo :func:`stop_answers_at_shutdown` (``%unload_ext``)."""
    kernel: Any = getattr(shell, "kernel", None)
    current: Any = getattr(kernel, "do_shutdown", None)
    if getattr(current, "_stops_answers", False):
        kernel.do_shutdown = current._original
