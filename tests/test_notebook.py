"""Whole notebooks executed headless: the saved file and its HTML export keep the answers."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ollama_magic.testing import Reply

REPO = Path(__file__).resolve().parents[1]

# Each test starts a kernel and runs a whole notebook: allow for a slow, busy machine.
pytestmark = pytest.mark.timeout(400)
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def run_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ollama_magic", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def magic_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%ollama")]


def test_quickstart_runs_and_saves_plain_outputs(server, tmp_path):
    out = tmp_path / "quickstart.out.ipynb"
    proc = run_command(
        "run", "examples/quickstart.ipynb", "-o", str(out), env={"OLLAMA_HOST": server.host}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The answers were streamed to the terminal as they arrived.
    assert "You said: Why is the sky blue? Answer in two sentences." in proc.stdout
    # The last cell's value is shown, as a notebook shows Out[n] (the cell is `haiku.upper()`).
    assert "YOU SAID: WRITE A HAIKU ABOUT NOTEBOOKS." in proc.stdout
    assert "Out[" in proc.stdout
    # The kernel talks over local sockets: no warning about unencrypted TCP.
    assert "without encryption" not in proc.stderr + proc.stdout
    assert not list(tmp_path.glob("kernel*")) and not list(REPO.glob("kernel-*"))
    nb = nbformat.read(out, as_version=4)
    cells = magic_cells(nb)
    assert len(cells) == 2
    for cell in cells:
        # The answer, then the quiet footer line (model, time, tokens).
        assert [o.output_type for o in cell.outputs] == ["display_data", "display_data"]
        assert cell.outputs[1].data["text/plain"].startswith("llama3.2")
        data = cell.outputs[0].data
        assert WIDGET_MIME not in data
        assert data["text/markdown"].startswith("You said:")
        assert data["text/plain"] == data["text/markdown"]
    assert "widgets" not in nb.metadata
    chat = [r.json() for r in server.requests if r.path == "/api/chat"]
    assert chat[-1]["messages"][0] == {"role": "system", "content": "You are terse."}


def test_run_says_clearly_when_ollama_is_not_running(closed_port, tmp_path):
    proc = run_command(
        "run",
        "examples/quickstart.ipynb",
        "-o",
        str(tmp_path / "x.ipynb"),
        "--no-local",
        env={"OLLAMA_HOST": f"127.0.0.1:{closed_port}"},
    )
    assert proc.returncode == 3
    assert f"not reachable at http://127.0.0.1:{closed_port}" in proc.stderr
    assert "ollama serve" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_html_export_shows_answer_and_never_live_markup(server, tmp_path):
    pytest.importorskip("nbconvert")
    hostile = "**Bold** <script>window.pwned=1</script><img src=x onerror=alert(1)>"
    server.enqueue(Reply.answer([hostile]))
    nb = new_notebook(
        cells=[new_code_cell("%load_ext ollama_magic"), new_code_cell("%%ollama llama3.2\nHi")]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    source = tmp_path / "hostile.ipynb"
    nbformat.write(nb, source)
    executed = tmp_path / "hostile.out.ipynb"
    proc = run_command("run", str(source), "-o", str(executed), env={"OLLAMA_HOST": server.host})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--stdout", str(executed)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "<strong>Bold</strong>" in html
    assert "<script>window.pwned" not in html
    assert "<img src=x" not in html and '<img src="x"' not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html


def test_conversations_example_runs_cleanly(server, tmp_path):
    out = tmp_path / "conversations.out.ipynb"
    proc = run_command(
        "run", "examples/conversations.ipynb", "-o", str(out), env={"OLLAMA_HOST": server.host}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nb = nbformat.read(out, as_version=4)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    chats = [r.json() for r in server.requests if r.path == "/api/chat"]
    # The second conversation turn carried the first one (system, user, assistant, user).
    assert [m["role"] for m in chats[1]["messages"]] == ["system", "user", "assistant", "user"]
    # Interpolation filled in variables and left other braces alone.
    assert (
        "describe Lisbon using these facts: {'population': 545000"
        in (chats[2]["messages"][-1]["content"])
    )
    assert "{this}" in chats[2]["messages"][-1]["content"]
    assert chats[3]["messages"][-1]["content"].endswith("f'{city}' in one sentence.")
    # The dry run sent nothing: the next request is the JSON one.
    assert chats[4]["format"] == "json"


def test_models_and_compare_example_runs_cleanly(server, tmp_path):
    out = tmp_path / "models.out.ipynb"
    proc = run_command(
        "run",
        "examples/models_and_compare.ipynb",
        "-o",
        str(out),
        env={"OLLAMA_HOST": server.host},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nb = nbformat.read(out, as_version=4)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    chats = [r.json() for r in server.requests if r.path == "/api/chat"]
    compared = {c["model"] for c in chats[:2]}
    assert compared == {"llama3.2:latest", "qwen3:8b"}
    assert len(chats) == 2 + 1 + 3  # compare, background, three mapped items
    assert chats[-1]["messages"][-1]["content"].endswith("one word: It was fine.")
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "True" in outputs  # the background answer completed


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="needs pip install 'ollama-magic[local]'"
)
def test_quickstart_without_ollama_uses_the_embedded_model(closed_port, tmp_path):
    out = tmp_path / "quickstart.local.ipynb"
    proc = run_command(
        "run",
        "examples/quickstart.ipynb",
        "-o",
        str(out),
        env={"OLLAMA_HOST": f"127.0.0.1:{closed_port}"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "using the embedded local:smollm2" in proc.stdout
    nb = nbformat.read(out, as_version=4)
    answers = [c.outputs[0].data["text/plain"] for c in magic_cells(nb)]
    assert len(answers) == 2 and all(a.strip() for a in answers)
    # A newcomer's first answers read as text, not a loop ("a blank canvas, a blank canvas, …"
    # until the token limit): Ollama's sampling defaults apply to the embedded model too.
    for cell in magic_cells(nb):
        markdown = cell.outputs[0].data["text/markdown"]
        assert repeated_share(markdown) <= 0.25, markdown


def repeated_share(text: str) -> float:
    """The share of the text's 4-word sequences that repeat an earlier one.

    >>> repeated_share("a blank canvas, a blank canvas, a blank canvas, a blank")
    0.625
    >>> repeated_share("The sky is blue because air scatters blue light most.")
    0.0
    """
    words = text.lower().split()
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0
