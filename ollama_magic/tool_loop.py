"""``--tools``: the model asks for calls, the notebook runs them, the results go back, repeat.

Each round is one :func:`~ollama_magic.stream.stream_answer` into the same sink, so the calls
and the final answer appear in one output, and everything the other modes do (stop, errors,
provenance, the log) holds for every round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .errors import Interrupted, OllamaUsageError, ToolLoopError
from .request import ChatRequest
from .result import OllamaResponse
from .stream import CancelToken, Journal, stream_answer
from .tools import ToolCallRecord, run_call

#: Asks the user whether a call may run (``--confirm``); raises when there is no way to ask.
Ask = Callable[[ToolCallRecord], bool]


def answer_with_tools(
    backend: Any,
    request: ChatRequest,
    sink: Any,
    *,
    cancel: CancelToken | None = None,
    journal: Journal | None = None,
    ask: Ask | None = None,
) -> tuple[OllamaResponse, list[dict[str, Any]]]:
    """Stream rounds until the model answers without calls; return the last answer and the
    tool messages exchanged on the way (for the conversation history).

    Only the cell's tools run; the stop button ends the loop during a stream or a call.
    A sink may show the calls: ``call_started(record)`` before one runs (or is asked about)
    and ``call_finished(record)`` when its result is known.
    """
    if getattr(backend, "kind", "") == "local":
        raise OllamaUsageError(
            "--tools needs a server that calls tools (Ollama or an OpenAI-compatible one); the "
            "embedded local: model cannot. Name a model on a server, or drop --tools."
        )
    if journal is not None and journal.replay:
        # The log keeps answers, not the calls between them: replaying a round would lose them.
        journal = replace(journal, replay=False)
        say = getattr(sink, "note", None) or print
        say("--cache replays answers without tool calls only; this one is asked again.")
    tools = {tool.name: tool for tool in request.tools}
    started = getattr(sink, "call_started", None)
    finished = getattr(sink, "call_finished", None)
    records: list[ToolCallRecord] = []
    exchanged: list[dict[str, Any]] = []
    rounds = 0
    while True:
        result = stream_answer(
            backend,
            request.body(extra=exchanged),
            sink,
            out_name=request.out,
            cancel=cancel,
            trace=request.trace,
            journal=journal,
        )
        calls = result.requested_calls
        if result.error is not None or not calls:
            break
        if rounds >= request.max_tool_rounds:
            result.error = ToolLoopError(
                f"The model still asked for tools after {rounds} rounds; everything so far is in "
                f"{request.out} (.tool_calls). Allow more with --max-tool-rounds N."
            )
            break
        rounds += 1
        exchanged.append(
            {"role": "assistant", "content": result.text, "tool_calls": [c.wire() for c in calls]}
        )
        try:
            for call in calls:
                record = ToolCallRecord(call.name, call.arguments, call_id=call.call_id)
                records.append(record)
                if started is not None:
                    started(record)
                try:
                    _run(tools, record, ask)
                except KeyboardInterrupt:
                    record.error = record.error or "Error: stopped by the user."
                    raise
                except ToolLoopError as exc:
                    record.error = record.error or f"Error: not run. {exc.message}"
                    raise
                finally:
                    if finished is not None:
                        finished(record)
                exchanged.append(record.message())
        except KeyboardInterrupt:
            result.error = Interrupted(
                f"Stopped during a tool call; the calls so far are in {request.out}.tool_calls."
            )
            result.interrupted = True
            break
        except ToolLoopError as exc:
            result.error = exc
            break
    result.tool_calls = records
    return result, exchanged


def _run(tools: dict[str, Any], record: ToolCallRecord, ask: Ask | None) -> None:
    """Ask first (``--confirm``, only for calls that could run), then run into ``record``."""
    if ask is not None and record.name in tools and not ask(record):
        record.error = "Error: the user declined this call."
        return
    run_call(tools, record.name, record.arguments, record.call_id, into=record)
