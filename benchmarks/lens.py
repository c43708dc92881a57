"""The teaching lens (``--logprobs 5``) on a long answer, against its floor, in a real kernel.

``python -m benchmarks.lens`` (``--tokens 20000 --repeat 5`` by default) alternates two cells
on the same answer, served with five alternatives per token by the benchmark server process:

- **floor**: ``requests`` streams the answer, logprobs included, and ``json.loads`` each line
  (it also counts the bytes the server sent);
- **lens**: ``%%ollama llama3.2 --logprobs 5`` with its live lens and final output.

Checked, as ratios or bounds within the run: everything sent to the front end (IOPub frames,
live and final) is at most what the server streamed; the busiest second holds at most 30
updates; the lens's wall time is at most 1.5 x the floor's. Also reported: the memory per token
of ``.logprobs`` (its arrays and buffers, as allocated). Results go to stdout (Markdown) and
``benchmarks/results/lens.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cases import SETUP
from .kernel import BenchKernel
from .server import ServerProcess
from .stats import max_in_window
from .workload import MODEL, PROMPT

_NOT_OUTPUT = frozenset({"status", "execute_input"})
_NOT_UPDATES = frozenset({"comm_open", "comm_close"})

LENS_SETUP = """
_LENS_BODY = {**_BENCH_BODY, "logprobs": True, "top_logprobs": 5}
"""
FLOOR = """_bench_wire = 0
with requests.post(_BENCH_URL, json=_LENS_BODY, stream=True) as r:
    for line in r.iter_lines():
        json.loads(line)
        _bench_wire += len(line) + 1
"""
LENS = f"%%ollama {MODEL} --logprobs 5 -o bench_answer\n{PROMPT}\n"
MEMORY = (
    "(sum(__import__('sys').getsizeof(v) for v in vars(bench_answer.logprobs).values())"
    " / len(bench_answer.logprobs), len(bench_answer.logprobs),"
    " ''.join(t.token for t in bench_answer.logprobs) == bench_answer)"
)


def measure(kernel: BenchKernel, server: ServerProcess, code: str, tokens: int) -> dict[str, Any]:
    server.answer(tokens)
    run = kernel.execute(code)
    if run.status != "ok":
        raise RuntimeError(f"the cell failed: {run.reply}")
    output = [m for m in run.messages if m.msg_type not in _NOT_OUTPUT]
    updates = [m.time for m in output if m.msg_type not in _NOT_UPDATES]
    return {
        "wall_s": run.wall,
        "bytes": sum(m.nbytes for m in output),
        "messages": len(output),
        "updates_max_1s": max_in_window(updates),
    }


def run_bench(tokens: int, repeat: int) -> dict[str, Any]:
    with ServerProcess() as server, BenchKernel({"OLLAMA_HOST": server.host}) as kernel:
        for code in (SETUP, LENS_SETUP):
            if kernel.execute(code).status != "ok":
                raise RuntimeError("the benchmark setup failed")
        measure(kernel, server, FLOOR, 200)  # warm up both paths
        measure(kernel, server, LENS, 200)
        floors, lenses, wires = [], [], []
        for index in range(repeat):
            order = [(FLOOR, floors), (LENS, lenses)]
            for code, rows in order if index % 2 == 0 else order[::-1]:
                rows.append(measure(kernel, server, code, tokens))
                if code is FLOOR:
                    wires.append(int(kernel.value("_bench_wire")))
        per_token, count, joined = kernel.value(MEMORY)
    wire = statistics.median(wires)
    floor_wall = statistics.median(r["wall_s"] for r in floors)
    lens_wall = statistics.median(r["wall_s"] for r in lenses)
    sent = statistics.median(r["bytes"] for r in lenses)
    busiest = max(r["updates_max_1s"] for r in lenses)
    return {
        "tokens": tokens,
        "repeat": repeat,
        "server_bytes": wire,
        "floor": floors,
        "lens": lenses,
        "checks": [
            {"what": "bytes to front end / server bytes", "value": sent / wire, "limit": 1.0},
            {"what": "busiest second (updates)", "value": busiest, "limit": 30},
            {"what": "wall time / floor", "value": lens_wall / floor_wall, "limit": 1.5},
        ],
        "memory_bytes_per_token": per_token,
        "logprobs_tokens": count,
        "tokens_join_to_text": joined,
        "floor_wall_s": floor_wall,
        "lens_wall_s": lens_wall,
    }


def render(results: dict[str, Any]) -> str:
    lines = [
        f"## `--logprobs 5`, {results['tokens']:,} tokens ({results['repeat']} runs, medians)",
        "",
        f"Server streamed {results['server_bytes']:,.0f} bytes; "
        f"floor {results['floor_wall_s']:.2f} s, lens {results['lens_wall_s']:.2f} s.",
        "",
        "| check | measured | limit | verdict |",
        "|---|---|---|---|",
    ]
    for check in results["checks"]:
        verdict = "PASS" if check["value"] <= check["limit"] else "FAIL"
        lines.append(f"| {check['what']} | {check['value']:.3g} | {check['limit']} | {verdict} |")
    lines += [
        "",
        f"Memory of `.logprobs`: {results['memory_bytes_per_token']:.1f} bytes per token "
        f"({results['logprobs_tokens']:,} tokens; tokens join to the text: "
        f"{results['tokens_join_to_text']}).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lens", description=__doc__)
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/lens.json"))
    args = parser.parse_args(argv)
    results = run_bench(args.tokens, args.repeat)
    print(render(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    failed = [c for c in results["checks"] if c["value"] > c["limit"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
