"""Views render an answer's events: live in a notebook, in a terminal, or not at all.

In a notebook every view is made of plain display outputs (``display_data`` replaced by
``update_display_data``), so the answer is seen in any front end that speaks the Jupyter display
protocol, with or without a widget manager, and the saved notebook holds what was on screen.
:mod:`.live` shows one answer, :mod:`.compare` a comparison, :mod:`.mapping` a ``--map`` run;
:mod:`.pieces` cuts streaming Markdown into pieces, :mod:`.batching` bounds the update rate and
:mod:`.kernel_io` sends the messages.
"""

from __future__ import annotations

from typing import Any

from .batching import COMPACT_AFTER, STATUS_INTERVAL, TEXT_INTERVAL, make_batcher
from .common import (
    PLAIN_LIMIT,
    TRACE_LINES,
    QuietView,
    TerminalView,
    View,
    answer_markdown,
    final_bundle,
    format_status,
    format_trace_line,
    outcome_line,
    plain_text,
    provenance,
)
from .compare import (
    CompareView,
    LiveCompareView,
    QuietCompareView,
    TerminalCompareView,
    compare_markdown,
)
from .live import LiveView
from .mapping import LiveMapView, MapView, TerminalMapView, map_summary

__all__ = [
    "COMPACT_AFTER",
    "PLAIN_LIMIT",
    "STATUS_INTERVAL",
    "TEXT_INTERVAL",
    "TRACE_LINES",
    "CompareView",
    "LiveCompareView",
    "LiveMapView",
    "LiveView",
    "MapView",
    "QuietCompareView",
    "QuietView",
    "TerminalCompareView",
    "TerminalMapView",
    "TerminalView",
    "View",
    "answer_markdown",
    "choose_compare_view",
    "choose_map_view",
    "choose_view",
    "close_tree",
    "compare_markdown",
    "final_bundle",
    "format_status",
    "format_trace_line",
    "make_batcher",
    "map_summary",
    "outcome_line",
    "plain_text",
    "provenance",
]


def close_tree(widget: Any) -> None:
    """Close a widget with its children, layout and style, so no widget state is left behind."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    for part in ("layout", "style"):
        sub = getattr(widget, part, None)
        if sub is not None:
            sub.close()
    widget.close()


def choose_view(
    shell: Any, model: str, quiet: bool, trace: bool = False, smooth: bool = False
) -> View:
    """The live view in a Jupyter kernel, plain stdout elsewhere, nothing with --quiet."""
    if quiet:
        return QuietView()
    if getattr(shell, "kernel", None) is not None:
        return LiveView(shell, model, trace=trace, smooth=smooth)
    return TerminalView()


def choose_compare_view(shell: Any, models: list[str], quiet: bool) -> CompareView:
    """Sections in a Jupyter kernel, whole answers printed elsewhere, nothing with --quiet."""
    if quiet:
        return QuietCompareView()
    if getattr(shell, "kernel", None) is not None:
        return LiveCompareView(shell, models)
    return TerminalCompareView(models)


def choose_map_view(shell: Any, total: int, quiet: bool) -> MapView:
    if getattr(shell, "kernel", None) is not None and not quiet:
        return LiveMapView(shell, total)
    return TerminalMapView(total, quiet=quiet)
