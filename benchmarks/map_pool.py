"""``python -m benchmarks.map_pool``: ``--map`` over several servers against a thread-pool floor.

What a user labelling a dataset over three machines would otherwise write is the floor: one
shared queue of items, a ``ThreadPoolExecutor`` with two workers per server, each worker posting
to its server with ``requests`` and joining the streamed text. The ``%%ollama --map`` cell asks
the same items of the same servers (``--host a,b,c --concurrency 2``), with its progress view
and the answer log on, as a user runs it. Cases alternate within one run and the ratio of
medians is reported, so a noisy machine moves both sides alike.

The servers are the package's fake Ollama, each in a process of its own (``python -m
ollama_magic.testing``), echoing every prompt as a short streamed answer with no delay: the
harshest case for per-item overhead. A third case kills one of three servers (in-process fakes
here, so the harness can stop one once a third of the items were asked) and checks that every
item is still answered.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from ollama_magic.testing import FakeOllama

from .kernel import REPO, BenchKernel, Run

MODEL = "llama3.2"
SERVERS = 3
CONCURRENCY = 2
PROMPT = "Label: {item}"


@contextmanager
def server_process() -> Iterator[str]:
    """A fake Ollama in its own process (no pacing); yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_magic.testing", "--port", "0", "--delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # "Fake Ollama at http://127.0.0.1:PORT serving ..."
        url = next(word for word in banner.split() if word.startswith("http://"))
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def floor_cell(hosts: Sequence[str], items: int) -> str:
    """A shared queue and a thread pool of ``requests`` workers: what one would write by hand."""
    return f"""
import json as _json, queue as _queue, requests as _requests
from concurrent.futures import ThreadPoolExecutor as _Pool
_todo = _queue.SimpleQueue()
for _i in range({items}):
    _todo.put(_i)
bench_answer = [None] * {items}
def _worker(host):
    session = _requests.Session()
    while True:
        try:
            index = _todo.get_nowait()
        except _queue.Empty:
            return
        body = {{"model": {MODEL!r}, "stream": True,
                 "messages": [{{"role": "user", "content": {PROMPT!r}.format(item=items[index])}}]}}
        with session.post(host + "/api/chat", json=body, stream=True) as response:
            lines = [line for line in response.iter_lines() if line]
        parts = [_json.loads(line)["message"]["content"] for line in lines]
        bench_answer[index] = "".join(parts)
with _Pool({len(hosts) * CONCURRENCY}) as _pool:
    list(_pool.map(_worker, {list(hosts)!r} * {CONCURRENCY}))
"""


def magic_cell(hosts: Sequence[str], extra: str = "") -> str:
    return (
        f"%%ollama {MODEL} --map items --host {','.join(hosts)} --concurrency {CONCURRENCY} "
        f"-o bench_answer{extra}\n{PROMPT}"
    )


def updates_per_second(run: Run) -> int:
    """The most output messages of the cell in any one-second window."""
    times = sorted(m.time for m in run.messages if m.msg_type not in ("execute_input",))
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] > 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def check_answers(kernel: BenchKernel, items: int) -> int:
    """How many answers are the echo of their own item (all of them, or the run is wrong)."""
    return int(
        kernel.value(
            "sum(1 for i, a in enumerate(bench_answer) "
            f"if str(a) == 'You said: ' + {PROMPT!r}.format(item=items[i]))"
        )
    )


def measure(
    kernel: BenchKernel, hosts: Sequence[str], items: int, repeat: int, extra: str = ""
) -> dict[str, Any]:
    kernel.execute(f"items = [f'review {{i}}' for i in range({items})]")
    walls: dict[str, list[float]] = {"floor": [], "map": []}
    cpus: dict[str, list[float]] = {"floor": [], "map": []}
    busiest, peak_rss = 0, 0
    for rep in range(repeat):
        order = ["floor", "map"] if rep % 2 == 0 else ["map", "floor"]
        for case in order:
            before = kernel.reset_peak_rss()
            code = floor_cell(hosts, items) if case == "floor" else magic_cell(hosts, extra)
            run = kernel.execute(code, timeout=1800)
            if run.status != "ok":
                raise RuntimeError(f"{case} failed: {run.reply['content']}")
            record = kernel.value("_bench['last']")
            walls[case].append(run.wall)
            cpus[case].append(record["cpu"])
            right = check_answers(kernel, items)
            if right != items:
                raise RuntimeError(f"{case}: only {right} of {items} answers are right")
            if case == "map":
                busiest = max(busiest, updates_per_second(run))
                peak = kernel.peak_rss()
                if before is not None and peak is not None:
                    peak_rss = max(peak_rss, peak - before)
    floor, mapped = statistics.median(walls["floor"]), statistics.median(walls["map"])
    return {
        "items": items,
        "floor_wall": floor,
        "map_wall": mapped,
        "ratio": mapped / floor,
        "overhead_us_per_item": (mapped - floor) / items * 1e6,
        "map_cpu_us_per_item": statistics.median(cpus["map"]) / items * 1e6,
        "floor_cpu_us_per_item": statistics.median(cpus["floor"]) / items * 1e6,
        "busiest_second_updates": busiest,
        "peak_rss_delta_bytes": peak_rss,
        "rss_bytes_per_item": peak_rss / items,
        "runs": {"floor": walls["floor"], "map": walls["map"]},
    }


def kill_case(kernel: BenchKernel, items: int) -> dict[str, Any]:
    """One of three servers stops a third of the way through; every item must be answered."""
    with ExitStack() as stack:
        fakes = [stack.enter_context(FakeOllama(models=(MODEL,))) for _ in range(SERVERS)]
        hosts = [fake.url for fake in fakes]
        kernel.execute(f"items = [f'review {{i}}' for i in range({items})]")
        killed: list[int] = []

        def chats() -> int:
            return sum(
                1 for fake in fakes for r in list(fake.requests) if r.path.endswith("/api/chat")
            )

        def on_tick(run: Run) -> None:
            if not killed and chats() >= items // 3:
                fakes[0].stop()
                killed.append(chats())

        run = kernel.execute(magic_cell(hosts), timeout=1800, on_tick=on_tick, tick=0.01)
        answered = check_answers(kernel, items)
        return {
            "items": items,
            "killed_after_requests": killed[0] if killed else None,
            "status": run.status,
            "answered_right": answered,
            "lost": items - answered,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.map_pool", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="item counts (1000,10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case and size (3)")
    parser.add_argument("--quiet", action="store_true", help="measure --map with --quiet")
    parser.add_argument("--no-log", action="store_true", help="with the answer log off")
    parser.add_argument("--kill-items", type=int, default=1000, help="items of the kill case")
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "map.json"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    home = tempfile.mkdtemp(prefix="ollama-magic-bench-")
    results: dict[str, Any] = {"sizes": [], "kill": None}
    with ExitStack() as stack:
        hosts = [stack.enter_context(server_process()) for _ in range(SERVERS)]
        kernel = stack.enter_context(
            BenchKernel(
                env={"OLLAMA_MAGIC_HOME": home, "OLLAMA_MAGIC_LOG": "off" if args.no_log else ""}
            )
        )
        kernel.execute("%load_ext ollama_magic")
        kernel.execute("warm = ['a', 'b', 'c', 'd', 'e', 'f']")
        kernel.execute(magic_cell(hosts).replace("--map items", "--map warm"))
        for size in sizes:
            print(f"map over {SERVERS} servers: {size} items …", file=sys.stderr, flush=True)
            extra = " --quiet" if args.quiet else ""
            results["sizes"].append(measure(kernel, hosts, size, args.repeat, extra))
        print(f"one server killed: {args.kill_items} items …", file=sys.stderr, flush=True)
        results["kill"] = kill_case(kernel, args.kill_items)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=2)
    print(render(results))
    return 0


def render(results: dict[str, Any]) -> str:
    lines = [
        f"| items ({SERVERS} servers × {CONCURRENCY}) | floor wall | --map wall | ÷ floor "
        "| overhead per item | kernel CPU per item (floor) | busiest second "
        "| peak RSS Δ (per item) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["sizes"]:
        lines.append(
            f"| {row['items']:,} | {row['floor_wall']:.2f} s | {row['map_wall']:.2f} s "
            f"| {row['ratio']:.2f}× | {row['overhead_us_per_item']:.0f} µs "
            f"| {row['map_cpu_us_per_item']:.0f} µs ({row['floor_cpu_us_per_item']:.0f} µs) "
            f"| {row['busiest_second_updates']} updates "
            f"| {row['peak_rss_delta_bytes'] / 1e6:.1f} MB ({row['rss_bytes_per_item']:.0f} B) |"
        )
    kill = results["kill"]
    if kill:
        lines.append("")
        lines.append(
            f"One of {SERVERS} servers stopped after {kill['killed_after_requests']} requests: "
            f"{kill['answered_right']} of {kill['items']} items answered, {kill['lost']} lost."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
