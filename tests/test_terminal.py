"""Without a widget front end: `ipython script.ipy` prints tokens as they arrive."""

from __future__ import annotations

import os
import subprocess
import sys

from ollama_magic.testing import Reply

IPYTHON = [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor"]


def test_ipython_script_streams_to_stdout_and_sets_variable(server, tmp_path):
    server.enqueue(Reply.answer(["Blue", " because", " of", " Rayleigh."]))
    script = tmp_path / "ask.ipy"
    script.write_text(
        # A script is one cell, so it uses the one-line form of the magic; the extension is
        # loaded by --ext so that a prompt ending in "?" is not read as a help request.
        "%ollama llama3.2 Why is the sky blue?\n"
        "print('\\nSTORED:', repr(str(ollama_response)), ollama_response.done_reason)\n"
    )
    proc = subprocess.run(
        [*IPYTHON, "--ext", "ollama_magic", str(script)],
        env={**os.environ, "OLLAMA_HOST": server.host},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Blue because of Rayleigh." in proc.stdout
    assert "STORED: 'Blue because of Rayleigh.' stop" in proc.stdout


def test_ipython_script_error_is_short(server, tmp_path):
    script = tmp_path / "missing.ipy"
    script.write_text("%load_ext ollama_magic\n%ollama llama9 Hi\n")
    proc = subprocess.run(
        [*IPYTHON, str(script)],
        env={**os.environ, "OLLAMA_HOST": server.host},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert "ollama pull llama9" in output
    assert "Traceback (most recent call last)" not in output
