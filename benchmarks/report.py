"""Render a results document as Markdown tables (readable in a terminal, pasteable in a README)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .stats import median_of


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), separator, *(line(r) for r in rows)])


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _seconds(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "–"
    text = f"{summary['median']:.3f}"
    if summary["n"] > 1:
        text += f" ({summary['min']:.3f}–{summary['max']:.3f})"
    return text


def _milliseconds(summary: dict[str, Any] | None, digits: int) -> str:
    if summary is None:
        return "–"
    return f"{summary['median'] * 1000:.{digits}f} ({summary['max'] * 1000:.{digits}f})"


def _bytes(value: float | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _label(results: dict[str, Any], case: str) -> str:
    """The case's label; its name when the run left the case out (``--cases``)."""
    return str(results["cases"].get(case, {}).get("label", case))


def fast_table(results: dict[str, Any]) -> str:
    rows = []
    for row in results["fast"]:
        s = row["summary"]
        sent = median_of(s["bytes"])
        rows.append(
            [
                f"{row['size']:,}",
                _label(results, row["case"]),
                _seconds(s["wall_s"]),
                _ratio(s["wall_vs_floor"]),
                _num(median_of(s["cpu_s"]), 3),
                _ratio(s["cpu_vs_floor"]),
                _num(median_of(s["messages"]), 0),
                _bytes(sent),
                _ratio(sent / row["answer_bytes"] if sent is not None else None),
                _num(median_of(s["updates_max_1s"]), 0),
                _num(median_of(s["updates_mean_per_s"]), 0),
                _bytes(median_of(s["rss_peak_growth"])),
                _bytes(s.get("traced_peak")),
                _ratio(s.get("traced_peak_per_answer_byte")),
                _check(s),
            ]
        )
    return _table(
        [
            "tokens",
            "case",
            "wall s (min–max)",
            "÷ floor",
            "CPU s",
            "÷ floor",
            "msgs",
            "to front end",
            "÷ answer",
            "upd/s max",
            "upd/s mean",
            "RSS peak Δ",
            "traced peak",
            "÷ answer",
            "ok",
        ],
        rows,
    )


def _check(summary: dict[str, Any]) -> str:
    if not summary["all_ok"]:
        return "ERROR"
    if summary["complete"] is False:
        return "LOST TEXT"
    return "yes"


def paced_table(results: dict[str, Any]) -> str:
    rows = []
    for row in results["paced"]:
        s = row["summary"]
        share = median_of(s["cpu_share"])
        p50, p99, run_p99 = s["lag_p50_s"], s["lag_p99_s"], median_of(s["lag_p99_per_run_s"])
        rows.append(
            [
                _label(results, row["case"]),
                _seconds(s["wall_s"]),
                _num(median_of(s["rate_sent"]), 1),
                _num(share * 100 if share is not None else None, 1),
                _num(p50 * 1000 if p50 is not None else None, 1),
                _num(run_p99 * 1000 if run_p99 is not None else None, 1),
                _num(p99 * 1000 if p99 is not None else None, 1),
                _num(median_of(s["updates_max_1s"]), 0),
                _num(median_of(s["updates_mean_per_s"]), 1),
                _num(median_of(s["messages"]), 0),
                _bytes(median_of(s["bytes"])),
                _check(s),
            ]
        )
    return _table(
        [
            "case",
            "wall s (min–max)",
            "tokens/s sent",
            "kernel CPU % core",
            "lag p50 ms",
            "p99, median run",
            "p99, all runs",
            "upd/s max",
            "upd/s mean",
            "msgs",
            "to front end",
            "ok",
        ],
        rows,
    )


def latency_table(results: dict[str, Any]) -> str:
    first = {row["case"]: row for row in results["first_token"]}
    rows = []
    for row in results["interrupt"]:
        s = row["summary"]
        stop = s["interrupt_to_idle_s"]
        first_row = first.get(row["case"])
        token = None
        if first_row and first_row["summary"]:
            token = first_row["summary"]["first_token_s"]
        rows.append(
            [
                _label(results, row["case"]),
                _milliseconds(stop, 0),
                f"{s['closed_connection']}/{s['runs']}",
                _milliseconds(token, 1),
            ]
        )
    return _table(
        [
            "case",
            "stop → idle ms, median (max)",
            "connection closed",
            "first token → shown ms, median (max)",
        ],
        rows,
    )


def targets_table(results: dict[str, Any]) -> str:
    rows = []
    for t in results["targets"]:
        value = t["measured"]
        if t["unit"] == "":
            measured = "–" if value is None else ("yes" if value else "no")
            limit = "yes"
        else:
            measured = "–" if value is None else f"{value:,.2f} {t['unit']}"
            limit = f"≤ {t['limit']:g} {t['unit']}"
        rows.append(
            [
                t["target"],
                _label(results, t["case"]),
                "–" if t["size"] is None else f"{t['size']:,}",
                measured,
                limit,
                t["verdict"],
            ]
        )
    return _table(["target", "case", "tokens", "measured", "limit", "verdict"], rows)


def summary_table(results: dict[str, Any], size: int = 10_000) -> str:
    """One column per case, the headline numbers: the table for the README."""
    fast = {r["case"]: r for r in results["fast"] if r["size"] == size}
    if not fast:
        size = max(r["size"] for r in results["fast"])
        fast = {r["case"]: r for r in results["fast"] if r["size"] == size}
    paced = {r["case"]: r["summary"] for r in results["paced"]}
    stop = {r["case"]: r["summary"] for r in results["interrupt"]}
    first = {r["case"]: r["summary"] for r in results["first_token"]}
    cases = [c for c in results["cases"] if c in fast]
    rate = results["config"]["rate"]

    def column(case: str) -> list[str]:
        s = fast[case]["summary"]
        sent = median_of(s["bytes"])
        p = paced.get(case, {})
        share = median_of(p.get("cpu_share"))
        lag = median_of(p.get("lag_p99_per_run_s"))
        token = (first.get(case) or {}).get("first_token_s")
        return [
            f"{median_of(s['wall_s']):.2f} s ({_ratio(s['wall_vs_floor'])})",
            f"{median_of(s['cpu_s']):.2f} s ({_ratio(s['cpu_vs_floor'])})",
            f"{_bytes(sent)} ({_ratio(sent / fast[case]['answer_bytes'])})" if sent else "none",
            _num(median_of(p.get("updates_max_1s")), 0),
            _num(share * 100 if share is not None else None, 1) + " %",
            "–" if lag is None else f"{lag * 1000:.0f} ms",
            _milliseconds(stop[case]["interrupt_to_idle_s"], 0) if case in stop else "–",
            _milliseconds(token, 1),
        ]

    labels = [
        f"wall, {size:,} tokens at full speed (÷ floor)",
        f"kernel CPU, {size:,} tokens (÷ floor)",
        f"sent to the front end, {size:,} tokens (÷ answer)",
        f"updates/s, busiest second at {rate:g} tokens/s",
        f"kernel CPU at {rate:g} tokens/s",
        f"display lag p99 at {rate:g} tokens/s",
        "stop → idle ms, median (max)",
        "first token → shown ms, median (max)",
    ]
    columns = [column(c) for c in cases]
    rows = [[label, *(col[i] for col in columns)] for i, label in enumerate(labels)]
    return _table(["", *(_label(results, c) for c in cases)], rows)


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.0f} ms"


def shapes_table(results: dict[str, Any]) -> str:
    """Bytes of output data (headers left out) and of the whole messages, per answer byte."""
    rows = [
        (
            row["shape"],
            f"{row['tokens']:,}",
            _bytes(row["answer_bytes"]),
            _bytes(row["data_bytes"]),
            _ratio(row["data_vs_answer"]),
            _bytes(row["bytes"]),
            str(row["messages"]),
            str(row["updates_max_1s"]),
            _ms(row.get("lag_p50_s")),
            _ms(row.get("lag_p99_s")),
        )
        for row in results.get("shapes", [])
    ]
    header = (
        "answer",
        "tokens",
        "answer",
        "data",
        "÷ answer",
        "all bytes",
        "msgs",
        "upd/s max",
        "lag p50",
        "lag p99",
    )
    return _table(header, rows)


def render(results: dict[str, Any]) -> str:
    """All tables, with the context needed to read them."""
    config = results["config"]
    source = results.get("ollama_magic", {})
    where = source.get("commit") or source.get("path", "?")
    if source.get("modified"):
        where += " + uncommitted changes"
    load = results["machine"].get("load_average_before")
    head = [
        f"ollama_magic {where} · Python {results['machine']['python']} · "
        f"{results['machine']['cpus']} CPUs · load average {load[0] if load else '?'} at start"
        f" · {results['duration_s']:.0f} s",
        "",
    ]
    shapes = [
        "Markdown-shaped answers through the live view at "
        f"{config['rate']:g} tokens/s (one run each):",
        "",
        shapes_table(results),
        "",
    ]
    if not results["fast"]:
        return "\n".join([*head, *shapes, "Targets:", "", targets_table(results)])
    parts = [
        *head,
        summary_table(results),
        "",
        "Answers sent as fast as the server can (medians of "
        f"{config['repeat']} runs unless noted):",
        "",
        fast_table(results),
        "",
        f"Paced at {config['rate']:g} tokens/s, {config['paced_tokens']} tokens, "
        f"{config['repeat']} runs; lag = token sent → message showing it received:",
        "",
        paced_table(results),
        "",
        f"Stop button {config['interrupt_after']:g} s into a paced answer; first token after a "
        "held-back (loading) response:",
        "",
        latency_table(results),
        "",
        *(shapes if results.get("shapes") else []),
        "Targets:",
        "",
        targets_table(results),
    ]
    notes = list(results.get("notes", []))
    notes += [c["note"] for c in results["cases"].values() if c.get("note")]
    if notes:
        parts += ["", "Notes:", *(f"- {n}" for n in notes)]
    return "\n".join(parts)
