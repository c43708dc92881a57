"""The answer log's SQLite file: written while answers stream, searched by ``%ollama log``.

One file, ``log.sqlite3`` in the log folder, in WAL mode so that readers never wait for writers
and several kernels can append at once. Each write is one short ``BEGIN IMMEDIATE``
transaction. While an answer streams, each flush appends only the new UTF-8 bytes as one row of
``chunks`` (cheap whatever the answer's length); the final text replaces them when it ends. A
process killed mid-answer therefore leaves its record ``streaming`` with the text of its last
flush, and readers call it ``lost`` once the process is gone.

Full-text search uses SQLite's FTS5 over prompt and answer. Where the ``sqlite3`` module was
built without FTS5 the log still works and searching falls back to ``LIKE`` (slower, and
matching substrings rather than word prefixes). A file whose index was made by a build with
FTS5 cannot be written by one without it: that log turns off with its one-line warning.

A log must never fail an answer: every error while writing or looking up (full disk, read-only
folder, locked or corrupt file) prints one line on stderr and turns this log off.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import OllamaMagicError
from ._entry import LogEntry
from ._process import Writer, this_writer, writer_alive
from ._records import Record, Records, export_records
from ._request import prompt_of, request_hash, stored_request
from ._schema import FTS_SCHEMA, SCHEMA, SCHEMA_VERSION
from ._sql import BUSY_TIMEOUT, _is_busy, _json, _storable

FILE_NAME = "log.sqlite3"
_OFF_WORDS = frozenset({"off", "0", "false", "no"})


class AnswerLogError(OllamaMagicError):
    """``%ollama log`` could not read or change the log."""

    title = "Answer log"


@functools.cache
def fts5_available() -> bool:
    """Whether this Python's SQLite has full-text search (FTS5); most builds do."""
    with contextlib.closing(sqlite3.connect(":memory:")) as probe:
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(text)")
        except sqlite3.OperationalError:
            return False
    return True


def default_home() -> Path:
    """``OLLAMA_MAGIC_HOME`` if set, else the platform's per-user data folder."""
    configured = os.environ.get("OLLAMA_MAGIC_HOME")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("ollama_magic", appauthor=False))


def enabled_by_environment() -> bool:
    """False when ``OLLAMA_MAGIC_LOG`` says off (``off``, ``0``, ``false``, ``no``)."""
    return os.environ.get("OLLAMA_MAGIC_LOG", "").strip().casefold() not in _OFF_WORDS


# --------------------------------------------------------------------------------------------
# The log


class AnswerLog:
    """Every answer, written while it streams, kept in one SQLite file per user.

    ``home``: the folder (``OLLAMA_MAGIC_HOME``, else the platform's user data folder).
    ``enabled``: ``None`` reads ``OLLAMA_MAGIC_LOG`` (``off``, ``0`` or ``false`` turn
    writing off). Nothing is opened until the first use.
    """

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, enabled: bool | None = None
    ) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.path = self.home / FILE_NAME
        self.enabled = enabled_by_environment() if enabled is None else enabled
        #: Why this log turned itself off (``None`` while it works).
        self.failure: str | None = None
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._fts = False

    # -- opening ---------------------------------------------------------------------------

    def _connect(self, *, create: bool = True) -> sqlite3.Connection | None:
        """The open connection; creates folder, file and tables on first use."""
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not use its parent's connection (nor close it).
                self._connection, self._pid = None, os.getpid()
            if self._connection is None:
                self._connection = self._open(create)
            return self._connection

    def _open(self, create: bool) -> sqlite3.Connection | None:
        if not create and not self.path.exists():
            return None
        if not self.home.is_dir():
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.home, 0o700)
        # Created 0600 before SQLite opens it: SQLite gives -wal and -shm the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._tighten()
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL survives a killed process (only a power cut may lose the tail).
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA secure_delete=ON")  # forgotten text is overwritten
            self._fts = self._ensure_schema(connection)
        except BaseException:
            connection.close()
            raise
        self._tighten()
        return connection

    def _tighten(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(f"{self.path}{suffix}", 0o600)

    def _ensure_schema(self, connection: sqlite3.Connection) -> bool:
        """Create the tables once (several processes may race here); return whether FTS5 is on."""
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise AnswerLogError(
                f"{self.path} was written by a newer version of ollama_magic; upgrade it, or "
                "point OLLAMA_MAGIC_HOME at another folder."
            )
        if version < SCHEMA_VERSION:
            with self._transaction(connection):
                if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    for statement in SCHEMA:
                        connection.execute(statement)
                    if fts5_available():
                        for statement in FTS_SCHEMA:
                            connection.execute(statement)
                    connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return self._has_fts(connection)

    @staticmethod
    def _has_fts(connection: sqlite3.Connection) -> bool:
        row = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'answers_fts_update'"
        ).fetchone()
        return row is not None

    @contextlib.contextmanager
    def _transaction(
        self, connection: sqlite3.Connection, *, wait: float = BUSY_TIMEOUT
    ) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taking the write lock at once (no upgrade deadlock).

        ``wait``: how long to wait for another process's write lock.
        """
        with self._lock:
            if connection.in_transaction:  # left open by an interrupt at the wrong moment
                connection.execute("ROLLBACK")
            if wait != BUSY_TIMEOUT:
                connection.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            try:
                connection.execute("BEGIN IMMEDIATE")
            finally:
                if wait != BUSY_TIMEOUT:
                    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            try:
                yield connection
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _write(
        self, *, wait: float = BUSY_TIMEOUT
    ) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        connection = self._connect()
        assert connection is not None
        return self._transaction(connection, wait=wait)

    def _fail(self, exc: BaseException) -> None:
        """Turn the log off for this session and say so once, in one line."""
        with self._lock:
            if self.failure is not None:
                return
            reason = (
                getattr(exc, "message", None)
                or (exc.strerror if isinstance(exc, OSError) else None)
                or str(exc)
                or type(exc).__name__
            )
            reason = " ".join(reason.split())
            self.failure = reason
            if self._connection is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self._connection.close()
            self._connection = None
        if _is_busy(exc):
            advice = "Close the program that holds it locked to log again"
        else:
            advice = "Fix or remove that file to log again"
        print(
            f"ollama_magic: the answer log is off for this session ({reason}: {self.path}); "
            f"answers are not affected. {advice}, or set OLLAMA_MAGIC_LOG=off.",
            file=sys.stderr,
            flush=True,
        )

    def __repr__(self) -> str:
        state = "on" if self.active else ("off" if self.failure is None else "failed")
        return f"<AnswerLog {self.path} ({state})>"

    @property
    def active(self) -> bool:
        """True while answers are being written (enabled and not turned off by a failure)."""
        return self.enabled and self.failure is None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> AnswerLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def begin(
        self,
        body: dict[str, Any],
        *,
        backend: str,
        host: str,
        digest: str | None,
        kernel: str,
        cell: str,
        defer: bool = False,
    ) -> LogEntry | None:
        """Create the record of a request about to be sent (``streaming``); ``None`` if off.

        ``defer``: the record is written at the answer's first flush (a second in) or at its
        end, whichever comes first, so a short answer costs one write instead of two. ``--map``
        asks this for its many short items; a kill then loses at most the last second, as ever.
        """
        if not self.active:
            return None
        try:
            request = stored_request(body)
            writer = this_writer()
            row = (
                time.time(),
                backend,
                host,
                _storable(str(body.get("model", ""))),
                digest,
                request_hash(request, backend=backend, host=host),
                _json(request),
                _storable(prompt_of(request)),
                _storable(kernel),
                _storable(cell),
                writer.pid,
                writer.start,
                writer.host,
            )
            entry = LogEntry(self, None, digest, row)
            if not defer:
                with self._write() as db:
                    entry._create(db)
        except Exception as exc:
            self._fail(exc)
            return None
        return entry

    # -- reading ---------------------------------------------------------------------------

    def lookup(
        self, body: dict[str, Any], *, backend: str, host: str, digest: str | None
    ) -> Record | None:
        """The newest complete record of an identical request (same digest), or ``None``."""
        if not self.active or not digest:
            return None
        try:
            connection = self._connect(create=False)
            if connection is None:
                return None
            key = request_hash(stored_request(body), backend=backend, host=host)
            with self._lock:
                row = connection.execute(
                    "SELECT * FROM answers WHERE request_hash = ? AND digest = ?"
                    " AND status = 'complete' ORDER BY id DESC LIMIT 1",
                    (key, digest),
                ).fetchone()
            return self._record(connection, row) if row is not None else None
        except Exception as exc:
            self._fail(exc)
            return None

    def search(self, text: str | None = None, *, n: int = 20, model: str | None = None) -> Records:
        """The newest ``n`` records whose prompt or answer has every word of ``text``.

        ``model`` matches a name exactly or without its tag (``qwen3`` finds ``qwen3:8b``).
        Raises :class:`AnswerLogError` when the file cannot be read.
        """
        with self._reading() as connection:
            if connection is None:
                return Records()
            self._settle_lost(connection)
            where, params = [], []
            if model:
                where.append("(model = ? COLLATE NOCASE OR model LIKE ? ESCAPE '\\')")
                params += [model, _like_escape(model) + ":%"]
            words = re.findall(r"\w+", text or "")
            if words and self._fts:
                query = " ".join('"' + w.replace('"', '""') + '"*' for w in words)
                where.append(
                    "(id IN (SELECT rowid FROM answers_fts WHERE answers_fts MATCH ?)"
                    " OR status = 'streaming')"
                )
                params.append(query)
            elif text and text.strip():
                for word in words or [text.strip()]:
                    pattern = "%" + _like_escape(word) + "%"
                    where.append(
                        "(prompt LIKE ? ESCAPE '\\' OR text LIKE ? ESCAPE '\\'"
                        " OR status = 'streaming')"
                    )
                    params += [pattern, pattern]
            sql = "SELECT * FROM answers"
            if where:
                sql += " WHERE " + " AND ".join(where)
            with self._lock:
                rows = connection.execute(sql + " ORDER BY id DESC", params)
                found: list[Record] = []
                for row in rows:
                    record = self._record(connection, row)
                    if row["status"] == "streaming" and text and not _matches(record, text):
                        continue
                    found.append(record)
                    if len(found) >= n:
                        break
            return Records(found)

    def forget(self, ids: Sequence[int] | None = None, *, everything: bool = False) -> int:
        """Delete the given records (or all); return how many were deleted."""
        if not everything and not ids:
            return 0
        with self._reading() as connection:
            if connection is None:
                return 0
            with self._transaction(connection):
                if everything:
                    deleted = connection.execute("DELETE FROM answers").rowcount
                    connection.execute("DELETE FROM chunks")
                else:
                    marks = ",".join("?" * len(ids or ()))
                    values = [int(i) for i in ids or ()]
                    deleted = connection.execute(
                        f"DELETE FROM answers WHERE id IN ({marks})", values
                    ).rowcount
                    connection.execute(f"DELETE FROM chunks WHERE answer_id IN ({marks})", values)
                if self._fts and deleted:
                    # Merge the index so the deleted words leave it too.
                    connection.execute("INSERT INTO answers_fts(answers_fts) VALUES ('optimize')")
            with contextlib.suppress(sqlite3.Error), self._lock:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return deleted

    def export(self, records: Sequence[Record], path: str | os.PathLike[str]) -> None:
        """Write records to ``path``: ``.md`` as Markdown, ``.jsonl`` as JSON Lines."""
        export_records(list(records), path)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """The connection for ``%ollama log``; failures become one clear error, not a traceback."""
        try:
            yield self._connect(create=False)
        except AnswerLogError:
            raise
        except (sqlite3.Error, OSError) as exc:
            if _is_busy(exc):
                raise AnswerLogError(
                    f"The answer log {self.path} is locked by another process; try again."
                ) from None
            raise AnswerLogError(
                f"Could not read the answer log {self.path} ({exc}). If the file is damaged, "
                "move it away: a new one is made on the next answer."
            ) from None

    def _record(self, connection: sqlite3.Connection, row: sqlite3.Row) -> Record:
        text, thinking, status = row["text"], row["thinking"], row["status"]
        if status == "streaming":
            pieces = connection.execute(
                "SELECT text, thinking FROM chunks WHERE answer_id = ? ORDER BY rowid",
                (row["id"],),
            ).fetchall()
            text += b"".join(p[0] for p in pieces).decode("utf-8", "replace")
            thinking += b"".join(p[1] for p in pieces).decode("utf-8", "replace")
            writer = Writer(row["writer_pid"], row["writer_start"], row["writer_host"])
            if not writer_alive(writer):
                status = "lost"
        ended = row["ended"]
        return Record(
            id=row["id"],
            prompt=row["prompt"],
            text=text,
            thinking=thinking,
            model=row["model"],
            status=status,
            started=datetime.fromtimestamp(row["started"], timezone.utc),
            ended=datetime.fromtimestamp(ended, timezone.utc) if ended is not None else None,
            stats=_loads(row["stats"]),
            request=_loads(row["request"]),
            provenance=_loads(row["provenance"]),
            backend=row["backend"],
            host=row["host"],
            digest=row["digest"],
            kernel=row["kernel"],
            cell=row["cell"],
            done_reason=row["done_reason"],
            error=row["error"],
        )

    def _settle_lost(self, connection: sqlite3.Connection) -> None:
        """Mark records of vanished writers ``lost`` for good, so their text is searchable.

        Best effort: a read-only or busy file leaves them as they are (they read as lost).
        """
        with self._lock:
            rows = connection.execute(
                "SELECT id, writer_pid, writer_start, writer_host FROM answers"
                " WHERE status = 'streaming'"
            ).fetchall()
        dead = [r["id"] for r in rows if not writer_alive(Writer(*tuple(r)[1:]))]
        if not dead:
            return
        with contextlib.suppress(sqlite3.Error), self._transaction(connection):
            for answer_id in dead:
                pieces = connection.execute(
                    "SELECT text, thinking FROM chunks WHERE answer_id = ? ORDER BY rowid",
                    (answer_id,),
                ).fetchall()
                connection.execute(
                    "UPDATE answers SET status = 'lost', text = text || ?,"
                    " thinking = thinking || ? WHERE id = ? AND status = 'streaming'",
                    (
                        b"".join(p[0] for p in pieces).decode("utf-8", "replace"),
                        b"".join(p[1] for p in pieces).decode("utf-8", "replace"),
                        answer_id,
                    ),
                )
                connection.execute("DELETE FROM chunks WHERE answer_id = ?", (answer_id,))


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(record: Record, text: str) -> bool:
    """The word test of a search, for records still streaming (not in the index yet)."""
    haystack = (record.prompt + "\n" + record.text).casefold()
    return all(word.casefold() in haystack for word in re.findall(r"\w+", text) or [text])
