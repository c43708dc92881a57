"""Text below every view: how an unfinished answer is marked, and the ``%ollama config`` table.

The views and the teaching lens share :func:`outcome_line`, so an answer that stopped or failed
is marked in the same words whichever of them shows it.
"""

from __future__ import annotations

from typing import Any

from .escape import markdown_cell_text, terminal_text
from .result import OllamaResponse


def outcome_line(result: OllamaResponse, out_name: str = "") -> str:
    """A short closing remark for answers that did not finish normally ('' when complete).

    The error itself (its red box, or the line a ``--bg`` answer prints) says where the partial
    answer is; this only marks the answer, so a saved notebook shows that it is partial.
    """
    chars = len(result)
    if result.interrupted and result.stopped_by:
        kept = f"the {chars:,} characters above are what had arrived" if chars else "nothing had"
        return f"the kernel stopped ({result.stopped_by}) before the answer ended; {kept}"
    if result.interrupted:
        return f"stopped after {chars:,} characters" if chars else "stopped before the answer began"
    if result.error is not None:
        return f"failed after {chars:,} characters" if chars else "failed before the answer began"
    if result.done_reason == "length":
        return "cut off at the token limit (done_reason 'length'; raise num_predict)"
    return ""


def _is_unset(value: Any) -> bool:
    return value is None or (isinstance(value, (str, dict, list, tuple)) and not value)


class ConfigReport(list[tuple[str, Any, str]]):
    """``%ollama config``: rows of (setting, value, source) that render as a table.

    Values are shown as plain text (escaped, never in code spans), unset ones as "(not set)".
    """

    def _repr_markdown_(self) -> str:
        lines = ["| setting | value | from |", "|---|---|---|"]
        for name, value, source in self:
            shown = "*(not set)*" if _is_unset(value) else markdown_cell_text(value)
            lines.append(f"| {markdown_cell_text(name)} | {shown} | {markdown_cell_text(source)} |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        width = max((len(name) for name, _, _ in self), default=0)
        return "\n".join(
            f"{name:<{width}}  {'(not set)' if _is_unset(value) else terminal_text(value)}"
            f"  ({source})"
            for name, value, source in self
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))
