"""Scripted replies that ask for tool calls, built from the test servers' public Reply steps.

Ollama sends a turn's calls in one chunk, ``message.tool_calls`` with ``function.{name,
arguments}`` (arguments as an object) and, in recent versions, an ``id``. OpenAI-compatible
servers send ``delta.tool_calls`` fragments: the first of a call has its ``index``, ``id`` and
name, the arguments follow as pieces of one JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from ollama_magic.testing import Gate, Reply


def ollama_calls(
    *calls: tuple[str, Any] | tuple[str, Any, str | None],
    text: str = "",
    model: str = "llama3.2",
    gate: Gate | None = None,
) -> Reply:
    """One turn that asks for ``calls`` (name, arguments[, id]), as Ollama streams it."""
    wire = []
    for index, call in enumerate(calls):
        name, arguments = call[0], call[1]
        entry: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": arguments}}
        call_id = call[2] if len(call) > 2 else None
        if call_id:
            entry["id"] = call_id
        wire.append(entry)
    steps: list[Any] = []
    if text:
        steps.append(Reply.token(text))
    if gate is not None:
        steps.append(gate)
    steps.append(
        {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "", "tool_calls": wire},
            "done": False,
        }
    )
    steps.append(Reply.done("stop"))
    return Reply.stream(*steps)


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-tools",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "llama3.2",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def openai_calls(*calls: tuple[str, dict[str, Any], str], pieces: int = 3) -> Reply:
    """One turn that asks for ``calls`` (name, arguments, id) as ``delta.tool_calls``
    fragments: each call's JSON arguments cut into ``pieces``, the calls interleaved."""
    steps: list[Any] = [openai_chunk({"role": "assistant", "content": None})]
    texts = [json.dumps(arguments) for _, arguments, _ in calls]
    for index, (name, _, call_id) in enumerate(calls):
        first = {"index": index, "id": call_id, "type": "function"}
        steps.append(
            openai_chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
        )
    for piece in range(pieces):
        for index, text in enumerate(texts):
            size = -(-len(text) // pieces)
            part = text[piece * size : (piece + 1) * size]
            if part:
                fragment = {"index": index, "function": {"arguments": part}}
                steps.append(openai_chunk({"tool_calls": [fragment]}))
    steps.append(openai_chunk({}, "tool_calls"))
    steps.append(b"data: [DONE]\n\n")
    return Reply.stream(*steps, content_type="text/event-stream")
