"""Safe Markdown (placeholder until the full escaper lands)."""

from __future__ import annotations


def safe_markdown(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")
