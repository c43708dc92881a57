"""The answer log across real processes: a killed writer, concurrent writers, broken files.

Every writer here is a separate Python process on the same SQLite file, as kernels are. The
failure cases use real failures: a file that is not a database, a write lock held by another
process, a folder the writer may not write to, a file-size limit standing in for a full disk.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ollama_magic.log import AnswerLog, AnswerLogError
from ollama_magic.result import OllamaResponse

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX processes and modes")

BODY = {"model": "llama3.2", "messages": [{"role": "user", "content": "Tell a long story"}]}
WHERE = {"backend": "ollama", "host": "http://h:11434", "kernel": "k", "cell": "c"}


def python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """A Python child running ``code`` (dedented) with this checkout on its path."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(child: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    out, err = child.communicate(timeout=timeout)
    assert child.returncode == 0, err
    return out, err


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "answer log is off" in line]


def test_a_writer_killed_mid_answer_leaves_its_text_as_lost(tmp_path: Path) -> None:
    writer = python(
        """
        import sys
        from ollama_magic.log import AnswerLog
        log = AnswerLog(sys.argv[1], enabled=True)
        entry = log.begin({"model": "m", "messages": [{"role": "user", "content": "Story?"}]},
                          backend="ollama", host="h", digest="d", kernel="k", cell="c")
        answer = bytearray()
        for word in ("Once ", "upon ", "a ", "time"):
            answer += word.encode()
            entry.flush(answer, b"planning")
        print(entry.id, flush=True)
        sys.stdin.read()  # streaming on, until killed
        """,
        str(tmp_path),
    )
    assert writer.stdout is not None
    entry_id = int(writer.stdout.readline())
    with AnswerLog(tmp_path, enabled=True) as reader:
        [live] = reader.search()
        assert (live.id, live.status, live.text) == (entry_id, "streaming", "Once upon a time")
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    writer.communicate()

    with AnswerLog(tmp_path, enabled=True) as reader:
        [lost] = reader.search()
        assert (lost.status, lost.text, lost.thinking) == ("lost", "Once upon a time", "planning")
        assert [r.id for r in reader.search("upon")] == [entry_id]  # now in the index too
    with AnswerLog(tmp_path, enabled=True) as reader:
        assert reader.search()[0].status == "lost"


WRITER = """
    import sys
    from ollama_magic.log import AnswerLog
    from ollama_magic.result import OllamaResponse
    home, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = AnswerLog(home, enabled=True)
    for i in range(count):
        body = {"model": "m", "messages": [{"role": "user", "content": f"{name} question {i}"}]}
        entry = log.begin(body, backend="ollama", host="h", digest="d", kernel=name, cell=str(i))
        answer = bytearray()
        for piece in range(5):
            answer += f"{name}-{i}-{piece} ".encode()
            entry.flush(answer, b"")
        entry.end(OllamaResponse(answer.decode() + "end", model="m", done_reason="stop"))
    assert log.failure is None, log.failure
    print("done", flush=True)
"""

SEARCHER = """
    import sys
    from ollama_magic.log import AnswerLog
    log = AnswerLog(sys.argv[1], enabled=True)
    expected, searches = int(sys.argv[2]), 0
    while True:
        records = log.search(n=10_000)
        log.search("question")
        searches += 1
        for r in records:
            if r.status == "complete":
                assert r.text.endswith("end") and r.text.count("-") == 10, r.text
        if sum(r.status == "complete" for r in records) == expected:
            break
    print(searches, flush=True)
"""


def test_two_writers_and_a_reader_at_once(tmp_path: Path) -> None:
    count = 40
    AnswerLog(tmp_path, enabled=True).search()  # nothing yet: the writers create the file
    searcher = python(SEARCHER, str(tmp_path), str(2 * count))
    writers = [python(WRITER, str(tmp_path), name, str(count)) for name in ("alpha", "beta")]
    for writer in writers:
        out, err = finish(writer)
        assert out == "done\n" and not warnings(err), err
    out, err = finish(searcher)
    assert int(out) >= 1 and not err

    with AnswerLog(tmp_path, enabled=True) as log:
        records = log.search(n=1000)
        assert len(records) == 2 * count and {r.status for r in records} == {"complete"}
        for r in records:
            i = int(r.cell)
            assert r.prompt == f"{r.kernel} question {i}"
            assert r.text == "".join(f"{r.kernel}-{i}-{p} " for p in range(5)) + "end"
        assert len(log.search("alpha", n=1000)) == count
    check = sqlite3.connect(tmp_path / "log.sqlite3")
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert check.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
    check.close()


def test_a_corrupt_file_turns_the_log_off_with_one_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "log.sqlite3").write_bytes(b"this is not a database, " * 200)
    log = AnswerLog(tmp_path, enabled=True)
    assert log.begin(BODY, digest="d", **WHERE) is None
    assert log.begin(BODY, digest="d", **WHERE) is None
    assert log.lookup(BODY, backend="ollama", host="h", digest="d") is None
    err = capfd.readouterr().err
    [line] = warnings(err)
    assert err == line + "\n"
    assert "file is not a database" in line and str(tmp_path) in line
    with pytest.raises(AnswerLogError, match="move it away"):
        log.search()


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the log's write lock until its stdin closes."""
    AnswerLog(tmp_path, enabled=True).search()
    with AnswerLog(tmp_path, enabled=True) as log:
        log.begin(BODY, digest="d", **WHERE)  # creates the file and its tables
    holder = python(
        """
        import sqlite3, sys
        db = sqlite3.connect(sys.argv[1], isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO chunks VALUES (0, x'00', x'00')")
        print("locked", flush=True)
        sys.stdin.read()
        db.execute("ROLLBACK")
        """,
        str(tmp_path / "log.sqlite3"),
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    yield holder
    if holder.poll() is None:
        holder.kill()
        holder.communicate()


def test_a_locked_file_delays_a_flush_and_never_fails_the_answer(
    tmp_path: Path, locked: subprocess.Popen[str], capfd: pytest.CaptureFixture[str]
) -> None:
    reader = AnswerLog(tmp_path, enabled=True)
    assert len(reader.search()) == 1  # readers do not wait for the writer in WAL mode
    log = AnswerLog(tmp_path, enabled=True)
    assert log.begin(BODY, digest="d", **WHERE) is None  # gave up waiting
    [line] = warnings(capfd.readouterr().err)
    assert "locked" in line
    finish(locked)
    assert log.begin(BODY, digest="d", **WHERE) is None  # off for the rest of the session
    assert not warnings(capfd.readouterr().err)


def test_a_flush_that_meets_a_lock_is_retried_at_the_next_one(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = AnswerLog(tmp_path, enabled=True)
    entry = log.begin(BODY, digest="d", **WHERE)
    assert entry is not None
    entry.flush(b"one ", b"")
    holder = python(
        """
        import sqlite3, sys
        db = sqlite3.connect(sys.argv[1], isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        sys.stdin.read()
        """,
        str(tmp_path / "log.sqlite3"),
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    entry.flush(b"one two ", b"")  # waits a moment, then leaves it for the next flush
    finish(holder)
    entry.flush(b"one two three", b"")
    assert AnswerLog(tmp_path).search()[0].text == "one two three"
    entry.end(OllamaResponse("one two three.", model="llama3.2", done_reason="stop"))
    assert AnswerLog(tmp_path).search()[0].text == "one two three."
    assert log.failure is None and not warnings(capfd.readouterr().err)


def _without_root_powers() -> None:
    """Drop every capability on exec, so that folder modes bind even a child run as root."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in range(64):
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP


def _bound_by_modes() -> dict[str, Any]:
    return {"preexec_fn": _without_root_powers} if os.geteuid() == 0 else {}


BEGIN_TWICE = """
    import sys
    from ollama_magic.log import AnswerLog
    log = AnswerLog(sys.argv[1], enabled=True)
    where = dict(backend="o", host="h", digest="d", kernel="k", cell="c")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    print(log.begin(body, **where), log.begin(body, **where),
          log.lookup(body, backend="o", host="h", digest="d"))
"""


def test_a_read_only_folder_turns_the_log_off_with_one_warning(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with AnswerLog(home, enabled=True) as log:
        log.begin(BODY, digest="d", **WHERE)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (home, empty):
        for path in folder.iterdir():
            os.chmod(path, 0o444)
        os.chmod(folder, 0o555)
    try:
        for folder in (home, empty, empty / "inner"):
            out, err = finish(python(BEGIN_TWICE, str(folder), **_bound_by_modes()))
            assert out == "None None None\n"
            assert len(warnings(err)) == 1 and len(err.splitlines()) == 1, err
    finally:
        for folder in (home, empty):
            os.chmod(folder, 0o755)


FULL_DISK = """
    import resource, signal, sys
    from ollama_magic.log import AnswerLog
    from ollama_magic.result import OllamaResponse
    log = AnswerLog(sys.argv[1], enabled=True)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    entry = log.begin(body, backend="o", host="h", digest="d", kernel="k", cell="c")
    entry.flush(b"before the disk filled ", b"")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
    limit = 256 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    answer = bytearray(b"before the disk filled ")
    for _ in range(20):
        answer += b"x" * 50_000
        entry.flush(answer, b"")
    entry.end(OllamaResponse(answer.decode(), model="m", done_reason="stop"))
    print(log.begin(body, backend="o", host="h", digest="d", kernel="k", cell="c"), flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_full_disk_turns_the_log_off_with_one_warning(tmp_path: Path) -> None:
    out, err = finish(python(FULL_DISK, str(tmp_path)))
    assert out == "None\n"
    assert len(warnings(err)) == 1 and len(err.splitlines()) == 1, err
    [record] = AnswerLog(tmp_path).search()
    assert record.text.startswith("before the disk filled ")
    assert record.status == "lost"  # the writer is gone and never ended it


def test_a_forked_child_writes_as_itself(tmp_path: Path) -> None:
    log = AnswerLog(tmp_path, enabled=True)
    parent = log.begin(BODY, digest="d", **WHERE)
    assert parent is not None
    pid = os.fork()
    if pid == 0:  # the child: its own connection, its own pid in the record, then it dies
        code = 1
        try:
            child = log.begin(BODY, digest="d", **WHERE)
            if child is not None:
                child.flush(b"from the child", b"")
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent.flush(b"from the parent", b"")
    child_record, parent_record = log.search()
    assert (child_record.text, child_record.status) == ("from the child", "lost")
    assert (parent_record.text, parent_record.status) == ("from the parent", "streaming")
