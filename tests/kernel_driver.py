"""Drive a real IPython kernel over ZMQ and record exactly what a front end would receive.

Messages are read raw from the IOPub socket so that the byte counts are the real wire sizes.
Used by the real-kernel tests and by the benchmarks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client import KernelManager

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Received:
    """One IOPub message as a front end got it."""

    time: float
    msg_type: str
    nbytes: int
    msg: dict[str, Any]

    @property
    def content(self) -> dict[str, Any]:
        return self.msg["content"]


@dataclass
class Execution:
    """Everything one ``execute`` produced."""

    code: str
    sent_at: float
    messages: list[Received] = field(default_factory=list)
    reply: dict[str, Any] | None = None
    idle_at: float | None = None

    @property
    def status(self) -> str:
        assert self.reply is not None
        return self.reply["content"]["status"]

    def of_type(self, *types: str) -> list[Received]:
        return [m for m in self.messages if m.msg_type in types]

    @property
    def stream_text(self) -> str:
        """The text the cell shows so far: stream output, else the live view's display outputs
        (thinking, then the answer; not the status line), as a front end applies them."""
        streamed = "".join(m.content["text"] for m in self.of_type("stream"))
        if streamed:
            return streamed
        from display_replay import answer_text

        return answer_text(self)

    @property
    def outputs(self) -> list[Received]:
        """Display-like outputs (what a notebook's cell would keep)."""
        return self.of_type("display_data", "update_display_data", "execute_result", "error")

    @property
    def total_bytes(self) -> int:
        return sum(m.nbytes for m in self.messages if m.msg_type != "status")


class KernelDriver:
    """A started kernel plus a raw IOPub reader. Use as a context manager."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.update(env or {})
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=full_env, extra_arguments=["--HistoryManager.enabled=False"])
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self._iopub = self.kc.iopub_channel.socket
        self._session = self.kc.session
        self.drain()

    def __enter__(self) -> KernelDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def _recv(self, timeout: float) -> Received | None:
        if not self._iopub.poll(int(timeout * 1000)):
            return None
        parts = self._iopub.recv_multipart(copy=True)
        now = time.perf_counter()
        _, msg_list = self._session.feed_identities(parts)
        msg = self._session.deserialize(msg_list)
        return Received(now, msg["header"]["msg_type"], sum(len(p) for p in parts), msg)

    def drain(self) -> None:
        while self._recv(0.05) is not None:
            pass

    def execute(
        self,
        code: str,
        *,
        timeout: float = 60.0,
        on_message: Callable[[Received, Execution], None] | None = None,
        cell_id: str | None = None,
    ) -> Execution:
        """Run ``code``; return every IOPub message up to the kernel going idle, and the reply.

        ``cell_id`` is sent in the request metadata, as JupyterLab does for each cell.
        """
        if cell_id is None:
            msg_id = self.kc.execute(code)
        else:
            content = {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            }
            msg = self.kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
            self.kc.shell_channel.send(msg)
            msg_id = msg["header"]["msg_id"]
        run = Execution(code, time.perf_counter())
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"kernel did not go idle within {timeout} s running {code!r}")
            got = self._recv(remaining)
            if got is None:
                continue
            # Every message is counted, whatever its parent: a front end receives them all.
            parent = got.msg.get("parent_header", {}).get("msg_id")
            if got.msg_type == "status":
                if parent == msg_id and got.content["execution_state"] == "idle":
                    run.idle_at = got.time
                    break
                continue
            run.messages.append(got)
            if on_message is not None:
                on_message(got, run)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                run.reply = reply
                return run

    def value(self, expression: str) -> Any:
        """Evaluate an expression in the kernel and return its repr'd value via literal_eval."""
        import ast

        run = self.execute(f"print(repr({expression}))")
        if run.status != "ok":
            raise RuntimeError(f"{expression!r} failed: {run.reply}")
        return ast.literal_eval(run.stream_text.strip())


def start_magic_kernel(env: dict[str, str] | None = None) -> KernelDriver:
    """A started kernel with ``%load_ext ollama_magic`` done (close it, or use ``with``)."""
    driver = KernelDriver(env=env)
    try:
        run = driver.execute("%load_ext ollama_magic")
        assert run.status == "ok", run.reply
    except BaseException:
        driver.close()
        raise
    return driver
