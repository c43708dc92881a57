"""Sending streamed text to the front end at a bounded rate, from the cheapest thread.

Sending on a timer rather than on every token means a stall in the model never leaves words
already received unseen, while a fast model still causes at most one update per interval.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

#: Shortest gap between two text updates sent to the front end (seconds).
TEXT_INTERVAL = 0.045
#: Gap between two status-line updates while nothing else changes (seconds).
STATUS_INTERVAL = 1.0


class _Batcher:
    """Collects text from the reading thread(s) and sends it at a bounded rate.

    Sending on a timer rather than on the next token means a stall in the model never leaves
    already-received words unseen, while a fast model still causes at most one update per
    ``interval``. The first text after a quiet period goes out immediately.

    The reading thread takes no lock: an interrupt (KeyboardInterrupt) can strike at any
    bytecode, and one that lands just after a lock is acquired leaves it held forever. It only
    appends to a deque and, when the sender has nothing scheduled, asks for a wake-up.
    Subclasses decide where the sending runs (:func:`make_batcher` picks one).
    """

    def __init__(
        self,
        send_text: Callable[[str, str], None],
        send_status: Callable[[], None],
        interval: float = TEXT_INTERVAL,
        status_interval: float = STATUS_INTERVAL,
    ) -> None:
        self._send_text = send_text
        self._send_status = send_status
        self._interval = interval
        self._status_interval = status_interval
        # One queue of plain strings per kind of text, kinds in the order they first appeared
        # (thinking before the answer). A token waiting here costs its str and a slot.
        self._queues: dict[str, collections.deque[str]] = {}
        self._kinds: list[str] = []
        self._closed = False
        self._idle = False
        self._start()

    def _start(self) -> None:
        raise NotImplementedError

    def add(self, kind: str, text: str) -> None:
        queue = self._queues.get(kind)
        if queue is None:  # each kind has one producer thread, so this cannot race
            queue = self._queues[kind] = collections.deque()
            self._kinds.append(kind)
        queue.append(text)
        if len(queue) > COMPACT_AFTER:
            _compact_tail(queue, COMPACT_AFTER)
        if self._idle:
            self._idle = False
            self._wake()

    def _wake(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop sending on the timer; what is still pending goes out before this returns."""
        raise NotImplementedError

    def _has_pending(self) -> bool:
        return any(self._queues[kind] for kind in self._kinds[:])

    def _send_pending(self) -> None:
        """One message per kind with everything that kind has waiting (none if nothing is)."""
        for kind in self._kinds[:]:
            queue = self._queues[kind]
            parts = []
            with contextlib.suppress(IndexError):  # the producer may be compacting the tail
                for _ in range(len(queue)):
                    parts.append(queue.popleft())
            if parts:
                self._send_text(kind, "".join(parts))


#: Waiting tokens of one kind are joined in runs of this many. When the sender is held up (it
#: needs the GIL, and a fast stream keeps the reading thread busy), thousands of tokens may wait;
#: as separate strings they would cost about ten times their text.
COMPACT_AFTER = 256


def _compact_tail(queue: collections.deque[str], count: int) -> None:
    """Join the newest ``count`` strings of ``queue`` into one, in place and in order.

    Only the producer appends, and it pops from the right while the sender pops from the left,
    so the joined run goes back exactly where it was taken from.
    """
    parts = []
    with contextlib.suppress(IndexError):  # the sender took the rest meanwhile
        for _ in range(count):
            parts.append(queue.pop())
    if parts:
        parts.reverse()
        queue.append("".join(parts))


class _LoopBatcher(_Batcher):
    """Sends from timers on the kernel's IOPub event loop, the thread that owns the socket.

    At 100 tokens/s the cost of an update is mostly threads waking up, not the bytes. Here an
    update is one wake-up of the IOPub thread, which then writes to its own socket
    (``_CellOutput.send_text``); a helper thread would add two wake-ups and a hand-over to that
    thread for each update.
    """

    def __init__(self, io_loop: Any, *args: Any, **kwargs: Any) -> None:
        self._loop = io_loop
        super().__init__(*args, **kwargs)

    def _start(self) -> None:
        self._timer: Any = None  # the next text tick; touched on the loop's thread only
        self._last_text = float("-inf")
        self._flushed = threading.Event()
        self._idle = True
        # Callbacks run in a copy of the caller's context: widget updates sent from them carry
        # the cell's parent header (ipykernel keeps it in a context variable).
        self._loop.add_callback(self._schedule_status)

    def _wake(self) -> None:
        self._loop.add_callback(self._woken)

    def _woken(self) -> None:
        if self._timer is None and not self._closed:
            self._tick()

    def _tick(self) -> None:
        self._timer = None
        if self._closed:
            return
        wait = self._last_text + self._interval - time.monotonic()
        if wait > 0:
            self._timer = self._loop.call_later(wait, self._tick)
        elif self._has_pending():
            self._last_text = time.monotonic()
            # Look again one interval later rather than going idle: while the model streams,
            # that is the only wake-up per update.
            self._timer = self._loop.call_later(self._interval, self._tick)
            self._send_pending()
        else:
            # Declare idleness first, then look again, so an append between the two steps is
            # never missed.
            self._idle = True
            if self._has_pending():
                self._idle = False
                self._timer = self._loop.call_later(0, self._tick)

    def _schedule_status(self) -> None:
        if not self._closed:
            self._loop.call_later(self._status_interval, self._status_tick)

    def _status_tick(self) -> None:
        if not self._closed:
            self._send_status()
            self._schedule_status()

    def _flush(self) -> None:
        try:
            self._send_pending()
        finally:
            self._flushed.set()

    def close(self) -> None:
        self._closed = True
        self._loop.add_callback(self._flush)
        # The loop answers within microseconds; a kernel shutting down may not answer at all.
        if not self._flushed.wait(2.0):
            self._send_pending()


class _ThreadBatcher(_Batcher):
    """Sends from a helper thread: for kernels whose IOPub thread this package cannot use."""

    def _start(self) -> None:
        # A socket pair, not os.pipe(): select() waits on sockets on every platform (Windows
        # has no select() on pipes).
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_write.setblocking(False)
        # Run in a copy of the caller's context, so that widget updates sent from the helper
        # thread carry the cell's parent header (ipykernel keeps it in a context variable).
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="ollama-magic-view", daemon=True
        )
        self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_write.send(b"!")

    def _run(self) -> None:
        last_text = 0.0
        next_status = time.monotonic() + self._status_interval
        try:
            while not self._closed:
                now = time.monotonic()
                if self._has_pending():
                    wait = last_text + self._interval - now
                    if wait <= 0:
                        last_text = now
                        self._send_pending()
                        continue
                else:
                    # Declare idleness first, then look again, so an append between the two
                    # steps is never missed.
                    self._idle = True
                    if self._has_pending():
                        self._idle = False
                        continue
                    wait = next_status - now
                if now >= next_status:
                    self._send_status()
                    next_status = time.monotonic() + self._status_interval
                    continue
                wait = min(wait, next_status - now)
                ready, _, _ = select.select([self._wake_read], [], [], max(wait, 0.0))
                if ready:
                    self._wake_read.recv(4096)
        finally:
            self._idle = False

    def close(self) -> None:
        """Stop the helper thread, then send what is still pending from the caller's thread."""
        self._closed = True
        self._wake()
        self._thread.join()
        self._wake_read.close()
        self._wake_write.close()
        self._send_pending()


def make_batcher(
    io_loop: Any,
    send_text: Callable[[str, str], None],
    send_status: Callable[[], None],
    interval: float = TEXT_INTERVAL,
) -> _Batcher:
    """The cheapest batcher the kernel allows: on its IOPub loop, else on a helper thread."""
    if io_loop is not None:
        return _LoopBatcher(io_loop, send_text, send_status, interval)
    return _ThreadBatcher(send_text, send_status, interval)
