"""``%ollama`` model management (list, pull, ps, show, unload, version) over real HTTP.

Most tests drive IPython's own shell (the terminal views); the last ones run a real kernel to
check what a notebook front end receives from ``%ollama pull``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ollama_magic import pull
from ollama_magic.backends import make_backend
from ollama_magic.commands import CommandContext
from ollama_magic.errors import (
    Interrupted,
    ModelNotFoundError,
    OllamaUsageError,
    StreamErrorLine,
    TruncatedStreamError,
)
from ollama_magic.manage import (
    SUBCOMMANDS,
    ModelDetails,
    PullError,
    describe_subcommands,
    ensure_model,
    loaded_models,
    pull_model,
)
from ollama_magic.pull import PullState
from ollama_magic.testing import FakeOllama, Reply

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LAYER = "sha256:dde5aa3fc5ffc17176b5e8bdc82f587b24b2678c6c66101bf7da77af9f7ccdff"


def magic(shell, line: str) -> Any:
    return shell.run_line_magic("ollama", line)


def paths(server: FakeOllama) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests]


@pytest.fixture
def pull_server(shell, monkeypatch) -> Iterator[FakeOllama]:
    """A server where ``phi3`` can be pulled; the shell points at it."""
    with FakeOllama(models=("llama3.2",), thinking_models=(), pullable=("phi3",)) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.host)
        yield fake


class ScriptedClient:
    """Stands in for a backend's pull where the fake cannot produce a case (a Ctrl+C inside
    the stream)."""

    base_url = "http://scripted.invalid"

    def __init__(self, lines: list[dict[str, Any]], end: BaseException | None = None) -> None:
        self.lines = lines
        self.end = end
        self.closed = False
        self.bodies: list[dict[str, Any]] = []

    def pull(self, name: str) -> Iterator[dict[str, Any]]:
        self.bodies.append({"model": name, "stream": True})

        def lines() -> Iterator[dict[str, Any]]:
            try:
                yield from self.lines
                if self.end is not None:
                    raise self.end
            finally:
                self.closed = True

        return lines()


def layer(completed: int | None, total: int = 2_000_000_000) -> dict[str, Any]:
    line = {"status": f"pulling {LAYER[7:19]}", "digest": LAYER, "total": total}
    if completed is not None:
        line["completed"] = completed
    return line


# -- list ------------------------------------------------------------------------------------


def test_list_is_data_and_a_markdown_table(shell, server, monkeypatch):
    monkeypatch.setattr("ollama_magic.backends.local.list_local_models", lambda: [])
    table = magic(shell, "list")
    assert isinstance(table, list)
    assert [row["name"] for row in table] == ["llama3.2:latest", "qwen3:8b"]
    row = table[0]
    assert set(row) == {
        "name",
        "size",
        "parameter_size",
        "quantization_level",
        "family",
        "modified_at",
        "digest",
    }
    assert isinstance(row["size"], int) and row["family"] == "llama"
    markdown = table._repr_markdown_().splitlines()
    assert markdown[0] == "| name | size | parameters | quantization | modified |"
    assert markdown[1] == "|---|---:|---|---|---|"
    assert markdown[2].startswith("| llama3.2:latest | ")
    assert " GB | 3.2B | Q4\\_K\\_M | 2025-11-01 |" in markdown[2]
    assert not hasattr(table, "_repr_html_")
    assert paths(server) == ["GET /api/tags"]


def test_list_prints_a_text_table_in_a_terminal(shell, server, capsys):
    assert shell.run_cell("%ollama list").success
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines.pop(0).startswith("Out[")
    assert "name" in lines[0] and "quantization" in lines[0]
    assert lines[1].startswith("llama3.2:latest ") and "Q4_K_M" in lines[1]
    assert lines[2].startswith("qwen3:8b ")


def test_models_is_an_alias_of_list(shell, server):
    assert magic(shell, "models") == magic(shell, "list")


def test_empty_install_says_how_to_pull(shell, monkeypatch):
    monkeypatch.setattr("ollama_magic.backends.local.list_local_models", lambda: [])
    with FakeOllama(models=(), thinking_models=()) as empty:
        monkeypatch.setenv("OLLAMA_HOST", empty.host)
        table = magic(shell, "list")
        url = empty.url
    assert table == []
    markdown = table._repr_markdown_()
    assert "\n" not in markdown
    assert "%ollama pull llama3.2" in markdown and "ollama pull llama3.2" in markdown
    assert url in markdown
    assert "`" not in repr(table) and "No models are installed" in repr(table)


def test_model_names_cannot_break_the_markdown(shell, monkeypatch):
    name = "evil|<img src=x onerror=alert(1)>&amp;[x](javascript:y)"
    with FakeOllama(models=(name,), thinking_models=()) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.host)
        table = magic(shell, "list")
    assert table[0]["name"] == name  # the data stays verbatim
    row = table._repr_markdown_().splitlines()[2]
    assert "<img" not in row and "&lt;img" in row
    assert "&amp;amp;" in row and "\\[x\\]" in row
    assert row.replace("\\|", "").count("|") == 6  # five cells, no extra column


def test_list_takes_no_arguments(shell, server):
    with pytest.raises(OllamaUsageError, match="takes no arguments"):
        magic(shell, "list everything")
    assert not server.requests


# -- ps --------------------------------------------------------------------------------------


def test_ps_with_nothing_loaded(shell, server):
    table = magic(shell, "ps")
    assert table == []
    assert "No model is loaded" in table._repr_markdown_()
    assert "--keep-alive" in repr(table)
    assert paths(server) == ["GET /api/ps"]


def test_ps_table_from_a_real_ps_answer(server):
    now = datetime.now(timezone.utc)
    soon = (now + timedelta(minutes=4, seconds=10)).isoformat().replace("+00:00", "Z")
    # The shape of GET /api/ps (ollama-api.md T16), with the expiry moved near now.
    models = [
        {
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "size": 3595234304,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {"family": "llama", "parameter_size": "3.2B", "quantization_level": "Q4"},
            "expires_at": soon,
            "size_vram": 3595234304,
            "context_length": 4096,
        },
        {
            "name": "qwen3:8b",
            "model": "qwen3:8b",
            "size": 6_000_000_000,
            "details": {"family": "qwen3", "parameter_size": "8.2B"},
            "expires_at": "2318-08-19T03:04:05.123456789+01:00",
            "size_vram": 3_000_000_000,
            "context_length": 8192,
        },
    ]
    server.enqueue_for("/api/ps", Reply.raw(200, json.dumps({"models": models})))
    ctx = CommandContext(None, make_backend("", server.url), live=False)
    table = loaded_models(ctx)
    assert [r["name"] for r in table] == ["llama3.2:latest", "qwen3:8b"]
    assert table[0]["size_vram"] == 3595234304 and table[0]["parameter_size"] == "3.2B"
    markdown = table._repr_markdown_().splitlines()
    assert markdown[0] == "| name | size | processor | context | unloads |"
    assert markdown[2] == "| llama3.2:latest | 3.6 GB | 100% GPU | 4096 | in 4 min |"
    assert markdown[3] == "| qwen3:8b | 6.0 GB | 50%/50% CPU/GPU | 8192 | forever |"
    assert "in 4 min" in repr(table) and "forever" in repr(table)


@pytest.mark.skipif(
    not hasattr(FakeOllama, "loaded"),
    reason="FakeOllama's /api/ps always answers an empty list; it needs to track loaded models",
)
def test_ps_lists_a_model_after_use_and_unload_frees_it(shell, server):
    assert shell.run_cell("%%ollama llama3.2\nHi").success
    table = magic(shell, "ps")
    assert [r["name"] for r in table] == ["llama3.2:latest"]
    assert "in 5 min" in table._repr_markdown_()
    magic(shell, "unload llama3.2")
    assert magic(shell, "ps") == []


# -- show ------------------------------------------------------------------------------------


def test_show_renders_a_card(shell, server):
    details = magic(shell, "show qwen3:8b")
    assert isinstance(details, dict) and isinstance(details, ModelDetails)
    assert server.requests[-1].json() == {"model": "qwen3:8b"}
    assert details.capabilities == ["completion", "thinking"]
    assert details.context_length == 131072
    assert details["details"]["family"] == "qwen3"  # Ollama's answer, as is
    markdown = details._repr_markdown_()
    assert markdown.startswith("**qwen3:8b**")
    for line in (
        "| capabilities | completion, thinking |",
        "| family | qwen3 |",
        "| parameters | 8B |",
        "| quantization | Q4\\_K\\_M |",
        "| context length | 131,072 tokens |",
    ):
        assert line in markdown
    assert "**Parameters**\n\n```\ntemperature 0.8\n```" in markdown
    assert "**Template**\n\n```\n{{ .Prompt }}\n```" in markdown
    text = repr(details)
    assert text.startswith("qwen3:8b\n") and "context length  131,072 tokens" in text


def test_show_keeps_templates_and_system_prompts_inside_their_blocks():
    details = ModelDetails(
        "m",
        {
            "template": "```\n{{ .System }}\n```",
            "system": "You are <b>terse</b>.",
            "model_info": {"general.architecture": "gemma3", "gemma3.context_length": 8192},
            "capabilities": ["completion", "vision"],
        },
    )
    markdown = details._repr_markdown_()
    assert "**Template**\n\n````\n```\n{{ .System }}\n```\n````" in markdown
    assert "**System prompt**\n\n```\nYou are <b>terse</b>.\n```" in markdown
    assert details.context_length == 8192


def test_show_unknown_model_names_the_fix(shell, server):
    result = shell.run_cell("%ollama show llama9")
    err = result.error_in_exec
    assert isinstance(err, ModelNotFoundError)
    assert "llama9" in str(err) and "ollama pull llama9" in str(err)


@pytest.mark.parametrize("line", ["show", "show a b", "show --verbose", "pull", "unload"])
def test_commands_that_need_a_name_say_so(shell, server, line):
    with pytest.raises(OllamaUsageError, match="takes one model name"):
        magic(shell, line)
    assert not server.requests


# -- unload, version, help -------------------------------------------------------------------


def test_unload_frees_the_model(shell, server, capsys):
    assert magic(shell, "unload llama3.2") is None
    assert capsys.readouterr().out == "Unloaded llama3.2.\n"
    request = server.requests[-1]
    assert request.path == "/api/generate"
    assert request.json() == {"model": "llama3.2", "keep_alive": 0}


def test_unload_unknown_model(shell, server):
    with pytest.raises(ModelNotFoundError, match="llama9"):
        magic(shell, "unload llama9")


def test_version_is_the_version_string_and_shows_the_host(shell, server):
    version = magic(shell, "version")
    assert version == "0.33.0" and version.host == server.url
    data, _ = shell.display_formatter.format(version)
    assert data["text/plain"] == f"Ollama 0.33.0 at {server.url}"


def test_describe_subcommands_is_one_line_naming_each():
    text = describe_subcommands()
    assert "\n" not in text
    for name in SUBCOMMANDS:
        assert name in text
    assert "pull NAME: download a model" in text and "list (or models)" in text


# -- pull ------------------------------------------------------------------------------------


def test_pull_in_a_terminal_rewrites_one_line_then_reports(shell, pull_server, capsys):
    assert not pull_server.has_model("phi3")
    assert magic(shell, "pull phi3") is None
    assert pull_server.requests[-1].json() == {"model": "phi3", "stream": True}
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n")  # one line, rewritten with \r
    assert "\rphi3: pulling manifest" in out
    final = out.rsplit("\r", 1)[-1]
    assert final.startswith("Pulled phi3 (2.0 GB) in ") and final.rstrip().endswith(" s.")
    assert pull_server.has_model("phi3")
    assert "phi3:latest" in [row["name"] for row in magic(shell, "list")]


def test_pull_unknown_model_points_to_the_library(shell, pull_server, capsys):
    result = shell.run_cell("%ollama pull llama9")
    err = result.error_in_exec
    assert isinstance(err, ModelNotFoundError) and err.model == "llama9"
    assert "'llama9'" in err.message and "ollama.com/library" in err.message
    assert "file does not exist" in err.message
    out = capsys.readouterr().out
    assert "Pulling llama9 failed." in out
    assert "Model not found" in out and "Traceback" not in out


def test_pull_interrupt_hangs_up_and_says_how_to_resume(shell, monkeypatch, capsys):
    with FakeOllama(models=(), thinking_models=(), pullable=("phi3",), default_delay=0.05) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.host)
        shown: list[str] = []

        def show(self, state: PullState) -> None:
            shown.append(state.line())
            if state.current is not None and state.current.completed:
                raise KeyboardInterrupt  # the stop button, while bytes are arriving

        monkeypatch.setattr(pull._TerminalProgress, "show", show)
        monkeypatch.setattr(pull, "PROGRESS_INTERVAL", 0.0)  # draw every line
        result = shell.run_cell("%ollama pull phi3")
        assert fake.wait_for_hangup()  # the connection was closed, so Ollama stops
    err = result.error_in_exec
    assert isinstance(err, Interrupted)
    assert "%ollama pull phi3" in err.message and "resume" in err.message
    out = capsys.readouterr().out
    assert "Pulling phi3 stopped at 50% (1.0 GB of 2.0 GB)." in out
    assert "Traceback" not in out


def test_interrupt_while_waiting_for_the_next_line_closes_the_stream(capsys):
    client = ScriptedClient([{"status": "pulling manifest"}, layer(None)], KeyboardInterrupt())
    ctx = CommandContext(None, client, live=False)
    with pytest.raises(Interrupted):
        pull_model(ctx, "phi3")
    assert client.closed
    assert "Pulling phi3 stopped at 0% (0 B of 2.0 GB)." in capsys.readouterr().out


def test_pull_error_mid_download_says_what_to_do(capsys):
    error = StreamErrorLine("x", "max retries exceeded: connection reset by peer")
    client = ScriptedClient([layer(None), layer(500_000_000)], error)
    with pytest.raises(PullError) as caught:
        pull_model(CommandContext(None, client, live=False), "phi3")
    message = caught.value.message
    assert "Pulling 'phi3' failed: max retries exceeded" in message and "pull again" in message
    assert caught.value.title == "The download failed"
    assert client.closed
    assert "Pulling phi3 failed at 25% (500.0 MB of 2.0 GB)." in capsys.readouterr().out


def test_pull_stream_ending_without_success_is_truncation(capsys):
    client = ScriptedClient([{"status": "pulling manifest"}, layer(10)])
    with pytest.raises(TruncatedStreamError, match="pull again to resume"):
        pull_model(CommandContext(None, client, live=False), "phi3")


def test_pull_progress_is_throttled(capsys):
    lines = [layer(None)] + [layer(i * 1_000_000) for i in range(2000)]
    lines += [layer(2_000_000_000), {"status": "success"}]
    client = ScriptedClient(lines)
    ctx = CommandContext(None, client, live=False)
    pull_model(ctx, "phi3")
    out = capsys.readouterr().out
    assert out.count("\r") < 40  # not one redraw per progress line
    assert "Pulled phi3 (2.0 GB)" in out


def test_layer_speed_and_eta():
    clock = iter([0.0, 0.0, 2.0, 2.0, 2.0]).__next__
    state = PullState("phi3", clock=clock)
    state.feed(layer(0, total=1_000_000_000))
    state.feed(layer(100_000_000, total=1_000_000_000))
    assert state.current is not None
    assert state.current.speed == 50_000_000
    assert state.line() == "phi3: pulling dde5aa3fc5ff  100.0 MB / 1.0 GB  10%  50.0 MB/s  ETA 18 s"
    assert state.fraction == pytest.approx(0.1)


def test_pull_with_a_connection_error_needs_no_progress(shell, closed_port, monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port}")
    result = shell.run_cell("%ollama pull phi3")
    assert "ollama serve" in str(result.error_in_exec)
    assert "Pulling phi3 failed." in capsys.readouterr().out


# -- ensure_model ----------------------------------------------------------------------------


def test_ensure_model_pulls_only_what_is_missing(pull_server, capsys):
    ctx = CommandContext(None, make_backend("", pull_server.url), live=False)
    ensure_model(ctx, "llama3.2")
    ensure_model(ctx, "llama3.2:latest")
    ensure_model(ctx, "LLAMA3.2")
    assert paths(pull_server) == ["GET /api/tags"] * 3
    ensure_model(ctx, "phi3")
    assert paths(pull_server)[-1] == "POST /api/pull"
    assert "Pulled phi3" in capsys.readouterr().out
    ensure_model(ctx, "phi3:latest")
    assert paths(pull_server).count("POST /api/pull") == 1


def test_ensure_model_unknown_name(pull_server):
    ctx = CommandContext(None, make_backend("", pull_server.url), live=False)
    with pytest.raises(ModelNotFoundError, match=r"ollama\.com/library"):
        ensure_model(ctx, "llama9")


# -- in a real kernel ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel_fake() -> Iterator[FakeOllama]:
    with FakeOllama(
        models=("llama3.2",), thinking_models=(), pullable=("phi3",), default_delay=0.02
    ) as fake:
        yield fake


@pytest.fixture(scope="module")
def kernel(kernel_fake: FakeOllama) -> Iterator[Any]:
    from kernel_driver import KernelDriver

    with KernelDriver(env={"OLLAMA_HOST": kernel_fake.host}) as driver:
        run = driver.execute("%load_ext ollama_magic")
        assert run.status == "ok", run.reply
        yield driver


def test_pull_in_a_kernel_shows_widgets_then_a_plain_summary(kernel):
    run = kernel.execute("%ollama pull phi3")
    assert run.status == "ok", run.reply
    shown = run.of_type("display_data")
    assert shown and WIDGET_MIME in shown[0].content["data"]
    display_id = shown[0].content["transient"]["display_id"]
    models = [m.content["data"]["state"].get("_model_name") for m in run.of_type("comm_open")]
    assert "FloatProgressModel" in models and "LabelModel" in models
    labels = [
        m.content["data"]["state"]["value"]
        for m in run.of_type("comm_msg")
        if isinstance(m.content["data"].get("state", {}).get("value"), str)
    ]
    assert any("/ 2.0 GB" in label for label in labels), labels
    final = run.of_type("update_display_data")[-1].content
    assert final["transient"]["display_id"] == display_id
    assert WIDGET_MIME not in final["data"]
    assert final["data"]["text/plain"].startswith("Pulled phi3 (2.0 GB) in ")
    assert final["data"]["text/markdown"].startswith("Pulled **phi3** (2.0 GB) in ")
    assert run.of_type("comm_close")  # the widgets are gone from the kernel
    assert not run.of_type("execute_result")  # pull returns nothing


def test_failed_pull_in_a_kernel_leaves_a_summary_and_the_error(kernel):
    run = kernel.execute("%ollama pull llama9")
    assert run.status == "error"
    assert run.reply is not None and run.reply["content"]["ename"] == "ModelNotFoundError"
    final = run.of_type("update_display_data")[-1].content
    assert final["data"]["text/plain"] == "Pulling llama9 failed."
    assert WIDGET_MIME not in final["data"]


def test_list_in_a_kernel_is_markdown(kernel):
    run = kernel.execute("%ollama list")
    result = run.of_type("execute_result")[0].content["data"]
    assert result["text/markdown"].startswith("| name | size |")
    assert "llama3.2:latest" in result["text/plain"]


def test_cell_magic_pull_flag_downloads_a_missing_model_first(shell, monkeypatch):
    with FakeOllama(models=("llama3.2",), pullable=("tinyllama",)) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.host)
        assert shell.run_cell("%%ollama tinyllama --pull\nHi").success
        paths = [r.path for r in fake.requests]
        assert paths.index("/api/pull") < paths.index("/api/chat")
        assert shell.user_ns["ollama_response"] == "You said: Hi"
        assert shell.run_cell("%%ollama tinyllama --pull\nAgain").success
        assert [r.path for r in fake.requests].count("/api/pull") == 1  # installed now
