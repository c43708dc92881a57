"""``python -m benchmarks``: run the benchmarks, print the tables, write the JSON results."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .cases import ALL_CASES
from .report import render
from .runner import Config, run_all

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def _ints(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 1000,10000, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive token counts")
    return values


def _cases(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = {c.name for c in ALL_CASES}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown case(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Measure %%ollama against plain requests, a print loop and the official client, in "
            "a real kernel against the package's fake Ollama server."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small, fast run (under a minute): sizes 200,1000, 3 runs",
    )
    parser.add_argument("--sizes", type=_ints, help="answer sizes in tokens (1000,10000,100000)")
    parser.add_argument("--rate", type=float, help="tokens per second of the paced answers (100)")
    parser.add_argument("--repeat", type=int, help="runs per case and size (5; 3 with --quick)")
    parser.add_argument(
        "--repeat-large", type=int, help="runs per case at sizes >= 50,000 tokens (3)"
    )
    parser.add_argument(
        "--paced-tokens", type=int, help="tokens of each paced answer (300; 100 with --quick)"
    )
    parser.add_argument("--cases", type=_cases, help="subset of: floor,seed,official,live,quiet")
    parser.add_argument(
        "--shapes-only",
        action="store_true",
        help="only the Markdown-heavy and 300-line code answers at --rate (about a minute)",
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the traced-memory runs")
    parser.add_argument(
        "--pythonpath",
        action="append",
        default=[],
        metavar="DIR",
        help="put DIR first on the kernel's path, to measure another copy of ollama_magic",
    )
    parser.add_argument(
        "--live-budget",
        type=float,
        metavar="BYTES",
        help="run the live view with this byte budget per character received instead of its "
        "own (1.4); 'inf' for none: what a smaller display lag costs in bytes",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"JSON results ({DEFAULT_OUTPUT})"
    )
    parser.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="print the tables of an earlier results file; run nothing",
    )
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    config = Config()
    if args.quick:
        config.sizes = [200, 1_000]
        config.repeat = 3
        config.paced_tokens = 100
        config.interrupt_after = 0.3
    for name in ("sizes", "rate", "repeat", "repeat_large", "paced_tokens", "cases"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    if config.repeat < 1 or config.repeat_large < 1 or config.paced_tokens < 2:
        raise SystemExit("--repeat and --repeat-large must be >= 1, --paced-tokens >= 2")
    if config.rate <= 0:
        raise SystemExit("--rate must be positive")
    config.tracemalloc = not args.no_tracemalloc
    config.shapes_only = args.shapes_only
    config.pythonpath = [os.path.abspath(p) for p in args.pythonpath]
    if args.live_budget is not None and not args.live_budget > 0:
        raise SystemExit("--live-budget must be positive ('inf' for no budget)")
    config.live_budget = args.live_budget
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        print(render(json.loads(args.render.read_text())))
        return 0
    config = make_config(args)
    started = time.monotonic()

    def progress(text: str) -> None:
        if not args.silent:
            print(f"[{time.monotonic() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    results = run_all(config, progress)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    print(f"\nResults: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
