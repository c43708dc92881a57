"""Apply a cell's IOPub messages as a display-protocol-only front end does (VS Code, Colab)."""

from __future__ import annotations

from typing import Any

from kernel_driver import Execution

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def replay(run: Execution) -> list[list[dict[str, Any]]]:
    """Every state of the cell's outputs, one after each message that changed them."""
    outputs: list[dict[str, Any]] = []
    states = []
    clear_pending = False
    for message in run.messages:
        kind, content = message.msg_type, message.content
        if kind not in ("display_data", "update_display_data", "stream", "clear_output"):
            continue
        if kind == "clear_output":
            if content.get("wait"):
                clear_pending = True
            else:
                outputs = []
            continue
        if clear_pending and kind != "update_display_data":
            outputs, clear_pending = [], False
        display_id = content.get("transient", {}).get("display_id")
        if kind == "update_display_data":
            for output in outputs:
                if output.get("display_id") == display_id:
                    output["data"] = content["data"]
        elif kind == "stream":
            if outputs and outputs[-1]["type"] == "stream":
                outputs[-1]["text"] += content["text"]
            else:
                outputs.append({"type": "stream", "text": content["text"]})
        else:
            outputs.append({"type": "display", "data": content["data"], "display_id": display_id})
        states.append([dict(output) for output in outputs])
    return states


def shown(state: list[dict[str, Any]]) -> str:
    """What a reader sees in one state: Markdown (or plain text) of every output, in order."""
    parts = []
    for output in state:
        if output["type"] == "stream":
            parts.append(output["text"])
            continue
        data = output["data"]
        assert WIDGET_MIME not in data, "the answer must not need a widget manager"
        parts.append(data.get("text/markdown", data.get("text/html", data.get("text/plain", ""))))
    return "\n".join(parts)


def shown_text(run: Execution) -> str:
    """What the cell shows now, after the messages received so far."""
    states = replay(run)
    return shown(states[-1]) if states else ""


def answer_text(run: Execution) -> str:
    """The thinking and answer text the cell shows now, without the status line or trace."""
    states = replay(run)
    thinking, answer = [], []
    for output in states[-1] if states else []:
        data = output.get("data", {})
        markdown = data.get("text/markdown")
        if output["type"] != "display" or markdown is None or markdown.startswith("<small>"):
            continue
        if markdown.startswith("<details"):
            body = markdown.split("</summary>", 1)[-1].rsplit("</details>", 1)[0]
            thinking.append(body.strip())
        else:
            answer.append(markdown)
    return "".join(thinking) + "".join(answer)
