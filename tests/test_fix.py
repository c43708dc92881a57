"""The last error as plain text, from IPython's real shell and a real kernel, and its prompts."""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from kernel_driver import KernelDriver, start_magic_kernel

from ollama_magic.coding import extract_code
from ollama_magic.errors import ModelNotFoundError, OllamaUsageError
from ollama_magic.fix import (
    DEFAULT_EXPLAIN_PROMPT,
    DEFAULT_FIX_PROMPT,
    TRACEBACK_LIMIT,
    ErrorReport,
    explain_prompt,
    fix_prompt,
    is_ignored,
    last_error,
    require_last_error,
    unwatch_errors,
    watch_errors,
)
from ollama_magic.testing import FakeOllama, Reply

FAILING_CELL = "%time ok = 1\ndef ratio(a, b):\n    return a / b\n\nratio(1, 0)"


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """IPython's shell with no error remembered from earlier tests."""
    shell = InteractiveShell.instance()
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        monkeypatch.delattr(sys, name, raising=False)
    shell.last_execution_result = None
    unwatch_errors(shell)
    mode = shell.InteractiveTB.mode
    shell.InteractiveTB.set_mode("Plain")  # IPython's own rich tracebacks of deep stacks are slow
    yield shell
    shell.InteractiveTB.set_mode(mode)
    unwatch_errors(shell)


@pytest.fixture(params=["watched", "from sys.last_value"])
def mode(request: pytest.FixtureRequest, ip: InteractiveShell) -> str:
    if request.param == "watched":
        watch_errors(ip)
    return request.param


def run(shell: InteractiveShell, cell: str) -> int:
    """Run a cell as a notebook would (stored in history); return its In[n]."""
    result = shell.run_cell(cell, store_history=True)
    assert result.execution_count is not None
    return result.execution_count


# -- last_error in IPython's shell -------------------------------------------------------------


def test_zero_division_gives_type_message_plain_traceback_and_the_cell_as_typed(ip, mode, capsys):
    n = run(ip, FAILING_CELL)
    shown = capsys.readouterr().out
    assert "\x1b[" in shown  # IPython's own traceback is coloured; the report must not be
    report = last_error(ip)
    assert report is not None
    assert (report.error_type, report.message) == ("ZeroDivisionError", "division by zero")
    assert report.cell == FAILING_CELL
    assert report.execution_count == n
    assert report.traceback == (
        "Traceback (most recent call last):\n"
        f"  Cell In[{n}], line 5, in <module>\n"
        "    ratio(1, 0)\n"
        f"  Cell In[{n}], line 3, in ratio\n"
        "    return a / b\n"
        "ZeroDivisionError: division by zero"
    )
    assert report.summary == "ZeroDivisionError: division by zero"
    assert report.where == f"In[{n}]"


def test_the_error_stays_the_last_one_after_cells_that_succeed(ip, mode):
    n = run(ip, FAILING_CELL)
    run(ip, "fine = 2")
    report = last_error(ip)
    assert report is not None
    assert (report.cell, report.execution_count) == (FAILING_CELL, n)


def test_a_syntax_error_shows_the_cell_line_and_caret_without_internal_frames(ip, mode):
    cell = "x = (1,\ny = 2"
    n = run(ip, cell)
    report = last_error(ip)
    assert report is not None
    assert (report.error_type, report.message, report.cell) == (
        "SyntaxError",
        "'(' was never closed",
        cell,
    )
    assert report.traceback == (
        f"  Cell In[{n}], line 1\n    x = (1,\n        ^\nSyntaxError: '(' was never closed"
    )


def test_library_frames_take_one_line_and_the_users_own_files_are_shown_in_full(
    ip, mode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "settings_loader.py").write_text(
        "import json\n\n\ndef load(text):\n    return json.loads(text)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "settings_loader", raising=False)
    n = run(ip, "import settings_loader\nsettings_loader.load('{')")
    report = last_error(ip)
    assert report is not None
    lines = report.traceback.splitlines()
    assert lines[:5] == [
        "Traceback (most recent call last):",
        f"  Cell In[{n}], line 2, in <module>",
        "    settings_loader.load('{')",
        f'  File "{tmp_path / "settings_loader.py"}", line 5, in load',
        "    return json.loads(text)",
    ]
    library = lines[5:-1]
    assert library and all(
        re.fullmatch(r'  File "json/\w+\.py", line \d+, in \w+', x) for x in library
    )
    assert lines[-1] == (
        "json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )
    assert report.error_type == "json.decoder.JSONDecodeError"
    monkeypatch.delitem(sys.modules, "settings_loader", raising=False)


def test_a_long_run_of_library_frames_becomes_one_line(ip, mode):
    n = run(
        ip,
        "import pprint\n"
        "class Bad:\n"
        "    def __repr__(self):\n"
        "        raise ValueError('no repr')\n"
        "pprint.pformat([[[[[Bad(), 'x' * 20]]]]], width=10)",
    )
    report = last_error(ip)
    assert report is not None
    lines = report.traceback.splitlines()
    summary = [x for x in lines if x.startswith("  [… ")]
    assert len(summary) == 1 and re.fullmatch(r"  \[… \d+ more library frames …\]", summary[0])
    assert lines[-3:] == [
        f"  Cell In[{n}], line 4, in __repr__",
        "    raise ValueError('no repr')",
        "ValueError: no repr",
    ]
    assert sum(1 for x in lines if x.startswith('  File "pprint.py"')) == 6


def test_a_very_long_traceback_keeps_its_head_and_tail_within_the_limit(ip, mode):
    run(
        ip,
        "def ping(n):\n    return pong(n)\n\n"
        "def pong(n):\n    return ping(n - 1) if n else 1 / 0\n\nping(300)",
    )
    report = last_error(ip)
    assert report is not None
    assert len(report.traceback) <= TRACEBACK_LIMIT
    assert report.traceback.startswith("Traceback (most recent call last):\n  Cell In[")
    assert report.traceback.endswith(
        "    return ping(n - 1) if n else 1 / 0\nZeroDivisionError: division by zero"
    )
    assert re.search(r"\n\[… [\d,]+ characters cut …\]\n", report.traceback)


def test_deep_recursion_shows_three_calls_and_counts_the_rest(ip, mode):
    n = run(ip, "import sys\ndef f(k):\n    return f(k + 1)\nf(0)")
    report = last_error(ip)
    assert report is not None
    depth = len(traceback.extract_tb(sys.last_value.__traceback__)) - 2  # run_code, <module>
    call = [f"  Cell In[{n}], line 3, in f", "    return f(k + 1)"]
    assert report.traceback == "\n".join(
        [
            "Traceback (most recent call last):",
            f"  Cell In[{n}], line 4, in <module>",
            "    f(0)",
            *call * 3,
            f"  [Previous line repeated {depth - 3} more times]",
            "RecursionError: maximum recursion depth exceeded",
        ]
    )


def test_chained_exceptions_are_shown_oldest_first_with_the_link_between(ip, mode):
    run(
        ip,
        "config = {}\n"
        "try:\n"
        "    config['port']\n"
        "except KeyError as exc:\n"
        "    raise RuntimeError('port is not configured') from exc",
    )
    report = last_error(ip)
    assert report is not None
    text = report.traceback
    assert text.index("KeyError: 'port'") < text.index(
        "The above exception was the direct cause of the following exception:"
    )
    assert text.endswith("RuntimeError: port is not configured")
    assert report.message == "port is not configured"


def test_an_error_while_handling_another_shows_both(ip, mode):
    run(ip, "try:\n    int('x')\nexcept ValueError:\n    undefined_name")
    report = last_error(ip)
    assert report is not None
    first, link, second = report.traceback.split("\n\n")
    assert first.endswith("ValueError: invalid literal for int() with base 10: 'x'")
    assert link == "During handling of the above exception, another exception occurred:"
    assert second.endswith("NameError: name 'undefined_name' is not defined")
    assert report.error_type == "NameError"


def test_errors_of_ollama_magic_itself_never_hide_the_users_error(shell, server):
    """The cell that raised, then a failing %%ollama cell and a %ollama fix: still the first."""
    for name in ("last_type", "last_value", "last_traceback"):
        if hasattr(sys, name):
            delattr(sys, name)
    unwatch_errors(shell)
    watch_errors(shell)
    try:
        n = run(shell, FAILING_CELL)
        failed = shell.run_cell("%%ollama no-such-model\nHi", store_history=True)
        assert isinstance(failed.error_in_exec, ModelNotFoundError)
        shell.run_cell("%ollama fix", store_history=True)
        report = last_error(shell)
        assert report is not None
        assert (report.error_type, report.execution_count) == ("ZeroDivisionError", n)
    finally:
        unwatch_errors(shell)


@pytest.mark.parametrize(
    ("exc", "cell", "ignored"),
    [
        (ZeroDivisionError("division by zero"), "1/0", False),
        (OllamaUsageError("bad option"), "%%ollama --bad\nHi", True),
        (KeyboardInterrupt(), "while True: pass", True),
        (NameError("x"), "%ollama fix llama3.2", True),
        (TimeoutError(), "x = 1\n  %ollama explain", True),
        (NameError("x"), "print('%ollama fix')", False),
        (NameError("x"), "%ollama fixture", False),
    ],
)
def test_which_failures_are_not_the_users_error(exc, cell, ignored):
    assert is_ignored(exc, cell) is ignored


def test_no_error_yet_is_a_one_paragraph_usage_error(ip):
    run(ip, "fine = 1")
    assert last_error(ip) is None
    with pytest.raises(OllamaUsageError) as caught:
        require_last_error(ip, "explain")
    assert "no error to explain" in caught.value.message
    assert "`%ollama explain`" in caught.value.message


# -- prompts -----------------------------------------------------------------------------------

REPORT = ErrorReport(
    error_type="ZeroDivisionError",
    message="division by zero",
    traceback=(
        "Traceback (most recent call last):\n  Cell In[3], line 2, in <module>\n    1 / x\n"
        "ZeroDivisionError: division by zero"
    ),
    cell="x = 0\n1 / x",
    execution_count=3,
)


def test_the_fix_prompt_holds_the_cell_and_traceback_in_fences_and_asks_for_one_block():
    prompt = fix_prompt(REPORT)
    assert prompt == DEFAULT_FIX_PROMPT.replace("{cell}", "```python\nx = 0\n1 / x\n```").replace(
        "{traceback}", f"```text\n{REPORT.traceback}\n```"
    )
    assert "ONE fenced ```python code block" in prompt


def test_the_cell_is_the_only_python_in_the_prompt():
    """What a model echoing the prompt back would have inserted: the cell itself."""
    assert extract_code(fix_prompt(REPORT)) == REPORT.cell
    assert extract_code(explain_prompt(REPORT)) == REPORT.cell


def test_the_explain_prompt_asks_for_words_not_a_rewrite():
    prompt = explain_prompt(REPORT)
    assert prompt == DEFAULT_EXPLAIN_PROMPT.replace(
        "{cell}", "```python\nx = 0\n1 / x\n```"
    ).replace("{traceback}", f"```text\n{REPORT.traceback}\n```")
    assert "Explain what went wrong" in prompt


def test_custom_templates_fill_known_fields_and_leave_other_braces_alone():
    template = 'Reply as {"cause": ..., "fix": ...}. {where} failed with {error}. {unknown}'
    assert fix_prompt(REPORT, template) == (
        'Reply as {"cause": ..., "fix": ...}. In[3] failed with '
        "ZeroDivisionError: division by zero. {unknown}"
    )


def test_inserted_text_is_never_expanded_again_and_cannot_close_its_fence():
    report = ErrorReport("KeyError", "'{message}'", "KeyError: '{message}'", 's = "```{cell}"')
    prompt = fix_prompt(report, "{cell}|{message}")
    assert prompt == "````python\ns = \"```{cell}\"\n````|'{message}'"


def test_a_cell_that_cannot_be_found_is_said_in_words():
    report = ErrorReport("ValueError", "bad", "ValueError: bad", None)
    assert "(the source of the failing cell is not available)" in fix_prompt(report)


# -- a real kernel -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelDriver]:
    with start_magic_kernel() as driver:
        yield driver


def test_last_error_in_a_real_kernel(kernel):
    setup = kernel.execute(
        "from ollama_magic.fix import last_error, watch_errors\n"
        "from ollama_magic.errors import OllamaUsageError"
    )
    assert setup.status == "ok", setup.reply
    failing = kernel.execute("%time ok = 1\ntotal = 10\ntotal / 0")
    assert failing.status == "error"
    n = failing.reply["content"]["execution_count"]
    report = kernel.value("last_error(get_ipython()).__dict__")
    assert report == {
        "error_type": "ZeroDivisionError",
        "message": "division by zero",
        "traceback": (
            "Traceback (most recent call last):\n"
            f"  Cell In[{n}], line 3, in <module>\n"
            "    total / 0\n"
            "ZeroDivisionError: division by zero"
        ),
        "cell": "%time ok = 1\ntotal = 10\ntotal / 0",
        "execution_count": n,
    }


def test_in_a_real_kernel_a_watched_error_survives_our_own(kernel):
    assert kernel.execute("log = watch_errors(get_ipython())").status == "ok"
    failing = kernel.execute("{}['missing']")
    n = failing.reply["content"]["execution_count"]
    ours = kernel.execute("raise OllamaUsageError('Say what to do.')")
    assert ours.status == "error"
    assert kernel.value("last_error(get_ipython()).summary") == "KeyError: 'missing'"
    assert kernel.value("last_error(get_ipython()).execution_count") == n


# -- the example notebook ------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def _magic_offers_code_and_fix() -> bool:
    from ollama_magic.magics import OllamaMagics

    options = OllamaMagics.ollama.parser._option_string_actions
    return "--code" in options and "fix" in OllamaMagics(None)._subcommands()


@pytest.mark.timeout(400)
@pytest.mark.xfail(
    not _magic_offers_code_and_fix(),
    reason="the example needs --code, %ollama fix and %ollama explain in the magic",
    strict=True,
)
def test_code_and_fix_example_runs_against_the_fake_server(server, tmp_path):
    """The fake echoes each request, so the code it offers is the code the request carried."""
    import subprocess

    import nbformat

    out = tmp_path / "code_and_fix.out.ipynb"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_magic",
            "run",
            "examples/code_and_fix.ipynb",
            "-o",
            str(out),
        ],
        env={**os.environ, "OLLAMA_HOST": server.host},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nb = nbformat.read(out, as_version=4)
    errors = [
        (c.source.splitlines()[0], o.ename)
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert errors == [('prices = {"apple": 1.20, "pear": 0.80}', "KeyError")]
    printed = {
        c.source: "".join(o.get("text", "") for o in c.outputs)
        for c in nb.cells
        if c.cell_type == "code"
    }
    assert printed["print(tidy.code)"] == "def area(radius):\n    return 3.14159 * radius ** 2\n"
    failing = next(c.source for c in nb.cells if "raises-exception" in c.metadata.get("tags", []))
    assert printed["print(ollama_response.code)"] == failing + "\n"
    asked = [r.json()["messages"] for r in server.requests if r.path == "/api/chat"]
    explain, fix = asked[-2][-1]["content"], asked[-1][-1]["content"]
    for prompt in (explain, fix):
        assert f"```python\n{failing}\n```" in prompt  # sent as typed: f-string braces kept
        assert prompt.count("KeyError: 'plum'") == 1
        assert len(asked[-1]) == 1  # outside any conversation
    assert "ONE fenced ```python code block" in fix
    assert "Explain what went wrong" in explain


# -- %ollama fix and %ollama explain in a real kernel, against the test server -----------------


@pytest.fixture(scope="module")
def fix_server() -> Iterator[FakeOllama]:
    with FakeOllama(models=("llama3.2",)) as fake:
        yield fake


@pytest.fixture(scope="module")
def fix_kernel(fix_server: FakeOllama) -> Iterator[KernelDriver]:
    with start_magic_kernel({"OLLAMA_HOST": fix_server.host}) as driver:
        yield driver


FIXED = "def ratio(a, b):\n    return a / b if b else float('nan')\n\nratio(1, 0)"


def test_fix_sends_the_error_and_the_cell_and_offers_the_fix_as_a_new_cell(fix_kernel, fix_server):
    fix_server.reset()
    failing_cell = "def ratio(a, b):\n    return a / b\n\nratio(1, 0)"
    failing = fix_kernel.execute(failing_cell)
    assert failing.status == "error"
    n = failing.reply["content"]["execution_count"]
    fix_server.enqueue(Reply.answer(["b is 0.\n\n```python\n", FIXED, "\n```\n"]))
    run = fix_kernel.execute("%ollama fix llama3.2")
    assert run.status == "ok", run.reply
    (request,) = [r.json() for r in fix_server.requests if r.path == "/api/chat"]
    assert request["model"] == "llama3.2"
    (message,) = request["messages"]  # outside any conversation
    prompt = message["content"]
    assert f"```python\n{failing_cell}\n```" in prompt
    assert "ZeroDivisionError: division by zero" in prompt
    assert f"Cell In[{n}], line 4, in <module>" in prompt
    assert ", line 2, in ratio\n    return a / b" in prompt
    assert "\x1b[" not in prompt  # plain text, no colours
    assert run.reply["content"]["payload"] == [
        {"source": "set_next_input", "text": FIXED, "replace": False}
    ]
    assert "new cell below" in run.stream_text
    # The failing cell is never overwritten: the payload adds a cell, it replaces none.
    assert all(not p["replace"] for p in run.reply["content"]["payload"])


def test_explain_sends_the_same_error_and_inserts_nothing(fix_kernel, fix_server):
    fix_server.reset()
    assert fix_kernel.execute("{}['plum']").status == "error"
    fix_server.enqueue(Reply.answer("The dict has no key 'plum'."))
    run = fix_kernel.execute("%ollama explain llama3.2")
    assert run.status == "ok", run.reply
    (request,) = [r.json() for r in fix_server.requests if r.path == "/api/chat"]
    prompt = request["messages"][-1]["content"]
    assert "```python\n{}['plum']\n```" in prompt and "KeyError: 'plum'" in prompt
    assert "Explain what went wrong" in prompt
    assert run.reply["content"]["payload"] == []


def test_a_fix_that_does_not_parse_is_not_inserted_and_says_why(fix_kernel, fix_server):
    fix_server.reset()
    assert fix_kernel.execute("1 / 0").status == "error"
    fix_server.enqueue(Reply.answer("```python\nif True\n    print(1)\n```"))
    run = fix_kernel.execute("%ollama fix llama3.2 -o fixed")
    assert run.status == "ok", run.reply
    assert run.reply["content"]["payload"] == []
    said = "".join(
        m.content["text"] for m in run.of_type("stream") if m.content["name"] == "stderr"
    )
    assert "does not parse (line 1: expected ':')" in said and "fixed.code" in said
    assert fix_kernel.value("fixed.code") == "if True\n    print(1)"
