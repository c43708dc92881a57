"""``--show-prompt``: the exact text a model receives once its chat template is applied.

Ollama (0.11.5 and later) renders a request without generating anything when it carries
``"_debug_render_only": true``: the answer is one JSON object whose
``_debug_info.rendered_template`` is the prompt (system prompt, earlier turns, image
placeholders). Unlike ``--dry-run``, this sends the request; unlike an answer, it loads no model.
No IPython here.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import OllamaMagicError
from .markdown import safe_markdown


def cannot_render(kind: str) -> str:
    """The one line for a backend that cannot show its rendered prompt."""
    where = {
        "openai": "OpenAI-compatible servers do not say how they apply their chat template",
        "local": "this embedded model uses one of llama-cpp-python's built-in chat formats",
    }.get(kind, f"the {kind} backend cannot render its prompt")
    return f"--show-prompt needs an Ollama server: {where}. Use --dry-run to see the request."


def prompt_markdown(model: str, rendered: str, images: int = 0) -> str:
    """The rendered prompt as a Markdown code block (model text: never interpreted)."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", rendered)), default=0) + 1)
    name = model.replace("`", "'")
    extra = f", {images} image{'s' if images != 1 else ''}" if images else ""
    return (
        f"**The prompt `{name}` receives** ({len(rendered):,} characters{extra}; nothing was "
        f"generated):\n\n{fence}text\n{rendered}\n{fence}\n"
    )


def show_prompts(backends: dict[str, Any], bodies: dict[str, dict[str, Any]]) -> str:
    """Markdown for every model of the cell: its rendered prompt, or why there is none."""
    parts = []
    for model, backend in backends.items():
        try:
            got = backend.render_prompt(bodies[model])
        except OllamaMagicError as exc:
            parts.append(safe_markdown(f"{model}: {exc.message}"))
            continue
        if got is None:
            parts.append(cannot_render(backend.kind))
        else:
            parts.append(prompt_markdown(model, *got))
    return "\n\n".join(parts)
