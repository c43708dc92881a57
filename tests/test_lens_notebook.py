"""examples/teaching.ipynb executed headless against the test server: all three lenses saved."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
pytestmark = pytest.mark.timeout(400)


def test_teaching_notebook_runs_and_keeps_the_lens(server, tmp_path):
    out = tmp_path / "teaching.out.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "ollama_magic", "run", "examples/teaching.ipynb", "-o", str(out)],
        env={**os.environ, "OLLAMA_HOST": server.host},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nb = nbformat.read(out, as_version=4)
    cells = {c.source.splitlines()[0]: c for c in nb.cells if c.cell_type == "code"}

    (lens,) = cells["%%ollama --logprobs -o capital --seed 1"].outputs
    assert WIDGET_MIME not in lens.data
    page = lens.data["text/html"]
    prompt = "What is the capital of Australia? Answer in one sentence."
    tokens = 2 + len(prompt.split())  # "You said:" and the echoed prompt, word by word
    assert len(re.findall(r"<span[^>]* title=", page)) == tokens
    assert "perplexity" in page and lens.data["text/markdown"].startswith(f"You said: {prompt}")

    plot = cells["import math"].outputs
    kinds = {o.output_type for o in plot}
    shown = "".join(o.get("text", "") for o in plot)
    assert "image/png" in str([o.get("data", {}) for o in plot]) or "90.0%" in shown, kinds

    (rendered,) = cells["%%ollama --chat lesson --show-prompt"].outputs
    text = rendered.data["text/markdown"]
    assert "You are a patient teacher." in text and "You said: What is a token?" in text
    assert text.rstrip().endswith("```") and "nothing was generated" in text

    summary = cells["%%ollama -O num_ctx=32 -o summary"].outputs
    notes = "".join(o.get("text", "") for o in summary if o.output_type == "stream")
    assert "filled the context window (32 of 32 tokens)" in notes and "-O num_ctx=" in notes
    (value,) = cells[
        "summary.stats.prompt_eval_count, summary.stats.context_length, summary.truncated"
    ].outputs
    assert value.data["text/plain"] == "(32, 32, True)"
    bodies = [r.json() for r in server.requests if r.path == "/api/chat"]
    assert sum(1 for b in bodies if b.get("_debug_render_only")) == 1
    assert any(b.get("logprobs") is True and b.get("top_logprobs") == 5 for b in bodies)
