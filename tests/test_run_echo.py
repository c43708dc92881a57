"""``python -m ollama_magic run`` shows each answer in the terminal while it streams.

The live view speaks only the display protocol (outputs replaced whole), which a terminal cannot
show; the run command asks the kernel for the raw text as well, in the messages' ``transient``
part, which no notebook keeps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ollama_magic.testing import FakeOllama, Gate, Reply

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)


class _Output:
    """Everything a process prints, readable while it runs; ``wait_for`` blocks on a condition."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.text = ""
        self._changed = threading.Condition()
        self._ended = False
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 4096):
            with self._changed:
                self.text += chunk.decode(errors="replace")
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, wanted: str, timeout: float = 120) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: wanted in self.text or self._ended, timeout) and (
                wanted in self.text
            )

    def rest(self) -> str:
        self._thread.join(120)
        return self.text


def _notebook(path: Path, *cells: str) -> Path:
    """A notebook of code cells at ``path``, the extension loaded in the first."""
    code = [new_code_cell(source) for source in ("%load_ext ollama_magic", *cells)]
    nbformat.write(new_notebook(cells=code), path)
    return path


def _run(source: Path, out: Path, host: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ollama_magic", "run", str(source), "-o", str(out)],
        env={**os.environ, "OLLAMA_HOST": host, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )


def test_the_answer_is_printed_while_it_streams_and_saved_once(tmp_path):
    gate = Gate()
    words = ["Rayleigh ", "scattering ", "**favours** ", "blue ", "light ", "strongly."]
    source = _notebook(tmp_path / "sky.ipynb", "%%ollama llama3.2\nWhy is the sky blue?")
    out = tmp_path / "sky.out.ipynb"
    with FakeOllama(models=("llama3.2",)) as fake:
        # Held back after three words: they must be on the terminal before the rest is sent.
        fake.enqueue(Reply.answer(words, gate=gate, gate_after=3))
        proc = _run(source, out, fake.host)
        output = _Output(proc)
        try:
            assert gate.wait_reached(120)
            assert output.wait_for("".join(words[:3])), output.text
            assert words[3] not in output.text
        finally:
            gate.open()
        assert proc.wait(120) == 0, output.rest()
    printed = output.rest()
    answer = "".join(words)
    assert printed.count(answer) == 1, printed  # raw text, as the model wrote it, once
    assert "llama3.2 · " in printed.split(answer, 1)[1]  # the footer follows the answer
    nb = nbformat.read(out, as_version=4)
    outputs = nb.cells[1].outputs
    markdown = [o.data["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert [m for m in markdown if "Rayleigh" in m] == [
        "Rayleigh scattering **favours** blue light strongly."
    ]
    assert "ollama_magic_echo" not in out.read_text()


def test_what_a_cell_displays_is_printed_as_text(tmp_path):
    source = _notebook(tmp_path / "dry.ipynb", "%%ollama llama3.2 --dry-run\nWhy is the sky blue?")
    with FakeOllama(models=("llama3.2",)) as fake:
        proc = _run(source, tmp_path / "dry.out.ipynb", fake.host)
        output = _Output(proc)
        assert proc.wait(120) == 0, output.rest()
    printed = output.rest().split("[1] %%ollama", 1)[1]
    assert "curl" in printed and "Why is the sky blue?" in printed, printed


def test_a_comparison_prints_each_answer_under_its_model(tmp_path):
    source = _notebook(tmp_path / "compare.ipynb", "%%ollama llama3.2 qwen3:8b\nSay hi.")
    out = tmp_path / "compare.out.ipynb"
    with FakeOllama(models=("llama3.2", "qwen3:8b")) as fake:
        proc = _run(source, out, fake.host)  # the fake echoes the prompt: "You said: ..."
        output = _Output(proc)
        assert proc.wait(120) == 0, output.rest()
    printed = output.rest().split("[1] %%ollama", 1)[1]
    answers = [m.start() for m in re.finditer(re.escape("You said: Say hi."), printed)]
    headings = [printed.find("── llama3.2"), printed.find("── qwen3:8b")]
    assert len(answers) == 2 and min(headings) >= 0, printed
    # Each answer under its own heading: the headings and answers alternate.
    assert sorted(headings)[0] < answers[0] < sorted(headings)[1] < answers[1], printed


def test_a_map_prints_its_progress_and_summary(tmp_path):
    source = _notebook(
        tmp_path / "map.ipynb",
        "colours = ['red', 'green', 'blue']",
        "%%ollama llama3.2 --map colours -o described\nDescribe {item}.",
    )
    with FakeOllama(models=("llama3.2",)) as fake:
        proc = _run(source, tmp_path / "map.out.ipynb", fake.host)
        output = _Output(proc)
        assert proc.wait(120) == 0, output.rest()
    printed = output.rest().split("[2] %%ollama", 1)[1]
    assert "3/3 answered" in printed, printed
    assert "Mapped 3 items in `described`: 3 answered." in printed, printed


def test_a_background_map_prints_only_its_summary_when_it_ends(tmp_path):
    gate = Gate()
    source = _notebook(
        tmp_path / "bgmap.ipynb",
        "colours = ['red', 'green']",
        "%%ollama llama3.2 --map colours --bg -o described\nDescribe {item}.",
        "print('the last cell ran')",
    )
    with FakeOllama(models=("llama3.2",)) as fake:
        fake.enqueue(Reply.answer(["Warm ", "red"], gate=gate, gate_after=1))
        proc = _run(source, tmp_path / "bgmap.out.ipynb", fake.host)
        output = _Output(proc)
        try:
            assert gate.wait_reached(120)
            assert output.wait_for("the last cell ran"), output.text
        finally:
            gate.open()
        assert proc.wait(120) == 0, output.rest()
    printed = output.rest().split("the last cell ran", 1)[1]
    summary = printed.index("Mapped 2 items in `described`: 2 answered.")
    assert printed.index("[2] answered in the background") < summary, printed
    assert "answered ·" not in output.text  # no progress lines between later cells' output
