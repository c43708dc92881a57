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

from .errors import OllamaMagicError, ProtocolError
from .markdown import safe_markdown


def cannot_render(kind: str) -> str:
    """The one line for a backend that cannot show its rendered prompt."""
    where = {
        "openai": "OpenAI-compatible servers do not say how they apply their chat template",
        "local": "this embedded model uses one of llama-cpp-python's built-in chat formats",
    }.get(kind, f"the {kind} backend cannot render its prompt")
    return f"--show-prompt needs an Ollama server: {where}. Use --dry-run to see the request."


def rendered_prompt(backend: Any, body: dict[str, Any]) -> tuple[str, int] | None:
    """The rendered prompt and its image count, or None when the backend cannot render one."""
    if getattr(backend, "kind", "") == "local":
        return _local_prompt(body)
    if getattr(backend, "kind", "") != "ollama":
        return None
    client = getattr(backend, "client", backend)
    request = {**body, "stream": False, "_debug_render_only": True}
    data = client.request_json("POST", "/api/chat", request, timeout=60)
    info = data.get("_debug_info") if isinstance(data, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("rendered_template"), str):
        if isinstance(data, dict) and data.get("done"):
            raise ProtocolError(
                f"{backend.base_url} generated an answer instead of rendering the prompt: "
                "--show-prompt needs Ollama 0.11.5 or later (`ollama --version`)."
            )
        raise ProtocolError(
            f"{backend.base_url} did not return the rendered prompt (no _debug_info in its "
            "answer); --show-prompt needs Ollama 0.11.5 or later."
        )
    images = info.get("image_count")
    return info["rendered_template"], images if isinstance(images, int) else 0


def _local_prompt(body: dict[str, Any]) -> tuple[str, int] | None:
    """The embedded model's prompt, rendered by the chat template in its GGUF file."""
    from .local import completion_kwargs, load, resolve_model

    messages = completion_kwargs(body)["messages"]
    llm, _ = load(resolve_model(str(body.get("model", ""))), body.get("options") or {})
    template = llm.metadata.get("tokenizer.chat_template")
    if llm.chat_format != "chat_template.default" or not template:
        return None  # a built-in format of llama-cpp-python, not a template to render
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text(token: int) -> str:
        return llm._model.token_get_text(token) if token != -1 else ""  # as llama.cpp does

    formatter = Jinja2ChatFormatter(template, text(llm.token_eos()), text(llm.token_bos()))
    return formatter(messages=messages).prompt, 0


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
            got = rendered_prompt(backend, bodies[model])
        except OllamaMagicError as exc:
            parts.append(safe_markdown(f"{model}: {exc.message}"))
            continue
        if got is None:
            parts.append(cannot_render(getattr(backend, "kind", "?")))
        else:
            parts.append(prompt_markdown(model, *got))
    return "\n\n".join(parts)
