"""A notebook run headless (nbclient, as papermill and ``python -m ollama_magic run`` do) keeps
the live view's outputs: the answer exactly once, as Markdown, with no widget."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from ollama_magic.testing import FakeOllama, Reply

REPO = Path(__file__).resolve().parents[1]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
pytestmark = pytest.mark.timeout(300)

ANSWER = (
    "## Steps\n\n"
    + "".join(f"- step word{i}\n" for i in range(30))
    + "\n```python\n"
    + "".join(f"x{i} = word{100 + i}\n" for i in range(80))
    + "```\n\n"
    + " ".join(f"word{200 + i}" for i in range(200))
    + "\n"
)


def test_saved_notebook_holds_the_answer_once(monkeypatch, tmp_path):
    with FakeOllama(models=("llama3.2",)) as fake:
        fake.enqueue(Reply.answer(re.findall(r"\s*\S+\s*", ANSWER), delay=0.001))
        monkeypatch.setenv("OLLAMA_HOST", fake.host)
        monkeypatch.setenv("PYTHONPATH", str(REPO))
        nb = new_notebook(
            cells=[
                new_code_cell("%load_ext ollama_magic"),
                new_code_cell("%%ollama llama3.2\nWrite the steps."),
            ]
        )
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "out.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    outputs = saved.cells[1].outputs
    assert all(o.output_type == "display_data" for o in outputs), outputs
    assert not any(WIDGET_MIME in o.get("data", {}) for o in outputs)
    holders = [o for o in outputs if "word0" in o.get("data", {}).get("text/markdown", "")]
    assert len(holders) == 1
    assert holders[0].data["text/markdown"] == ANSWER
    assert holders[0].metadata["ollama_magic"]["model"] == "llama3.2"
    words = re.findall(
        r"word\d+", " ".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    )
    assert words == re.findall(r"word\d+", ANSWER)  # nothing shown twice
    footer = outputs[-1].data["text/plain"]
    assert footer.startswith("llama3.2 · ") and "tokens" in footer


def test_a_failure_before_the_answer_saves_the_error_alone(monkeypatch, tmp_path, closed_port):
    """Nothing arrived: the error paragraph says it all, with no empty answer or footer above."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext ollama_magic"),
            new_code_cell(f"%%ollama llama3.2 --host 127.0.0.1:{closed_port}\nhi"),
        ]
    )
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    path = tmp_path / "out.ipynb"
    nbformat.write(nb, path)
    outputs = nbformat.read(path, as_version=4).cells[1].outputs
    errors = [o for o in outputs if o.output_type == "error"]
    assert len(errors) == 1 and "Could not connect to Ollama" in errors[0].evalue, outputs
    shown = [o for o in outputs if o.output_type != "error" and (o.get("data") or o.get("text"))]
    assert shown == []
