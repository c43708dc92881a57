"""The answer log with real SQLite files: writing while streaming, search, replay rules, export.

Answers come from the real streaming loop (:func:`ollama_magic.stream.stream_answer`) against
the fake Ollama over loopback; what a later reader sees is read back through a second
:class:`AnswerLog` on the same folder, as another kernel would.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from ollama_magic.backends import build_chat_body, make_backend
from ollama_magic.commands import CommandContext
from ollama_magic.errors import OllamaUsageError
from ollama_magic.events import AnswerDelta, Done, ThinkingDelta
from ollama_magic.log import AnswerLog, LogEntry, Records, log_command, replay_stream
from ollama_magic.result import OllamaResponse
from ollama_magic.stream import CancelToken, stream_answer
from ollama_magic.testing import FakeOllama, Gate, Reply

WHERE = {"kernel": "kernel-1", "cell": "cell-7"}


def body(prompt: str = "Why is the sky blue?", model: str = "llama3.2", **extra: Any) -> dict:
    return build_chat_body(model, [{"role": "user", "content": prompt}], **extra)


class FlushingSink:
    """A sink that does what the streaming loop will: keep UTF-8 buffers and flush them."""

    def __init__(self, entry: LogEntry, flushed_twice: threading.Event | None = None) -> None:
        self.entry = entry
        self.answer_bytes = bytearray()
        self.thinking_bytes = bytearray()
        self.flushes = 0
        self.flushed_twice = flushed_twice

    def start(self) -> None:
        pass

    def _flush(self) -> None:
        self.entry.flush(self.answer_bytes, self.thinking_bytes)
        self.flushes += 1
        if self.flushes == 2 and self.flushed_twice is not None:
            self.flushed_twice.set()

    def thinking(self, text: str) -> None:
        self.thinking_bytes += text.encode()
        self._flush()

    def answer(self, text: str) -> None:
        self.answer_bytes += text.encode()
        self._flush()

    def trace(self, line: bytes, at: float) -> None:
        pass


def ask(
    log: AnswerLog, server: FakeOllama, request: dict, reply: Reply | None = None
) -> tuple[OllamaResponse, LogEntry]:
    """One answer through the real loop, logged as the magic will log it."""
    if reply is not None:
        server.enqueue(reply)
    backend = make_backend(request["model"], server.url, "ollama", 10.0)
    entry = log.begin(request, backend=backend.kind, host=backend.base_url, digest=None, **WHERE)
    assert entry is not None
    result = stream_answer(backend, request, FlushingSink(entry), out_name="r")
    entry.end(result)
    return result, entry


@pytest.fixture
def server() -> Any:
    with FakeOllama(models=("llama3.2", "qwen3:8b"), thinking_models=("qwen3:8b",)) as fake:
        yield fake


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_round_trip_through_the_streaming_loop(home: Path, server: FakeOllama) -> None:
    gate, flushed = Gate(), threading.Event()
    server.enqueue(
        Reply.answer(
            ["Ray", "leigh ", "scattering."], thinking=["Short waves."], gate=gate, gate_after=2
        )
    )
    request = body(model="qwen3:8b", think=True, options={"seed": 3})
    backend = make_backend("qwen3:8b", server.url, "ollama", 10.0)
    with AnswerLog(home, enabled=True) as log:
        entry = log.begin(request, backend="ollama", host=server.url, digest=None, **WHERE)
        assert entry is not None
        results: list[OllamaResponse] = []
        worker = threading.Thread(
            target=lambda: results.append(
                stream_answer(backend, request, FlushingSink(entry, flushed), out_name="r")
            )
        )
        worker.start()
        try:
            assert flushed.wait(10)
            # Another reader (as another kernel would) sees the answer while it streams.
            with AnswerLog(home, enabled=True) as reader:
                [live] = reader.search()
            assert live.status == "streaming"
            assert live.thinking == "Short waves."
            assert live.text == "Ray"
        finally:
            gate.open()
            worker.join(10)
        [result] = results
        entry.end(result)

    with AnswerLog(home, enabled=True) as reader:
        [record] = reader.search()
    assert record.id == entry.id
    assert (record.text, record.thinking) == ("Rayleigh scattering.", "Short waves.")
    assert (record.status, record.model, record.prompt) == (
        "complete",
        "qwen3:8b",
        request["messages"][-1]["content"],
    )
    assert record.stats["eval_count"] == result.stats.eval_count
    assert record.provenance["digest"] == result.provenance["digest"] is not None
    assert record.digest == result.provenance["digest"]
    assert record.request["options"] == {"seed": 3} and record.request["think"] is True
    assert (record.host, record.kernel, record.cell) == (server.url, "kernel-1", "cell-7")
    assert record.ended is not None and record.ended >= record.started


def test_failed_and_interrupted_answers_keep_their_partial_text(
    home: Path, server: FakeOllama
) -> None:
    log = AnswerLog(home, enabled=True)
    failed, _ = ask(log, server, body("one"), Reply.answer(["Half ", "way"], error="boom"))
    assert failed.error is not None
    gate = Gate()
    server.enqueue(Reply.answer(["Stopped ", "here"], gate=gate, gate_after=1))
    request = body("two")
    backend = make_backend("llama3.2", server.url, "ollama", 10.0)
    entry = log.begin(request, backend="ollama", host=server.url, digest=None, **WHERE)
    assert entry is not None
    cancel = CancelToken()

    def stop_at_the_gate() -> None:
        gate.wait_reached()
        cancel.cancel()

    threading.Thread(target=stop_at_the_gate).start()
    interrupted = stream_answer(backend, request, FlushingSink(entry), out_name="r", cancel=cancel)
    gate.open()
    entry.end(interrupted)
    two, one = AnswerLog(home).search()
    assert (one.status, one.text) == ("failed", "Half way")
    assert one.error is not None and "boom" in one.error
    assert (two.status, two.text) == ("interrupted", "Stopped ")


def test_search_by_words_model_and_count(home: Path, server: FakeOllama) -> None:
    log = AnswerLog(home, enabled=True)
    ask(log, server, body("Tell me about the sky"), Reply.answer("Blue because of scattering."))
    ask(log, server, body("And the sea?", model="qwen3:8b"), Reply.answer("Also blue, mostly."))
    ask(log, server, body("What's 2+2?"), Reply.answer("4"))
    assert [r.prompt for r in log.search("blue")] == ["And the sea?", "Tell me about the sky"]
    assert [r.prompt for r in log.search("SKY scatter")] == ["Tell me about the sky"]
    assert [r.prompt for r in log.search("blue", model="qwen3")] == ["And the sea?"]
    assert [r.prompt for r in log.search(n=2)] == ["What's 2+2?", "And the sea?"]
    assert log.search('what\'s "2+2" ?') and not log.search("purple")
    assert log.search("2+2 OR NEAR(*") == []  # FTS syntax in the text is only words


def test_lookup_matches_only_an_identical_request_with_the_same_digest(home: Path) -> None:
    log = AnswerLog(home, enabled=True)
    image = base64.b64encode(b"\x89PNG pixels").decode()
    request = build_chat_body(
        "llama3.2",
        [{"role": "user", "content": "Describe", "images": [image]}],
        options={"temperature": 0.5, "seed": 1},
        format="json",
    )
    where = {"backend": "ollama", "host": "http://h:11434"}
    entry = log.begin(request, digest="sha256:aaa", **where, **WHERE)
    assert entry is not None
    assert log.lookup(request, digest="sha256:aaa", **where) is None  # still streaming
    entry.end(OllamaResponse('{"a": 1}', model="llama3.2", done_reason="stop", request=request))

    found = log.lookup(dict(request, keep_alive="5m"), digest="sha256:aaa", **where)
    assert found is not None and found.id == entry.id and found.text == '{"a": 1}'
    same_image_again = build_chat_body(
        "llama3.2",
        [{"role": "user", "content": "Describe", "images": [image]}],
        options={"seed": 1.0, "temperature": 0.5},
        format="json",
    )
    assert log.lookup(same_image_again, digest="sha256:aaa", **where) is not None
    other_image = json.loads(json.dumps(request))
    other_image["messages"][0]["images"] = [base64.b64encode(b"other").decode()]
    for changed, digest, place in [
        (request, "sha256:bbb", where),  # the model was re-pulled: new weights
        (request, None, where),  # unknown digest never replays
        (dict(request, options={"temperature": 0.6, "seed": 1}), "sha256:aaa", where),
        (dict(request, format=None), "sha256:aaa", where),
        (dict(request, think=False), "sha256:aaa", where),
        (dict(request, tools=[{"type": "function"}]), "sha256:aaa", where),
        (other_image, "sha256:aaa", where),
        (request, "sha256:aaa", {**where, "host": "http://other:11434"}),
        (request, "sha256:aaa", {**where, "backend": "openai"}),
    ]:
        assert log.lookup(changed, digest=digest, **place) is None, (changed, digest, place)


def test_the_digest_learned_at_the_end_is_the_one_compared(home: Path, server: FakeOllama) -> None:
    log = AnswerLog(home, enabled=True)
    request = body("Cache me")
    result, entry = ask(log, server, request)
    digest = result.provenance["digest"]
    assert digest
    found = log.lookup(request, backend="ollama", host=server.url, digest=digest)
    assert found is not None and found.id == entry.id and found.text == result.text


def test_files_are_private(home: Path, server: FakeOllama) -> None:
    with AnswerLog(home, enabled=True) as log:
        ask(log, server, body())
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
        names = sorted(p.name for p in home.iterdir())
        assert names == ["log.sqlite3", "log.sqlite3-shm", "log.sqlite3-wal"]
        for path in home.iterdir():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_images_are_hashed_and_key_like_fields_dropped(home: Path) -> None:
    image = base64.b64encode(b"secret pixels " * 50).decode()
    request = build_chat_body(
        "llama3.2",
        [{"role": "user", "content": "Look", "images": [image], "api_key": "sk-hidden1"}],
        options={"seed": 1, "Authorization": "Bearer sk-hidden2"},
    )
    request["api_key"] = "sk-hidden3"
    with AnswerLog(home, enabled=True) as log:
        entry = log.begin(request, backend="openai", host="http://h/v1", digest=None, **WHERE)
        assert entry is not None
        entry.end(OllamaResponse("ok", model="llama3.2", done_reason="stop", request=request))
        [record] = log.search()
    assert request["messages"][0]["images"] == [image]  # the body that is sent is untouched
    assert record.request["messages"][0]["images"][0].startswith("sha256:")
    assert "api_key" not in record.request and record.request["options"] == {"seed": 1}
    stored = b"".join(p.read_bytes() for p in home.iterdir())
    assert image[:40].encode() not in stored
    assert b"sk-hidden" not in stored


def test_off_switch_writes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        AnswerLog(home, enabled=False).begin(body(), backend="o", host="h", digest="d", **WHERE)
        is None
    )
    monkeypatch.setenv("OLLAMA_MAGIC_LOG", "off")
    log = AnswerLog(home)
    assert not log.enabled
    assert log.begin(body(), backend="o", host="h", digest="d", **WHERE) is None
    assert not home.exists()
    monkeypatch.setenv("OLLAMA_MAGIC_LOG", "on")
    monkeypatch.setenv("OLLAMA_MAGIC_HOME", str(home / "elsewhere"))
    log = AnswerLog()
    assert log.enabled and log.path == home / "elsewhere" / "log.sqlite3"


def test_text_that_sqlite_cannot_take_as_is(home: Path) -> None:
    log = AnswerLog(home, enabled=True)
    entry = log.begin(body("nul\x00 and \ud800"), backend="o", host="h", digest=None, **WHERE)
    assert entry is not None
    entry.flush(b"a\x00b ", b"")
    entry.end(OllamaResponse("a\x00b \ud800 end", model="m", done_reason="stop"))
    [record] = log.search()
    assert record.text == "a\x00b \ufffd end" and record.prompt == "nul\x00 and \ufffd"
    assert log.failure is None


def test_forget_deletes_records_and_their_words(home: Path, server: FakeOllama) -> None:
    log = AnswerLog(home, enabled=True)
    _, first = ask(log, server, body("Remember zanzibarquux"))
    _, second = ask(log, server, body("Keep this one"))
    _, third = ask(log, server, body("And this one"))
    assert b"zanzibarquux" in b"".join(p.read_bytes() for p in home.iterdir())
    assert log.forget([first.id, 12345]) == 1
    assert log.search("zanzibarquux") == []
    assert [r.id for r in log.search()] == [third.id, second.id]
    log.close()
    stored = b"".join(p.read_bytes() for p in home.iterdir())
    assert b"zanzibarquux" not in stored
    log = AnswerLog(home, enabled=True)
    assert log.forget(everything=True) == 2
    assert log.search() == []
    _, fourth = ask(log, server, body("After"))
    assert fourth.id > third.id  # numbers are never reused


def test_export_markdown_and_json_lines(home: Path, tmp_path: Path, server: FakeOllama) -> None:
    log = AnswerLog(home, enabled=True)
    ask(log, server, body("First"), Reply.answer("# Title\n\n<img src=x onerror=alert(1)>"))
    ask(log, server, body("Second ```"), Reply.answer("Plain."))
    records = log.search()
    log.export(records, tmp_path / "out.md")
    log.export(records, tmp_path / "out.jsonl")
    markdown = (tmp_path / "out.md").read_text()
    html = MarkdownIt("commonmark", {"html": True}).render(markdown)
    assert "<img" not in html and "&lt;img" in html
    assert "<h1>Title</h1>" in html and "Second ```" in html
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["prompt"] for r in rows] == ["Second ```", "First"]
    assert rows[1]["text"].startswith("# Title") and rows[1]["status"] == "complete"
    assert rows[0]["request"]["messages"][-1]["content"] == "Second ```"
    with pytest.raises(OllamaUsageError, match=r"\.md .*\.jsonl"):
        log.export(records, tmp_path / "out.txt")


def test_records_table_escapes_untrusted_text(home: Path) -> None:
    evil = "<img src=x onerror=alert(1)>"
    log = AnswerLog(home, enabled=True)
    entry = log.begin(body(f"p {evil} | x"), backend="o", host="h", digest=None, **WHERE)
    assert entry is not None
    entry.end(OllamaResponse(f"{evil} [a](javascript:b) `c`", model=evil, done_reason="stop"))
    records = log.search()
    html = (
        MarkdownIt("commonmark", {"html": True}).enable("table").render(records._repr_markdown_())
    )
    assert "<table>" in html and "<img" not in html and "<a " not in html
    assert html.count("<td") == 6  # the | in the prompt did not split the row
    text = repr(records)
    assert "complete" in text and "\n" not in text.split("\n", 1)[1]
    assert "\x1b" not in repr(
        Records([records[0].__class__(**{**records[0].__dict__, "model": "\x1b[31mred"})])
    )


def test_a_long_list_shows_a_short_table(home: Path) -> None:
    log = AnswerLog(home, enabled=True)
    for i in range(55):
        entry = log.begin(body(f"question {i}"), backend="o", host="h", digest=None, **WHERE)
        assert entry is not None
        entry.end(OllamaResponse(f"answer {i}", model="m", done_reason="stop"))
    records = log.search(n=100)
    assert len(records) == 55 and records[0].prompt == "question 54"
    table = records._repr_markdown_()
    assert "| question 4 |" not in table and "| question 5 |" in table
    assert table.endswith("… and 5 older (all of them are in this list).")
    assert repr(records).endswith("… and 5 older (all of them are in this list).")


def test_replay_through_the_streaming_loop(home: Path, server: FakeOllama) -> None:
    log = AnswerLog(home, enabled=True)
    request = body(model="qwen3:8b", think=True)
    original, _ = ask(log, server, request, Reply.answer("x" * 1500, thinking="Hmm."))
    record = log.lookup(
        request, backend="ollama", host=server.url, digest=original.provenance["digest"]
    )
    assert record is not None
    logged = record

    class ReplayBackend:
        """What ``--cache`` puts in place of the server: the log's replay as the stream."""

        kind, base_url = "ollama", server.url

        def stream_chat(self, body: dict, *, trace: Any = None) -> Any:
            return replay_stream(logged)

        def installed_models(self, **kwargs: Any) -> dict:
            return {}

    replayed = stream_answer(ReplayBackend(), request, FlushingSink(_entry(log)), out_name="r")
    assert replayed.text == original.text and replayed.thinking == original.thinking
    assert replayed.complete and replayed.model == "qwen3:8b"
    assert replayed.stats.eval_count == original.stats.eval_count

    events = list(replay_stream(record))
    assert isinstance(events[0], ThinkingDelta) and isinstance(events[-1], Done)
    assert sum(isinstance(e, AnswerDelta) for e in events) > 1  # it streams in pieces

    cancel = CancelToken()

    class StopAfterFirstPiece(FlushingSink):
        def answer(self, text: str) -> None:
            super().answer(text)
            cancel.cancel()  # as the stop button of a --bg answer does, from another thread

    stopped = stream_answer(
        ReplayBackend(), request, StopAfterFirstPiece(_entry(log)), out_name="r", cancel=cancel
    )
    assert stopped.interrupted and stopped.text == original.text[:512]


def _entry(log: AnswerLog) -> LogEntry:
    entry = log.begin(body("replay"), backend="ollama", host="h", digest=None, **WHERE)
    assert entry is not None
    return entry


def run_log(log: AnswerLog, line: str) -> Records:
    command = log_command(log)
    return command(CommandContext(shell=None, backend=None, live=False), line.split())  # type: ignore[arg-type]


def test_log_subcommand(home: Path, tmp_path: Path, server: FakeOllama) -> None:
    log = AnswerLog(home, enabled=True)
    for prompt in ("alpha one", "beta two", "alpha three"):
        ask(log, server, body(prompt))
    assert [r.prompt for r in run_log(log, "alpha")] == ["alpha three", "alpha one"]
    assert [r.prompt for r in run_log(log, "-n 1")] == ["alpha three"]
    assert run_log(log, "--model qwen3") == []
    exported = run_log(log, f"alpha --export {tmp_path / 'a.jsonl'}")
    assert len(exported) == 2 and "Wrote 2 records" in exported._repr_markdown_()
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
    first = run_log(log, "")[-1].id
    assert "Deleted 1 record." in repr(run_log(log, f"--forget {first}"))
    assert "Deleted 2 records." in repr(run_log(log, "--forget --all"))
    assert repr(run_log(log, "")) == "No answers in the log match."
    for bad, message in [
        ("-n zero", "positive whole number"),
        ("-n", "needs a value"),
        ("--all", "--forget --all"),
        ("--forget", "record numbers"),
        ("--forget x", "record numbers"),
        ("--forget 1 --all", "record numbers"),
        ("alpha --forget 1", "by number only"),
        ("--forget 1 alpha", "not .alpha."),
        ("--colour", "Unknown option"),
        ("--export out.txt", ".jsonl"),
    ]:
        with pytest.raises(OllamaUsageError, match=message):
            run_log(log, bad)


def test_reading_a_missing_log_is_empty(home: Path) -> None:
    log = AnswerLog(home, enabled=True)
    assert log.search("x") == [] and log.forget(everything=True) == 0
    assert log.lookup(body(), backend="o", host="h", digest="d") is None
    assert not home.exists()


def test_sqlite_file_is_a_valid_database_while_written(home: Path, server: FakeOllama) -> None:
    with AnswerLog(home, enabled=True) as log:
        ask(log, server, body())
        check = sqlite3.connect(home / "log.sqlite3")
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        check.close()


def test_a_deferred_record_is_written_once_at_its_end_or_first_flush(home: Path) -> None:
    """``--map`` items defer their record: one write for a short answer, the same record."""
    answer = OllamaResponse("Blue light scatters.", model="llama3.2", done_reason="stop")
    answer.provenance = {"digest": "sha256:abc"}
    with AnswerLog(home, enabled=True) as log:
        short = log.begin(
            body("short"), backend="ollama", host="h", digest=None, **WHERE, defer=True
        )
        assert short is not None and short.id is None
        assert log.search() == []  # nothing written before the answer ends or flushes
        short.end(answer)
        long = log.begin(body("long"), backend="ollama", host="h", digest=None, **WHERE, defer=True)
        assert long is not None
        long.flush(b"Half", b"")
        with AnswerLog(home, enabled=True) as reader:
            during = {r.prompt: (r.status, r.text) for r in reader.search()}
        long.end(OllamaResponse("Half of it.", model="llama3.2", done_reason="stop"))
        records = {r.prompt: r for r in log.search()}
    assert during == {"short": ("complete", "Blue light scatters."), "long": ("streaming", "Half")}
    assert short.id == records["short"].id and long.id == records["long"].id
    assert (records["short"].digest, records["short"].kernel) == ("sha256:abc", WHERE["kernel"])
    assert (records["long"].status, records["long"].text) == ("complete", "Half of it.")
    assert [r.prompt for r in log.search("scatters")] == ["short"]  # indexed for search
