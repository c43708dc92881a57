"""The live view's batcher: every token sent once, in order, while a fast producer races it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from tornado.ioloop import IOLoop

from ollama_magic.view.batching import COMPACT_AFTER, _Batcher, _LoopBatcher, _ThreadBatcher


@pytest.fixture
def io_loop() -> Iterator[IOLoop]:
    """An event loop on its own thread, as ipykernel's IOPub thread has."""
    started = threading.Event()
    holder: list[IOLoop] = []

    def run() -> None:
        loop = IOLoop()
        holder.append(loop)
        loop.add_callback(started.set)
        loop.start()
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield holder[0]
    holder[0].add_callback(holder[0].stop)
    thread.join(10)


def make(kind: str, io_loop: IOLoop, sent: list[tuple[str, str]]) -> _Batcher:
    def send_text(kind: str, text: str) -> None:
        sent.append((kind, text))

    def send_status() -> None:
        pass

    if kind == "loop":
        return _LoopBatcher(io_loop, send_text, send_status, interval=0.001)
    return _ThreadBatcher(send_text, send_status, interval=0.001)


@pytest.mark.parametrize("kind", ["loop", "thread"])
def test_every_token_arrives_once_and_in_order(kind, io_loop):
    sent: list[tuple[str, str]] = []
    batcher = make(kind, io_loop, sent)
    thinking = [f"t{i} " for i in range(3000)]
    answer = [f"a{i} " for i in range(100 * COMPACT_AFTER)]
    for token in thinking:
        batcher.add("thinking", token)
    for token in answer:
        batcher.add("answer", token)
    batcher.close()
    by_kind: dict[str, str] = {}
    for sent_kind, text in sent:
        by_kind[sent_kind] = by_kind.get(sent_kind, "") + text
    assert by_kind == {"thinking": "".join(thinking), "answer": "".join(answer)}
    # Batched: far fewer messages than tokens, and none empty.
    assert len(sent) < len(answer) // 10
    assert all(text for _, text in sent)


@pytest.mark.parametrize("kind", ["loop", "thread"])
def test_text_added_after_a_quiet_spell_is_sent_without_close(kind, io_loop):
    sent: list[tuple[str, str]] = []
    arrived = threading.Event()
    batcher = make(kind, io_loop, sent)
    original = batcher._send_text

    def send_text(kind: str, text: str) -> None:
        original(kind, text)
        arrived.set()

    batcher._send_text = send_text
    batcher.add("answer", "hello")
    assert arrived.wait(10), "the first text after a quiet spell must go out on its own"
    arrived.clear()
    batcher.add("answer", " again")
    assert arrived.wait(10)
    batcher.close()
    assert "".join(text for _, text in sent) == "hello again"
