"""The performance targets of ``%%ollama``, checked against one run's results.

Every target is a ratio or a bound measured in the same run, so a slow machine does not fail it
by itself being slow. Verdicts are reported, never asserted: the machine is shared and noisy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .stats import median_of

#: "Memory a few times the answer size": the bound used for "a few".
MEMORY_FACTOR = 4.0
_MAGIC = ("live", "quiet")


def _row(section: list[dict[str, Any]], case: str, size: int | None = None) -> dict | None:
    for row in section:
        if row["case"] == case and (size is None or row.get("size") == size):
            return row
    return None


def _nearest(sizes: list[int], wanted: int) -> int | None:
    return min(sizes, key=lambda s: abs(s - wanted)) if sizes else None


def _verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "PASS" if value <= limit else "FAIL"


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (target, case, size) with the measured value, the limit and a verdict."""
    fast, paced = results["fast"], results["paced"]
    sizes = sorted({row["size"] for row in fast})
    rate = results["config"]["rate"]
    out: list[dict[str, Any]] = []

    def add(
        target: str, case: str, size: int | None, value: float | None, limit: float, unit: str
    ) -> None:
        out.append(
            {
                "target": target,
                "case": case,
                "size": size,
                "measured": value,
                "limit": limit,
                "unit": unit,
                "verdict": _verdict(value, limit),
            }
        )

    def fast_value(case: str, size: int, pick: Callable[[dict], float | None]) -> float | None:
        row = _row(fast, case, size)
        return pick(row["summary"]) if row is not None else None

    mid = _nearest(sizes, 10_000)
    if mid is not None:
        for case, limit in (("live", 1.15), ("quiet", 1.05)):
            add(
                "wall time vs floor",
                case,
                mid,
                fast_value(case, mid, lambda s: s["wall_vs_floor"]),
                limit,
                "x floor",
            )
    for size in sizes:
        row = _row(fast, "live", size)
        if row is None:
            continue
        summary = row["summary"]
        sent = median_of(summary["bytes"])
        allowed = 3 * row["answer_bytes"] + 30_000  # live and final together
        add(
            "all bytes to front end / (3 x answer + 30 KB)",
            "live",
            size,
            sent / allowed if sent is not None else None,
            1.0,
            "x allowance",
        )
    for size in sizes:
        add(
            "updates per second (max over 1 s windows)",
            "live",
            size,
            fast_value("live", size, lambda s: median_of(s["updates_max_1s"])),
            30,
            "/s",
        )
    live_paced = _row(paced, "live")
    if live_paced is not None:
        summary = live_paced["summary"]
        add(
            f"updates per second at {rate:g} tokens/s (max over 1 s windows)",
            "live",
            None,
            median_of(summary["updates_max_1s"]),
            30,
            "/s",
        )
        p99 = median_of(summary["lag_p99_per_run_s"])
        add(
            f"display lag p99 at {rate:g} tokens/s (median of runs)",
            "live",
            None,
            p99 * 1000 if p99 is not None else None,
            50,
            "ms",
        )
    for case in _MAGIC:
        row = _row(paced, case)
        if row is not None:
            share = median_of(row["summary"]["cpu_share"])
            add(
                f"kernel CPU while streaming at {rate:g} tokens/s",
                case,
                None,
                share * 100 if share is not None else None,
                5,
                "% of a core",
            )
    for case in _MAGIC:
        row = _row(results["interrupt"], case)
        if row is not None:
            worst = row["summary"]["interrupt_to_idle_s"]
            value = worst["max"] * 1000 if worst is not None else None
            if not row["summary"]["all_interrupted"]:
                value = None
            add("interrupt to idle (worst run)", case, None, value, 300, "ms")
    for row in results.get("shapes", []):
        add(
            f"output data bytes / answer bytes, {row['shape']} answer at {rate:g} tokens/s",
            row["case"],
            row["tokens"],
            row["data_vs_answer"],
            3.0,
            "x answer",
        )
    if sizes:
        largest = sizes[-1]
        for case in _MAGIC:
            add(
                f'peak traced memory / answer bytes ("a few x" taken as <= {MEMORY_FACTOR:g})',
                case,
                largest,
                fast_value(case, largest, lambda s: s.get("traced_peak_per_answer_byte")),
                MEMORY_FACTOR,
                "x answer",
            )
    if 100_000 in sizes:
        for case in _MAGIC:
            row = _row(fast, case, 100_000)
            ok = None
            if row is not None:
                ok = 1.0 if row["summary"]["all_ok"] and row["summary"]["complete"] else 0.0
            out.append(
                {
                    "target": "100,000-token answer completes",
                    "case": case,
                    "size": 100_000,
                    "measured": ok,
                    "limit": 1.0,
                    "unit": "",
                    "verdict": "n/a" if ok is None else ("PASS" if ok else "FAIL"),
                }
            )
    return out
