"""The benchmark harness (``python -m benchmarks``) still runs end to end.

Only the shape of the results is checked, never a timing: the machine running the tests is
shared and noisy, and the numbers are for people to read in the report.
"""

from __future__ import annotations

import doctest
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CASES = {"floor", "seed", "official", "live", "quiet"}
VERDICTS = {"PASS", "FAIL", "n/a"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _spread(value: Any) -> bool:
    return isinstance(value, dict) and all(_number(value[k]) for k in ("median", "min", "max"))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--sizes",
            "30",
            "--repeat",
            "1",
            "--paced-tokens",
            "5",
            "--output",
            str(out),
            "--silent",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Targets:" in proc.stdout and str(out) in proc.stdout
    return json.loads(out.read_text())


def test_every_case_is_measured_or_skipped_with_a_reason(results):
    assert set(results["cases"]) == CASES
    for name, case in results["cases"].items():
        assert case["available"] or case["note"], name
    available = {n for n, c in results["cases"].items() if c["available"]}
    assert {"floor", "seed", "live", "quiet"} <= available  # no optional dependency
    assert {row["case"] for row in results["fast"]} == available
    assert {row["case"] for row in results["paced"]} == available
    assert {row["case"] for row in results["interrupt"]} == available
    assert {row["case"] for row in results["first_token"]} == available


def test_fast_rows_are_well_formed(results):
    for row in results["fast"]:
        assert row["size"] == 30 and row["answer_bytes"] > 0
        summary = row["summary"]
        assert summary["all_ok"] is True, row
        assert summary["complete"] in (True, None), row
        for key in ("wall_s", "cpu_s", "messages", "bytes", "updates_max_1s"):
            assert _spread(summary[key]), (row["case"], key)
        assert _number(summary["wall_vs_floor"])
        assert _number(summary["traced_peak"])
        for run in row["runs"]:
            assert run["status"] == "ok"
            assert run["bytes"] == sum(t["bytes"] for t in run["by_type"].values())


def test_text_reaches_the_front_end_only_where_it_should(results):
    for row in results["fast"]:
        streamed = row["summary"]["text_messages"]["median"]
        if row["case"] in ("floor", "quiet"):
            assert row["summary"]["bytes"]["median"] == 0
        else:
            assert streamed >= 1 and row["summary"]["complete"] is True


def test_paced_latency_and_cpu_are_recorded(results):
    for row in results["paced"]:
        summary = row["summary"]
        assert _spread(summary["cpu_share"])
        if row["case"] in ("floor", "quiet"):
            assert summary["lag_samples"] == 0
        else:
            assert summary["lag_samples"] == row["tokens"]  # one stamp per token, none lost
            assert _number(summary["lag_p50_s"]) and _number(summary["lag_p99_s"])


def test_interrupt_and_first_token_rows(results):
    for row in results["interrupt"]:
        for run in row["runs"]:
            assert isinstance(run["interrupted"], bool)
            if run["interrupted"]:
                assert _number(run["interrupt_to_idle_s"])
    for row in results["first_token"]:
        if row["case"] in ("floor", "quiet"):
            assert row["summary"] is None and row["note"]
        else:
            assert all(_number(run["first_token_s"]) for run in row["runs"])


def test_targets_have_verdicts(results):
    targets = results["targets"]
    assert targets
    for target in targets:
        assert target["verdict"] in VERDICTS
        assert target["measured"] is None or _number(target["measured"])


def test_harness_doctests():
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks import runner, stats, workload

        for module in (runner, stats, workload):
            failed, _ = doctest.testmod(module)
            assert failed == 0, module.__name__
    finally:
        sys.path.remove(str(REPO))
