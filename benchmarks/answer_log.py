"""``python -m benchmarks.answer_log``: what writing every answer to the answer log costs.

The same ``%%ollama --quiet`` cell streams a long answer from the fake Ollama (in a process of
its own, as in the main benchmarks) with the log on and with it off
(``%config OllamaMagics.log``), alternating within one run; the ratio of medians is the cost.
The log's files are measured before and after each logged answer, so the growth per answer
byte is reported too. ``--quiet`` keeps the view's own cost out of the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .kernel import REPO, BenchKernel
from .server import ServerProcess
from .workload import MODEL, PROMPT


def log_bytes(home: Path) -> int:
    """The answer log's files (database, WAL and shared memory) on disk."""
    return sum(path.stat().st_size for path in home.rglob("*") if path.is_file())


def measure(tokens: int, repeat: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="ollama-magic-bench-log-"))
    walls: dict[str, list[float]] = {"on": [], "off": []}
    growth: list[float] = []
    cell = f"%%ollama {MODEL} --quiet -o bench_answer\n{PROMPT}"
    with (
        ServerProcess() as server,
        BenchKernel(env={"OLLAMA_HOST": server.host, "OLLAMA_MAGIC_HOME": str(home)}) as kernel,
    ):
        kernel.execute("%load_ext ollama_magic")
        server.answer(200)
        kernel.execute(cell)  # warm up: imports, connections, the log's schema
        for rep in range(repeat):
            for case in ("on", "off") if rep % 2 == 0 else ("off", "on"):
                kernel.execute(f"%config OllamaMagics.log = {case == 'on'}")
                before = log_bytes(home)
                server.answer(tokens)
                run = kernel.execute(cell, timeout=600)
                if run.status != "ok":
                    raise RuntimeError(f"log {case}: {run.reply['content']}")
                walls[case].append(run.wall)
                if case == "on":
                    size = int(kernel.value("len(bench_answer.encode())"))
                    growth.append((log_bytes(home) - before) / size)
    on, off = statistics.median(walls["on"]), statistics.median(walls["off"])
    return {
        "tokens": tokens,
        "wall_log_off": off,
        "wall_log_on": on,
        "ratio": on / off,
        "log_growth_per_answer_byte": statistics.median(growth),
        "runs": walls,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.answer_log", description=__doc__)
    parser.add_argument("--tokens", type=int, default=20_000, help="answer size (20000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (5)")
    parser.add_argument(
        "--output", default=os.path.join(REPO, "benchmarks", "results", "answer_log.json")
    )
    args = parser.parse_args(argv)
    result = measure(args.tokens, args.repeat)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=2)
    print(
        f"{result['tokens']:,}-token answer, --quiet: log off {result['wall_log_off']:.3f} s, "
        f"log on {result['wall_log_on']:.3f} s ({result['ratio']:.3f}×); the log grew "
        f"{result['log_growth_per_answer_byte']:.2f} bytes per answer byte"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
