"""Conversations that span cells, keyed by cell so that re-running a cell replaces its turn.

A notebook is not a chat log: people edit a prompt and run the cell again, or run cells out of
order. Each exchange therefore remembers which cell produced it (the front end's cell id, else
the execution count). Running that cell again replaces the exchange in place, and the model only
sees the exchanges that come before it. A failed or interrupted answer is never recorded, so a
conversation only ever holds complete turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import OllamaUsageError
from .escape import markdown_cell_text, terminal_text
from .markdown import safe_markdown


@dataclass
class Exchange:
    """One user turn and the model's complete answer to it."""

    key: str
    prompt: str
    answer: str
    model: str = ""
    images: list[str] = field(default_factory=list)
    thinking: str = ""
    #: The tool calls and results between the prompt and the answer (``--tools``).
    tool_messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Conversation:
    """A named, ordered list of exchanges plus an optional system message."""

    name: str
    system: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)

    def _index(self, key: str) -> int | None:
        for index, exchange in enumerate(self.exchanges):
            if exchange.key == key:
                return index
        return None

    def messages_for(
        self, key: str, prompt: str, images: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The chat messages to send for a new turn from cell ``key``.

        When that cell already has an exchange, only the exchanges before it are context.
        """
        index = self._index(key)
        before = self.exchanges if index is None else self.exchanges[:index]
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for exchange in before:
            user: dict[str, Any] = {"role": "user", "content": exchange.prompt}
            if exchange.images:
                user["images"] = exchange.images
            messages.append(user)
            messages.extend(exchange.tool_messages)
            messages.append({"role": "assistant", "content": exchange.answer})
        current: dict[str, Any] = {"role": "user", "content": prompt}
        if images:
            current["images"] = images
        messages.append(current)
        return messages

    def record(self, exchange: Exchange) -> None:
        """Store a complete exchange: replace the same cell's earlier one, else append."""
        index = self._index(exchange.key)
        if index is None:
            self.exchanges.append(exchange)
        else:
            self.exchanges[index] = exchange

    def to_messages(self) -> list[dict[str, Any]]:
        """The whole conversation as chat messages (what the next new cell would build on)."""
        return self.messages_for("\0no-cell", "")[:-1]

    def _repr_markdown_(self) -> str:
        name = markdown_cell_text(self.name)
        lines = [f"**Conversation {name}** · {len(self.exchanges)} exchange(s)"]
        if self.system:
            lines.append(f"\n*System:* {safe_markdown(self.system)}")
        for number, exchange in enumerate(self.exchanges, 1):
            lines.append(f"\n---\n**You** ({number}):\n\n{safe_markdown(exchange.prompt)}")
            who = f"**{markdown_cell_text(exchange.model or 'Model')}**"
            lines.append(f"\n{who}:\n\n{safe_markdown(exchange.answer)}")
        if not self.exchanges:
            lines.append("\n*(empty)*")
        return "\n".join(lines)

    def __repr__(self) -> str:
        parts = [f"Conversation {self.name!r}: {len(self.exchanges)} exchange(s)"]
        if self.system:
            parts.append(f"  system: {self.system}")
        for exchange in self.exchanges:
            parts.append(f"  you: {exchange.prompt}")
            parts.append(f"  {exchange.model or 'model'}: {exchange.answer}")
        return terminal_text("\n".join(parts), lines=True)


class Conversations(dict):
    """All conversations of a session, by name; created on first use."""

    def get_or_create(self, name: str) -> Conversation:
        conversation = self.get(name)
        if conversation is None:
            conversation = self[name] = Conversation(name)
        return conversation


# --------------------------------------------------------------------------------------------
# %ollama history / reset

#: The conversation ``--chat`` joins when it names none.
DEFAULT_CHAT = "default"


def _conversation_name(argv: list[str], command: str, configured: str) -> str:
    if len(argv) > 1:
        raise OllamaUsageError(f"%ollama {command} takes at most one conversation name.")
    return argv[0] if argv else (configured or DEFAULT_CHAT)


def show_history(conversations: Conversations, argv: list[str], configured: str) -> Conversation:
    """``%ollama history [NAME]``: the conversation so far (also returned as data)."""
    name = _conversation_name(argv, "history", configured)
    conversation = conversations.get(name)
    if conversation is None:
        known = ", ".join(sorted(conversations)) or "none yet"
        raise OllamaUsageError(
            f"There is no conversation {name!r} (conversations: {known}). Start one with "
            f"%%ollama MODEL --chat {name}."
        )
    return conversation


def reset_conversation(conversations: Conversations, argv: list[str], configured: str) -> None:
    """``%ollama reset [NAME]``: forget a conversation (``--all``: every conversation)."""
    if argv == ["--all"]:
        conversations.clear()
        print("Forgot all conversations.")
        return
    name = _conversation_name(argv, "reset", configured)
    dropped = conversations.pop(name, None)
    count = len(dropped.exchanges) if dropped else 0
    print(f"Conversation {name!r} reset ({count} exchange(s) forgotten).")
