"""The fake Ollama in a process of its own, scripted by the harness over a pipe.

Why another process: at full speed the server spends as much CPU per token as the client does.
In the harness's process it would fight the IOPub reader for the GIL and distort both; here it
gets a core of its own, as a real Ollama would.

The child speaks one JSON object per line on stdin/stdout::

    {"op": "answer", "tokens": 1000, "delay": 0, "gate_after": null, "stamped": false}
    {"op": "open_gate", "gate": 1, "settle": 0.05}    -> {"opened_at": <monotonic>}
    {"op": "open_gates"}, {"op": "stats"}, {"op": "quit"}

Run it alone with ``python -m benchmarks.server`` to try the protocol by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import IO, Any

from ollama_magic.testing import FakeOllama, Gate, Reply, Step

from .workload import MODEL, STAMP_EVERY, answer_tokens, shaped_tokens, stamp_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Schedule:
    """Absolute send times for a paced answer: token ``i`` is due ``i * interval`` after the first.

    Pacing by sleeping a fixed gap after each write would add the server's own per-token cost to
    every gap (measured here: 100 tokens/s became about 85); keeping to a timetable does not.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._start: float | None = None
        self._sent = 0

    def wait_turn(self) -> float:
        """Sleep until the next token is due; the time it goes out (CLOCK_MONOTONIC)."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._sent * self.interval
        self._sent += 1
        if due > now:
            time.sleep(due - now)
            now = time.monotonic()
        return now


class StampedChunk(Mapping[str, Any]):
    """A streamed chat chunk whose text is the time it is written to the socket.

    FakeOllama turns a mapping step into a JSON line just before it writes it (``dict(step)``),
    so a value computed on access stamps each token with its real send time. That is also the
    moment to keep to the answer's :class:`Schedule`. With ``text``, the chunk is that text,
    followed by the stamp when ``stamped``: an ordinary answer with a stamp now and then.
    """

    _KEYS = ("model", "created_at", "message", "done")

    def __init__(self, schedule: Schedule, text: str = "", stamped: bool = True) -> None:
        self._schedule = schedule
        self._text = text
        self._stamped = stamped

    def __getitem__(self, key: str) -> Any:
        if key == "model":
            return MODEL
        if key == "created_at":
            return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        if key == "message":
            sent = self._schedule.wait_turn()
            stamp = stamp_text(sent) if self._stamped else ""
            return {"role": "assistant", "content": self._text + stamp}
        if key == "done":
            return False
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)


def build_reply(
    tokens: int,
    delay: float,
    gate: Gate | None,
    gate_after: int | None,
    stamped: bool,
    shape: str = "",
) -> Reply:
    """A streamed answer of ``tokens`` chunks, ``delay`` seconds apart, optionally gated.

    ``gate_after=0`` holds back even the response headers, as a loading model does.
    """
    if shape and stamped:
        # Every STAMP_EVERY-th token carries its send time: the lag of an ordinary answer.
        schedule = Schedule(delay)
        texts = shaped_tokens(shape, tokens)
        chunks = [
            StampedChunk(schedule, text, stamped=index % STAMP_EVERY == STAMP_EVERY - 1)
            for index, text in enumerate(texts)
        ]
        return Reply.stream(*chunks, Reply.done())
    if shape:
        return Reply.answer(shaped_tokens(shape, tokens), delay=delay)
    if not stamped:
        return Reply.answer(
            answer_tokens(tokens),
            delay=delay,
            gate=gate,
            gate_after=gate_after if gate is not None and gate_after is not None else 1,
        )
    schedule = Schedule(delay)
    steps: list[Step] = []
    for index in range(tokens):
        if gate is not None and index == gate_after and index:
            steps.append(gate)
        steps.append(StampedChunk(schedule))
    steps.append(Reply.done())
    before = gate if gate is not None and gate_after == 0 else None
    return Reply.stream(*steps, before=before)


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    """The child's loop: start a FakeOllama, announce its host, then obey commands."""
    gates: dict[int, Gate] = {}

    def answer(message: dict[str, Any]) -> None:
        stdout.write(json.dumps(message) + "\n")
        stdout.flush()

    with FakeOllama(models=(MODEL,), thinking_models=()) as fake:
        answer({"host": fake.host, "pid": os.getpid()})
        for line in stdin:
            command = json.loads(line)
            op = command.pop("op")
            if op == "answer":
                gate = None
                if command.get("gate_after") is not None:
                    gate = Gate()
                    gates[len(gates) + 1] = gate
                fake.enqueue(
                    build_reply(
                        command["tokens"],
                        command.get("delay", 0.0),
                        gate,
                        command.get("gate_after"),
                        command.get("stamped", False),
                        command.get("shape", ""),
                    )
                )
                answer({"gate": len(gates) if gate is not None else None})
            elif op == "open_gate":
                gate = gates[command["gate"]]
                reached = gate.wait_reached(command.get("timeout", 10.0))
                time.sleep(command.get("settle", 0.0))
                opened_at = time.monotonic()
                gate.open()
                answer({"opened_at": opened_at, "reached": reached})
            elif op == "open_gates":
                for gate in gates.values():
                    gate.open()
                answer({"opened": len(gates)})
            elif op == "stats":
                answer(
                    {
                        "requests": len(fake.requests),
                        "hangups": fake.hangups,
                        "pending": fake.pending,
                    }
                )
            elif op == "wait_hangups":
                ok = fake.wait_for_hangup(command.get("timeout", 2.0), command["count"])
                answer({"ok": ok, "hangups": fake.hangups})
            elif op == "quit":
                answer({"bye": True})
                break
            else:
                answer({"error": f"unknown op {op!r}"})


class ServerProcess:
    """The harness's handle on the server child. Use as a context manager."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        hello = self._read()
        self.host: str = hello["host"]
        self.pid: int = hello["pid"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark server process exited")
        return json.loads(line)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def answer(
        self,
        tokens: int,
        delay: float = 0.0,
        *,
        gate_after: int | None = None,
        stamped: bool = False,
        shape: str = "",
    ) -> int | None:
        """Queue one answer for the next chat request; returns its gate's id, if gated."""
        reply = self.call(
            "answer",
            tokens=tokens,
            delay=delay,
            gate_after=gate_after,
            stamped=stamped,
            shape=shape,
        )
        return reply["gate"]

    def open_gate(self, gate: int, settle: float = 0.05) -> float:
        """Once a request waits at ``gate``, wait ``settle`` s, open it; the opening time."""
        return float(self.call("open_gate", gate=gate, settle=settle)["opened_at"])

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self.call("open_gates")
                self.call("quit")
                self._proc.wait(timeout=10)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
