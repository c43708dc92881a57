"""Answers as plain Markdown text: pure functions, below every view.

The result containers (:class:`~ollama_magic.jobs.Answers`, ``MappedAnswers``) render
themselves with these, so they need no view (and no widgets) to be shown or saved.
"""

from __future__ import annotations

from typing import Any

from .escape import markdown_cell_text, terminal_text
from .markdown import safe_markdown
from .result import OllamaResponse


def outcome_line(result: OllamaResponse, out_name: str) -> str:
    """A short closing remark for answers that did not finish normally ('' when complete)."""
    chars = len(result)
    kept = f"after {chars} characters; the partial answer is in `{out_name}`"
    if result.interrupted:
        return f"interrupted {kept}" if chars else "interrupted before the answer began"
    if result.error is not None:
        return f"failed {kept}" if chars else "failed before the answer began"
    if result.done_reason == "length":
        return "cut off at the token limit (done_reason 'length'; raise num_predict)"
    return ""


def compare_markdown(answers: dict[str, OllamaResponse], out_name: str = "") -> str:
    """All answers of a comparison, one section per model, as safe Markdown."""
    sections = []
    for model, result in answers.items():
        name = safe_markdown(model).replace("*", "\\*").replace("_", "\\_")
        body = safe_markdown(result.text) if result else ""
        note = outcome_line(result, f"{out_name}['{model}']") if out_name else ""
        if result.error is not None and not result.interrupted and not note:
            note = f"failed: {result.error.message}"
        if note:
            body = f"{body}\n\n*{safe_markdown(note)}*" if body else f"*{safe_markdown(note)}*"
        sections.append(f"#### {name}\n\n{body or '*(empty answer)*'}")
    return "\n\n---\n\n".join(sections)


def map_summary(results: list[OllamaResponse], out_name: str = "") -> str:
    """One line about a --map run (how many answered, which failed), as Markdown."""
    failed = [i for i, r in enumerate(results) if not r.complete]
    answered = len(results) - len(failed)
    where = f" in `{out_name}`" if out_name else ""
    line = f"**Mapped {len(results)} items**{where}: {answered} answered"
    if failed:
        shown = ", ".join(str(i) for i in failed[:20]) + (" …" if len(failed) > 20 else "")
        line += f", {len(failed)} failed or stopped (items {shown}; see `.error` on each)"
    return line + "."


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
