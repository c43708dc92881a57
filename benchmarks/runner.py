"""The benchmark phases: what is run, in which order, and what is measured in each run.

Phases, each alternating between the cases (the order rotates every repetition, so slow drifts
of a noisy machine spread over all cases alike):

* ``fast``: answers of each size sent as fast as the server can; wall and CPU time, messages
  and bytes to the front end, update rates, peak memory.
* ``memory``: one more run per case and size with tracemalloc on (untimed, since tracing slows
  Python down): the peak of Python allocations during the cell.
* ``paced``: an answer at ``rate`` tokens/s whose tokens carry their send time; kernel CPU
  share, update rates and the lag from a token's send to the message that shows it.
* ``interrupt``: the stop button mid-stream; time until the kernel reports idle.
* ``first_token``: the server holds back the headers (a loading model), then opens; time until
  the first text reaches the front end.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .cases import ALL_CASES, SETUP, Case
from .kernel import BenchKernel, Message, Run
from .server import ServerProcess
from .stats import max_in_window, median_of, percentile, spread
from .targets import evaluate_targets
from .workload import STAMP, answer_tokens, shaped_tokens

SCHEMA = 1

#: Messages every cell causes, whatever it shows; they are not counted as output.
_NOT_OUTPUT = frozenset({"status", "execute_input"})
#: Output messages that create or tear down widget models without changing what is shown.
_NOT_UPDATES = frozenset({"comm_open", "comm_close"})


@dataclass
class Config:
    """What to run; the command line fills it in."""

    sizes: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    repeat: int = 5
    #: Repetitions for sizes of at least ``large`` tokens (their runs take seconds each).
    repeat_large: int = 3
    large: int = 50_000
    #: Runs of the print-per-token cases at those sizes (about 100 s each at 100,000 tokens).
    repeat_slow_large: int = 1
    rate: float = 100.0
    paced_tokens: int = 300
    interrupt_after: float = 0.6
    tracemalloc: bool = True
    warmup_tokens: int = 200
    cases: list[str] = field(default_factory=lambda: [c.name for c in ALL_CASES])
    #: Answers of these shapes are streamed at ``rate`` (see ``workload.shaped_tokens``).
    shapes: list[str] = field(default_factory=lambda: ["markdown", "code"])
    shape_tokens: int = 1200
    shapes_only: bool = False
    #: Directories put first on the kernel's path (to measure another ``ollama_magic``).
    pythonpath: list[str] = field(default_factory=list)
    #: The live view's byte budget (output bytes per character received) for this run, instead
    #: of its own: to measure what a smaller display lag would cost in bytes.
    live_budget: float | None = None

    def repeats_for(self, size: int, case: Case | None = None) -> int:
        if size < self.large:
            return self.repeat
        if case is not None and case.slow:
            return min(self.repeat_slow_large, self.repeat_large)
        return self.repeat_large

    def notes(self) -> list[str]:
        """How this configuration departs from "every case, every size, ``repeat`` runs"."""
        notes = []
        if self.live_budget is not None:
            notes.append(
                f"the live view ran with a byte budget of {self.live_budget:g} bytes per "
                "character received instead of its own"
            )
        large = [s for s in self.sizes if s >= self.large]
        if large and self.repeat_large != self.repeat:
            notes.append(
                f"{', '.join(f'{s:,}' for s in large)} tokens: {self.repeat_large} runs per case "
                f"instead of {self.repeat}, to keep the run short"
            )
        slow = [c.label for c in ALL_CASES if c.slow and c.name in self.cases]
        if large and slow and self.repeat_slow_large < self.repeat_large:
            notes.append(
                f"{', '.join(f'{s:,}' for s in large)} tokens: {' and '.join(slow)} ran "
                f"{self.repeat_slow_large} time(s) and were not traced with tracemalloc "
                "(a message per token, about a millisecond each)"
            )
        return notes


Progress = Callable[[str], None]


def _rotations(
    cases: Sequence[Case], repeats: int, limit: Callable[[Case], int] | None = None
) -> Iterable[tuple[int, Case]]:
    """Every case once per repetition, the starting case moving along each time.

    ``limit`` caps the repetitions of some cases; they drop out of the later rounds.
    """
    for rep in range(repeats):
        for offset in range(len(cases)):
            case = cases[(rep + offset) % len(cases)]
            if limit is None or rep < limit(case):
                yield rep, case


class Bench:
    """One benchmark session: a server process, a kernel, and the measurements."""

    def __init__(self, config: Config, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress or (lambda text: None)
        self.server: ServerProcess | None = None
        self.kernel: BenchKernel | None = None
        self.cases: list[Case] = []
        self.skipped: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Bench:
        self.server = ServerProcess()
        self.kernel = BenchKernel(
            env={"OLLAMA_HOST": self.server.host}, pythonpath=self.config.pythonpath
        )
        setup = self.kernel.execute(SETUP + _budget_setup(self.config.live_budget))
        if setup.status != "ok":
            raise RuntimeError(f"kernel set-up failed: {setup.reply['content']}")
        wanted = [c for c in ALL_CASES if c.name in self.config.cases]
        for case in wanted:
            if case.needs and not self.kernel.value(f"{case.needs} is not None"):
                self.skipped[case.name] = (
                    f"`{case.needs}` is not installed in the kernel's environment "
                    f"(pip install {case.needs}); case skipped"
                )
            else:
                self.cases.append(case)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kernel is not None:
            self.kernel.close()
        if self.server is not None:
            self.server.close()

    def kernel_value(self, expression: str) -> Any:
        return self._k.value(expression)

    @property
    def _k(self) -> BenchKernel:
        assert self.kernel is not None
        return self.kernel

    @property
    def _s(self) -> ServerProcess:
        assert self.server is not None
        return self.server

    # -- one run ------------------------------------------------------------------------------

    def _run(
        self,
        case: Case,
        tokens: int,
        *,
        delay: float = 0.0,
        stamped: bool = False,
        gate_after: int | None = None,
        on_message: Callable[[Message, Run], None] | None = None,
        on_tick: Callable[[Run], None] | None = None,
        shape: str = "",
    ) -> tuple[Run, dict[str, Any]]:
        """Queue an answer, run the case's cell, and measure it."""
        self._s.answer(tokens, delay, stamped=stamped, gate_after=gate_after, shape=shape)
        kernel = self._k
        rss_before = kernel.reset_peak_rss()
        run = kernel.execute(case.code, on_message=on_message, on_tick=on_tick)
        rss_peak = kernel.peak_rss()
        inside = kernel.value("_bench['last']")
        output = [m for m in run.messages if m.msg_type not in _NOT_OUTPUT]
        updates = [m.time for m in output if m.msg_type not in _NOT_UPDATES]
        by_type: dict[str, list[int]] = {}
        for m in output:
            count_bytes = by_type.setdefault(m.msg_type, [0, 0])
            count_bytes[0] += 1
            count_bytes[1] += m.nbytes
        record: dict[str, Any] = {
            "status": run.status,
            "wall_s": run.wall,
            "kernel_wall_s": inside["wall"],
            "cpu_s": inside["cpu"],
            "messages": len(output),
            "bytes": sum(m.nbytes for m in output),
            "data_bytes": sum(m.data_bytes() for m in output),
            "stream_messages": sum(1 for m in output if m.msg_type == "stream"),
            # Messages that show answer text: stream output, or a display output of the view.
            "text_messages": sum(1 for m in output if m.shown_text()),
            "updates": len(updates),
            "updates_max_1s": max_in_window(updates),
            "updates_mean_per_s": len(updates) / run.wall if run.wall > 0 else None,
            "rss_peak_growth": (
                rss_peak - rss_before if rss_peak is not None and rss_before is not None else None
            ),
            "traced_peak": inside["traced_peak"],
            "complete": None if shape else self._complete(case, run, inside, tokens, stamped),
            "by_type": {kind: {"messages": c, "bytes": b} for kind, (c, b) in by_type.items()},
        }
        return run, record

    @staticmethod
    def _complete(
        case: Case, run: Run, inside: dict[str, Any], tokens: int, stamped: bool
    ) -> bool | None:
        """Did every character reach the front end (and the variable)? None: nothing to check."""
        if run.status != "ok":
            return False
        checks: list[bool] = []
        if case.displays:
            text = run.stream_text()
            if stamped:
                checks.append(len(STAMP.findall(text)) == tokens)
            else:
                checks.append(text == "".join(answer_tokens(tokens)))
        if case.stores:
            chars = inside["answer_chars"]
            if stamped:
                checks.append(bool(chars))
            else:
                checks.append(chars == len("".join(answer_tokens(tokens))))
        return all(checks) if checks else None

    # -- phases -------------------------------------------------------------------------------

    def warm_up(self) -> None:
        for case in self.cases:
            self._run(case, self.config.warmup_tokens)

    def fast(self) -> list[dict[str, Any]]:
        """Every size, answers sent as fast as possible."""
        rows: list[dict[str, Any]] = []
        config = self.config
        for size in config.sizes:
            repeats = config.repeats_for(size)
            runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in self.cases}

            def limit(c: Case, size: int = size) -> int:
                return config.repeats_for(size, c)

            for rep, case in _rotations(self.cases, repeats, limit):
                total = config.repeats_for(size, case)
                self.progress(f"fast {size:>7,} tokens  run {rep + 1}/{total}  {case.label}")
                runs[case.name].append(self._run(case, size)[1])
            answer_bytes = len("".join(answer_tokens(size)).encode())
            floor_runs = runs.get("floor", [])
            for case in self.cases:
                summary = _summary(runs[case.name], answer_bytes, floor_runs)
                rows.append(
                    {
                        "size": size,
                        "case": case.name,
                        "answer_bytes": answer_bytes,
                        "summary": summary,
                        "runs": runs[case.name],
                    }
                )
        return rows

    def memory(self, rows: list[dict[str, Any]]) -> None:
        """One traced run per case and size; adds ``traced_peak`` to the fast rows."""
        kernel = self._k
        kernel.value("_bench.__setitem__('trace', True)")
        try:
            for size in self.config.sizes:
                for case in self.cases:
                    if case.slow and size >= self.config.large:
                        continue
                    self.progress(f"memory {size:>7,} tokens  {case.label} (tracemalloc)")
                    _, record = self._run(case, size)
                    for row in rows:
                        if row["size"] == size and row["case"] == case.name:
                            row["summary"]["traced_peak"] = record["traced_peak"]
                            row["summary"]["traced_peak_per_answer_byte"] = (
                                record["traced_peak"] / row["answer_bytes"]
                                if record["traced_peak"] is not None
                                else None
                            )
        finally:
            kernel.value("_bench.__setitem__('trace', False)")

    def paced(self) -> list[dict[str, Any]]:
        """Answers at ``rate`` tokens/s; each token carries its send time."""
        config = self.config
        delay = 1.0 / config.rate
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in self.cases}
        lags: dict[str, list[float]] = {c.name: [] for c in self.cases}
        for rep, case in _rotations(self.cases, config.repeat):
            self.progress(
                f"paced {config.rate:g} tokens/s x {config.paced_tokens}  "
                f"run {rep + 1}/{config.repeat}  {case.label}"
            )
            run, record = self._run(case, config.paced_tokens, delay=delay, stamped=True)
            run_lags = _display_lags(run)
            stamps = _stamp_times(run)
            record["cpu_share"] = record["cpu_s"] / record["kernel_wall_s"]
            record["rate_sent"] = (
                (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else None
            )
            record["lag_p50_s"] = percentile(run_lags, 50)
            record["lag_p99_s"] = percentile(run_lags, 99)
            lags[case.name].extend(run_lags)
            runs[case.name].append(record)
        rows = []
        for case in self.cases:
            summary = _summary(runs[case.name], None, [])
            summary["cpu_share"] = spread([r["cpu_share"] for r in runs[case.name]])
            summary["rate_sent"] = spread([r["rate_sent"] for r in runs[case.name]])
            pooled = lags[case.name]
            summary["lag_samples"] = len(pooled)
            summary["lag_p50_s"] = percentile(pooled, 50)
            summary["lag_p99_s"] = percentile(pooled, 99)
            summary["lag_max_s"] = max(pooled) if pooled else None
            summary["lag_p99_per_run_s"] = spread([r["lag_p99_s"] for r in runs[case.name]])
            rows.append(
                {
                    "case": case.name,
                    "rate": config.rate,
                    "tokens": config.paced_tokens,
                    "summary": summary,
                    "runs": runs[case.name],
                }
            )
        return rows

    def shapes(self) -> list[dict[str, Any]]:
        """Markdown-heavy and long-code answers at ``rate`` tokens/s through the live view: the
        bytes of output data (headers left out) per byte of answer, and the busiest second."""
        config = self.config
        live = next((c for c in self.cases if c.name == "live"), None)
        rows: list[dict[str, Any]] = []
        if live is None:
            return rows
        for shape in config.shapes:
            tokens = shaped_tokens(shape, config.shape_tokens)
            answer_bytes = len("".join(tokens).encode())
            self.progress(f"{shape} answer at {config.rate:g} tokens/s  {live.label}")
            run, record = self._run(live, len(tokens), delay=1.0 / config.rate, shape=shape)
            output = [m for m in run.messages if m.msg_type not in _NOT_OUTPUT]
            rows.append(
                {
                    "case": live.name,
                    "shape": shape,
                    "tokens": len(tokens),
                    "answer_bytes": answer_bytes,
                    "data_bytes": record["data_bytes"],
                    "data_vs_answer": record["data_bytes"] / answer_bytes,
                    "bytes": record["bytes"],
                    "messages": len(output),
                    "updates_max_1s": record["updates_max_1s"],
                    "status": record["status"],
                }
            )
            if shape == "markdown":
                # Again with a send time in every few tokens: the lag of an ordinary answer.
                self.progress(f"{shape} answer, stamped, at {config.rate:g} tokens/s")
                run, _ = self._run(
                    live, len(tokens), delay=1.0 / config.rate, shape=shape, stamped=True
                )
                lags = _display_lags(run)
                rows[-1]["lag_p50_s"] = percentile(lags, 50)
                rows[-1]["lag_p99_s"] = percentile(lags, 99)
        return rows

    def interrupt(self) -> list[dict[str, Any]]:
        """The stop button ``interrupt_after`` s into a paced answer: time until idle."""
        config = self.config
        delay = 1.0 / config.rate
        tokens = max(int(config.rate * (config.interrupt_after + 2.5)), 10)
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in self.cases}
        for rep, case in _rotations(self.cases, config.repeat):
            self.progress(f"interrupt  run {rep + 1}/{config.repeat}  {case.label}")
            hangups = self._s.call("stats")["hangups"]
            pressed: list[float] = []

            def press(run: Run, pressed: list[float] = pressed) -> None:
                if not pressed and time.monotonic() - run.sent_at >= config.interrupt_after:
                    pressed.append(time.monotonic())
                    self._k.interrupt()

            run, record = self._run(case, tokens, delay=delay, on_tick=press)
            hung_up = self._s.call("wait_hangups", count=hangups + 1, timeout=2.0)["ok"]
            runs[case.name].append(
                {
                    "status": record["status"],
                    "interrupted": bool(pressed) and record["status"] == "error",
                    "interrupt_to_idle_s": run.idle_at - pressed[0] if pressed else None,
                    "closed_connection": hung_up,
                }
            )
        return [
            {
                "case": case.name,
                "summary": {
                    "interrupt_to_idle_s": spread(
                        [r["interrupt_to_idle_s"] for r in runs[case.name] if r["interrupted"]]
                    ),
                    "all_interrupted": all(r["interrupted"] for r in runs[case.name]),
                    "closed_connection": sum(r["closed_connection"] for r in runs[case.name]),
                    "runs": len(runs[case.name]),
                },
                "runs": runs[case.name],
            }
            for case in self.cases
        ]

    def first_token(self) -> list[dict[str, Any]]:
        """Headers held back until a gate opens; time from opening to the first shown text."""
        shown = [c for c in self.cases if c.displays]
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in shown}
        for rep, case in _rotations(shown, self.config.repeat):
            self.progress(f"first token  run {rep + 1}/{self.config.repeat}  {case.label}")
            gate = self._s.answer(20, gate_after=0)
            assert gate is not None
            opened: list[float] = []
            first: list[float] = []

            def open_gate(run: Run, gate: int = gate, opened: list[float] = opened) -> None:
                if not opened:
                    opened.append(self._s.open_gate(gate))

            def on_message(message: Message, run: Run, first: list[float] = first) -> None:
                if not first and message.shown_text():
                    first.append(message.time)

            run = self._k.execute(case.code, on_message=on_message, on_tick=open_gate)
            runs[case.name].append(
                {
                    "status": run.status,
                    "first_token_s": first[0] - opened[0] if first and opened else None,
                }
            )
        rows: list[dict[str, Any]] = [
            {
                "case": case.name,
                "summary": {"first_token_s": spread([r["first_token_s"] for r in runs[case.name]])},
                "runs": runs[case.name],
            }
            for case in shown
        ]
        rows += [
            {"case": c.name, "summary": None, "note": "shows no text", "runs": []}
            for c in self.cases
            if not c.displays
        ]
        return rows


def _summary(
    runs: list[dict[str, Any]], answer_bytes: int | None, floor_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Medians and spreads of a case's runs, and ratios to the floor's runs of the same size.

    ``wall_vs_floor`` divides the medians; ``wall_vs_floor_paired`` is the median of the ratios
    within each repetition (the two ran seconds apart, so slow drifts of the machine cancel).
    """
    keys = (
        "wall_s",
        "kernel_wall_s",
        "cpu_s",
        "messages",
        "bytes",
        "stream_messages",
        "text_messages",
        "updates",
        "updates_max_1s",
        "updates_mean_per_s",
        "rss_peak_growth",
    )
    summary: dict[str, Any] = {key: spread([r[key] for r in runs]) for key in keys}
    summary["all_ok"] = all(r["status"] == "ok" for r in runs)
    checked = [r["complete"] for r in runs if r["complete"] is not None]
    summary["complete"] = all(checked) if checked else None
    for key in ("wall_s", "cpu_s"):
        mine = median_of(summary[key])
        floor = median_of(spread([r[key] for r in floor_runs]))
        name = key[:-2] + "_vs_floor"
        summary[name] = mine / floor if mine is not None and floor else None
    paired = [
        r["wall_s"] / f["wall_s"] for r, f in zip(runs, floor_runs, strict=False) if f["wall_s"]
    ]
    summary["wall_vs_floor_paired"] = spread(paired)
    if answer_bytes:
        sent = median_of(summary["bytes"])
        summary["bytes_per_answer_byte"] = sent / answer_bytes if sent is not None else None
        growth = median_of(summary["rss_peak_growth"])
        summary["rss_growth_per_answer_byte"] = (
            growth / answer_bytes if growth is not None else None
        )
    summary["traced_peak"] = None
    return summary


def _budget_setup(budget: float | None) -> str:
    """Kernel code that gives the live view another byte budget ('' to keep its own).

    No budget is a very large one (infinity times zero characters would be NaN).

    >>> _budget_setup(float("inf")).splitlines()[-1]
    '_bench_live.BUDGET = 1000000000000.0'
    """
    if budget is None:
        return ""
    budget = min(budget, 1e12)
    return f"\nimport ollama_magic.view.live as _bench_live\n_bench_live.BUDGET = {budget!r}\n"


def _first_arrivals(run: Run) -> dict[str, float]:
    """Each stamp with the time of the first message that showed it (a live piece re-sends
    stamps already shown; only their first appearance counts)."""
    first: dict[str, float] = {}
    for message in run.messages:
        for stamp in STAMP.findall(message.shown_text()):
            first.setdefault(stamp, message.time)
    return first


def _stamp_times(run: Run) -> list[float]:
    return [float(stamp) for stamp in _first_arrivals(run)]


def _display_lags(run: Run) -> list[float]:
    """For each stamped token: its arrival at the front end minus its send time."""
    return [at - float(stamp) for stamp, at in _first_arrivals(run).items()]


def machine() -> dict[str, Any]:
    """Where the numbers come from."""
    versions: dict[str, str | None] = {}
    for name in ("ipykernel", "jupyter_client", "ipywidgets", "zmq", "requests", "ollama"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", None)
        except ImportError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def _load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: how busy the machine was besides this run."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def source_state(package_file: str) -> dict[str, Any]:
    """Which ``ollama_magic`` was measured: its path, and the repository's commit and state."""
    package = os.path.dirname(package_file)
    state: dict[str, Any] = {"path": package, "commit": None, "modified": None}
    try:
        commit = subprocess.run(
            ["git", "-C", package, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", package, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return state
    state["commit"] = commit
    state["modified"] = bool(changes.strip())
    return state


def run_all(config: Config, progress: Progress | None = None) -> dict[str, Any]:
    """Run every phase and return the results document (described in ``benchmarks/README.md``)."""
    started = time.time()
    clock = time.monotonic()
    load_before = _load()
    with Bench(config, progress) as bench:
        package = bench.kernel_value("__import__('ollama_magic').__file__")
        bench.warm_up()
        fast, paced, interrupt, first = [], [], [], []
        if not config.shapes_only:
            fast = bench.fast()
            if config.tracemalloc:
                bench.memory(fast)
            paced = bench.paced()
            interrupt = bench.interrupt()
            first = bench.first_token()
        shapes = bench.shapes()
        cases = {
            c.name: {
                "label": c.label,
                "description": c.description,
                "available": c.name not in bench.skipped,
                "note": bench.skipped.get(c.name),
            }
            for c in ALL_CASES
            if c.name in config.cases
        }
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": time.monotonic() - clock,
        "config": asdict(config),
        "notes": config.notes(),
        "machine": {**machine(), "load_average_before": load_before, "load_average_after": _load()},
        "ollama_magic": source_state(package),
        "cases": cases,
        "fast": fast,
        "paced": paced,
        "interrupt": interrupt,
        "first_token": first,
        "shapes": shapes,
    }
    results["targets"] = evaluate_targets(results)
    return results
