"""A real IPython kernel driven through jupyter_client, with a lean raw IOPub reader.

The reader does as little as a front end can while still knowing what arrived: it takes each
multipart message off the SUB socket, notes the time (CLOCK_MONOTONIC, shared with the server
process), the total wire size of its frames, and decodes only the small header and parent
header. Content is kept raw and decoded later, and only for ``stream`` messages. A slow reader
would make ZMQ drop messages at the high-water mark, so the harness checks afterwards that
every displayed character arrived.

Kernel-side costs are measured inside the kernel by ``pre_run_cell``/``post_run_cell`` hooks
(wall and CPU time of the whole process, all threads; optionally the tracemalloc peak), and the
peak resident memory by resetting and reading the kernel's ``VmHWM`` in ``/proc``.
"""

from __future__ import annotations

import ast
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client import KernelManager

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DELIM = b"<IDS|MSG>"

#: Installed once in the kernel. Every non-silent cell records its costs in ``_bench_last``.
HOOKS = """
import time as _bench_time, tracemalloc as _bench_tracemalloc
_bench = {"trace": False, "last": None}

def _bench_pre(info):
    get_ipython().user_ns.pop("bench_answer", None)
    _bench["traced"] = _bench["trace"] and not _bench_tracemalloc.is_tracing()
    if _bench["traced"]:
        _bench_tracemalloc.start()
    _bench["t0"] = (_bench_time.monotonic(), _bench_time.process_time())

def _bench_post(result):
    t1, c1 = _bench_time.monotonic(), _bench_time.process_time()
    t0, c0 = _bench.pop("t0")
    record = {"wall": t1 - t0, "cpu": c1 - c0, "traced_peak": None, "answer_chars": None}
    if _bench.pop("traced", False):
        record["traced_peak"] = _bench_tracemalloc.get_traced_memory()[1]
        _bench_tracemalloc.stop()
    answer = get_ipython().user_ns.get("bench_answer")
    if answer is not None:
        record["answer_chars"] = len(answer)
    _bench["last"] = record

get_ipython().events.register("pre_run_cell", _bench_pre)
get_ipython().events.register("post_run_cell", _bench_post)
"""


@dataclass
class Message:
    """One IOPub message as the front end received it."""

    time: float
    msg_type: str
    nbytes: int
    raw_content: bytes | None = None

    def content(self) -> dict[str, Any]:
        assert self.raw_content is not None, "content is kept for stream and display messages"
        return json.loads(self.raw_content)

    def shown_text(self) -> str:
        """The answer text this message puts on screen ('' for a status line or nothing)."""
        if self.msg_type == "stream":
            return str(self.content()["text"])
        if self.msg_type in _DISPLAYS:
            markdown = self.content()["data"].get("text/markdown", "")
            return "" if markdown.startswith("<small>") else str(markdown)
        return ""

    def data_bytes(self) -> int:
        """Bytes of the output data alone (display messages; stream text), headers left out."""
        if self.msg_type == "stream":
            return len(json.dumps(self.content()["text"], ensure_ascii=False).encode())
        if self.msg_type in _DISPLAYS:
            return len(json.dumps(self.content()["data"], ensure_ascii=False).encode())
        return 0


_DISPLAYS = ("display_data", "update_display_data")


@dataclass
class Run:
    """Everything one execute request produced, up to the kernel going idle."""

    code: str
    sent_at: float
    messages: list[Message] = field(default_factory=list)
    idle_at: float = 0.0
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.reply.get("content", {}).get("status", "?"))

    @property
    def wall(self) -> float:
        """Execute request sent → idle status received, as the front end sees it."""
        return self.idle_at - self.sent_at

    def stream_text(self) -> str:
        """The answer as the front end ends up showing it: stream text, else the final output.

        A live view of display outputs ends with one output that holds the whole answer, the
        one whose metadata carries the provenance stamp.
        """
        streamed = "".join(m.content()["text"] for m in self.messages if m.msg_type == "stream")
        if streamed:
            return streamed
        for message in reversed(self.messages):
            if message.msg_type in _DISPLAYS and message.content().get("metadata"):
                return str(message.content()["data"].get("text/markdown", ""))
        return ""


class BenchKernel:
    """One kernel for a whole benchmark run. Use as a context manager."""

    def __init__(
        self, env: dict[str, str] | None = None, pythonpath: list[str] | None = None
    ) -> None:
        """``pythonpath`` comes first on the kernel's path: another ``ollama_magic`` to measure."""
        full_env = dict(os.environ)
        path = [*(pythonpath or []), REPO, full_env.get("PYTHONPATH", "")]
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        full_env.update(env or {})
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=full_env, extra_arguments=["--HistoryManager.enabled=False"])
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self._iopub = self.kc.iopub_channel.socket
        self.drain()
        setup = self.execute(HOOKS)
        if setup.status != "ok":
            raise RuntimeError(f"could not install the measuring hooks: {setup.reply}")
        self.pid = int(self.value("__import__('os').getpid()"))

    def __enter__(self) -> BenchKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    # -- IOPub --------------------------------------------------------------------------------

    def _recv(self, timeout: float) -> tuple[Message, str | None, str] | None:
        """One message with its parent msg_id and, for status messages, the state."""
        if not self._iopub.poll(max(0, int(timeout * 1000))):
            return None
        parts = self._iopub.recv_multipart(copy=True)
        now = time.monotonic()
        start = parts.index(_DELIM) + 2  # skip the delimiter and the signature
        header = json.loads(parts[start])
        parent = json.loads(parts[start + 1]).get("msg_id")
        msg_type = header["msg_type"]
        kept = ("stream", "status", *_DISPLAYS)
        raw = parts[start + 3] if msg_type in kept else None
        state = json.loads(raw)["execution_state"] if msg_type == "status" and raw else ""
        return Message(now, msg_type, sum(len(p) for p in parts), raw), parent, state

    def drain(self, quiet_for: float = 0.05) -> None:
        """Discard whatever is queued (messages of earlier, already finished requests)."""
        while self._recv(quiet_for) is not None:
            pass

    # -- requests -----------------------------------------------------------------------------

    def execute(
        self,
        code: str,
        *,
        timeout: float = 300.0,
        on_message: Callable[[Message, Run], None] | None = None,
        on_tick: Callable[[Run], None] | None = None,
        tick: float = 0.005,
    ) -> Run:
        """Run ``code`` and record every IOPub message it caused until the kernel is idle.

        ``on_message`` sees each message as it arrives; ``on_tick`` is called at least every
        ``tick`` seconds meanwhile (to interrupt, or open a server gate, at the right moment).
        """
        msg_id = self.kc.execute(code)
        run = Run(code, time.monotonic())
        deadline = run.sent_at + timeout
        wait = tick if on_tick is not None else 0.5
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"kernel not idle after {timeout} s running {code[:60]!r}")
            got = self._recv(wait)
            if on_tick is not None:
                on_tick(run)
            if got is None:
                continue
            message, parent, state = got
            if parent != msg_id:
                continue
            if message.msg_type == "status":
                if state == "idle":
                    run.idle_at = message.time
                    break
                continue
            run.messages.append(message)
            if on_message is not None:
                on_message(message, run)
        run.reply = self._shell_reply(msg_id, timeout)
        return run

    def _shell_reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def value(self, expression: str) -> Any:
        """Evaluate ``expression`` silently (no hooks run, no history) and return its value."""
        msg_id = self.kc.execute("", silent=True, user_expressions={"v": expression})
        reply = self._shell_reply(msg_id, 60.0)
        result = reply["content"]["user_expressions"]["v"]
        if result.get("status") != "ok":
            raise RuntimeError(f"{expression!r} failed in the kernel: {result}")
        return ast.literal_eval(result["data"]["text/plain"])

    def interrupt(self) -> None:
        """What the stop button does."""
        self.km.interrupt_kernel()

    # -- memory -------------------------------------------------------------------------------

    def reset_peak_rss(self) -> int | None:
        """Reset the kernel's peak-RSS mark (Linux ``clear_refs``); the current RSS in bytes."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            return None
        return self._status_kb("VmRSS")

    def peak_rss(self) -> int | None:
        """The kernel's peak RSS (bytes) since :meth:`reset_peak_rss`."""
        return self._status_kb("VmHWM")

    def _status_kb(self, key: str) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as handle:
                for line in handle:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None
