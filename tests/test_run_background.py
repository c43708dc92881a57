"""``python -m ollama_magic run`` keeps ``--bg`` answers that end after their cell did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ollama_magic.testing import FakeOllama, Gate, Reply

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)


def test_a_background_answer_that_ends_after_the_last_cell_is_saved(tmp_path):
    gate = Gate()
    words = [f"word{i} " for i in range(8)]
    source = tmp_path / "bg.ipynb"
    nbformat.write(
        new_notebook(
            cells=[
                new_code_cell("%load_ext ollama_magic"),
                new_code_cell("%%ollama llama3.2 --bg -o later\nCount."),
                new_code_cell("print('the last cell ran')"),
            ]
        ),
        source,
    )
    out = tmp_path / "bg.out.ipynb"
    with FakeOllama(models=("llama3.2",)) as fake:
        # The answer is held back mid-stream until the notebook's last cell has run.
        fake.enqueue(Reply.answer(words, gate=gate, gate_after=3))
        proc = subprocess.Popen(
            [sys.executable, "-m", "ollama_magic", "run", str(source), "-o", str(out)],
            env={**os.environ, "OLLAMA_HOST": fake.host, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        try:
            assert gate.wait_reached(120)
            seen = ""
            assert proc.stdout is not None
            while "the last cell ran" not in seen:
                line = proc.stdout.readline()
                assert line, seen  # the run ended before the last cell printed
                seen += line
        finally:
            gate.open()
        rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, seen + rest
    # The terminal shows the answer whole, after the cells that ran meanwhile, and says whose.
    assert "".join(words) not in seen
    assert rest.count("".join(words)) == 1, rest
    assert rest.index("[1] answered in the background") < rest.index("".join(words)), rest
    nb = nbformat.read(out, as_version=4)
    assert len(nb.cells) == 3  # the waiting is not saved as a cell
    markdown = [o.data["text/markdown"] for o in nb.cells[1].outputs if "text/markdown" in o.data]
    answers = [text for text in markdown if "word0" in text]
    assert answers == ["".join(words)], markdown
