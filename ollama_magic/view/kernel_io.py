"""Display messages sent on behalf of the running cell, straight to the kernel's IOPub socket."""

from __future__ import annotations

import collections
import contextlib
import json
import sys
import threading
import time
import uuid
from typing import Any


class CellOutput:
    """Display outputs of the running cell, created and replaced by display id.

    Only the Jupyter display protocol is used (``display_data``, ``update_display_data``), so
    every front end shows the text, with or without a widget manager, and a saved notebook holds
    exactly what was on screen. Messages go to the IOPub socket directly, with the cell's request
    as parent: from the IOPub thread itself (the batcher's timers) after whatever other threads
    queued before, so the order of output is kept; from other threads through the socket's
    queue. A display publisher without a socket (one that captures output) takes IPython's
    usual path.
    """

    def __init__(self, shell: Any) -> None:
        self._shell = shell
        self._kernel = shell.kernel
        self._parent = self._kernel.get_parent("shell")
        self._iopub = _usable_iopub_thread(self._kernel)
        topic = getattr(shell.display_pub, "topic", None)
        self._topic = topic if isinstance(topic, bytes) else None
        self._prefix = uuid.uuid4().hex[:12]
        self._count = 0
        #: Bytes of output data sent, for the view's budget (the message headers not counted).
        self.sent = 0
        self._times: collections.deque[float] = collections.deque()

    @property
    def io_loop(self) -> Any:
        """The event loop of the thread that owns the IOPub socket, if it can be used."""
        return self._iopub.io_loop if self._iopub is not None else None

    def recent_messages(self) -> int:
        """Messages sent in the last second."""
        now = time.monotonic()
        while self._times and self._times[0] < now - 1.0:
            self._times.popleft()
        return len(self._times)

    def new_id(self) -> str:
        self._count += 1
        return f"ollama-{self._prefix}-{self._count}"

    def display(
        self, display_id: str, data: dict[str, Any], metadata: Any = None, flush: bool = False
    ) -> None:
        """A new output at the end of the cell, which ``update`` can replace later."""
        self._send("display_data", display_id, data, metadata, flush)

    def update(
        self, display_id: str, data: dict[str, Any], metadata: Any = None, flush: bool = False
    ) -> None:
        """Replace the output shown under ``display_id``, wherever it is in the cell.

        ``flush`` first sends what the cell printed so far, so that it stays before.
        """
        self._send("update_display_data", display_id, data, metadata, flush)

    def echo(self, key: str, text: str) -> None:
        """``text`` under ``transient[key]`` of an update for a display id that no output has.

        Front ends ignore it and notebooks never keep ``transient``: this is for a program that
        runs the notebook and reads the messages itself (:mod:`.echo`). Not counted in ``sent``.
        """
        if self._topic is None:
            return  # a display publisher that captures output: nobody reads transient data
        transient = {"display_id": f"ollama-{self._prefix}-echo", key: text}
        content = {"data": {}, "metadata": {}, "transient": transient}
        self._kernel.session.send(
            self._kernel.iopub_socket,
            "update_display_data",
            content,
            parent=self._parent,
            ident=self._topic,
        )

    def _send(
        self, kind: str, display_id: str, data: dict[str, Any], metadata: Any, flush: bool
    ) -> None:
        content = {
            "data": data,
            "metadata": metadata or {},
            "transient": {"display_id": display_id},
        }
        packed = None
        if self._topic is not None:
            with contextlib.suppress(TypeError, ValueError):
                packed = _utf8_json(content)
        if packed is None:
            self._shell.display_pub.publish(
                data,
                metadata=metadata or {},
                transient={"display_id": display_id},
                update=kind == "update_display_data",
            )
            return
        self.sent += len(packed)
        now = time.monotonic()
        self._times.append(now)
        while self._times and self._times[0] < now - 1.0:
            self._times.popleft()
        socket = self._kernel.iopub_socket
        iopub = self._iopub
        if iopub is not None and threading.current_thread() is iopub.thread:
            iopub._handle_event(None)
            socket = iopub.socket
        elif flush:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        self._kernel.session.send(socket, kind, packed, parent=self._parent, ident=self._topic)


def _usable_iopub_thread(kernel: Any) -> Any:
    """ipykernel's IOPub thread if it offers what :class:`_LoopBatcher` needs, else None.

    Those are ipykernel internals (a queue of pending sends, and the handler that drains it),
    so anything unexpected means the portable helper-thread batcher instead.
    """
    iopub = getattr(getattr(kernel, "iopub_socket", None), "io_thread", None)
    needed = ("io_loop", "socket", "thread", "_events", "_handle_event")
    if iopub is None or not all(hasattr(iopub, name) for name in needed):
        return None
    thread = iopub.thread
    if not isinstance(thread, threading.Thread) or not thread.is_alive() or iopub.socket is None:
        return None
    return iopub


def _utf8_json(content: dict[str, Any]) -> bytes:
    """``content`` as UTF-8 JSON, holding about twice its size at most while encoding.

    >>> _utf8_json({"text/plain": "café"})
    b'{"text/plain": "caf\\xc3\\xa9"}'
    """
    # Piece by piece: one str for the whole message would take 2 or 4 bytes per character as
    # soon as any string in it (the "…" of text/plain, an emoji) is beyond Latin-1.
    step = 1 << 16
    parts: list[bytes] = []
    for chunk in json.JSONEncoder(ensure_ascii=False, allow_nan=False).iterencode(content):
        parts.extend(chunk[i : i + step].encode() for i in range(0, len(chunk), step))
    return b"".join(parts)
