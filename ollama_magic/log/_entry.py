"""One record of the answer log while its answer streams: flushed pieces, then the end."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from ..result import OllamaResponse
from ._sql import FLUSH_WAIT, _is_busy, _json, _storable

if TYPE_CHECKING:
    from ._store import AnswerLog


class LogEntry:
    """The record of one answer while it streams; :meth:`end` completes it."""

    def __init__(
        self, log: AnswerLog, entry_id: int | None, digest: str | None, row: tuple[Any, ...]
    ) -> None:
        self.log = log
        #: The record's number, once it is written (a deferred record is written later).
        self.id = entry_id
        self._row = row
        self._digest = digest
        self._answer_sent = 0
        self._thinking_sent = 0
        self._ended = False

    def _create(self, db: sqlite3.Connection) -> None:
        """Write the record, ``streaming``, inside the caller's transaction."""
        cursor = db.execute(
            "INSERT INTO answers (started, status, backend, host, model, digest,"
            " request_hash, request, prompt, kernel, cell, writer_pid, writer_start,"
            " writer_host) VALUES (?, 'streaming', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self._row,
        )
        self.id = cursor.lastrowid

    def flush(
        self,
        answer: bytes | bytearray | memoryview,
        thinking: bytes | bytearray | memoryview,
    ) -> None:
        """Append what is new in the whole UTF-8 buffers since the last flush (one small row).

        A write lock held by another process only delays the piece to the next flush.
        """
        log = self.log
        if self._ended or not log.active:
            return
        new_answer = bytes(answer[self._answer_sent :])
        new_thinking = bytes(thinking[self._thinking_sent :])
        if not new_answer and not new_thinking:
            return
        try:
            with log._write(wait=FLUSH_WAIT) as db:
                if self.id is None:
                    self._create(db)
                db.execute(
                    "INSERT INTO chunks (answer_id, text, thinking)"
                    " SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM answers WHERE id = ?)",
                    (self.id, new_answer, new_thinking, self.id),
                )
        except Exception as exc:
            if not _is_busy(exc):
                log._fail(exc)
            return
        self._answer_sent += len(new_answer)
        self._thinking_sent += len(new_thinking)

    def end(self, result: OllamaResponse) -> None:
        """Store the final text, thinking, stats and provenance, and how the answer ended."""
        log = self.log
        if self._ended or not log.active:
            return
        self._ended = True
        if result.complete:
            status = "complete"
        elif result.interrupted:
            status = "interrupted"
        else:
            status = "failed"
        error = result.error.message if result.error is not None else None
        provenance = result.provenance or {}
        digest = provenance.get("digest") or self._digest
        if self.id is None:  # deferred, and never flushed: one write holds it all
            started, backend, host, _, _, *rest = self._row
            try:
                with log._write() as db:
                    cursor = db.execute(
                        "INSERT INTO answers (started, status, backend, host, model, digest,"
                        " request_hash, request, prompt, kernel, cell, writer_pid, writer_start,"
                        " writer_host, ended, error, done_reason, text, thinking, stats,"
                        " provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                        " ?, ?, ?, ?)",
                        (
                            started,
                            status,
                            backend,
                            host,
                            _storable(result.model),
                            digest,
                            *rest,
                            time.time(),
                            _storable(error) if error else None,
                            result.done_reason,
                            _storable(result.text),
                            _storable(result.thinking),
                            _json(result.stats.as_dict()),
                            _json(provenance),
                        ),
                    )
                    self.id = cursor.lastrowid
            except Exception as exc:
                log._fail(exc)
            return
        try:
            with log._write() as db:
                db.execute(
                    "UPDATE answers SET ended = ?, status = ?, error = ?, done_reason = ?,"
                    " model = ?, digest = ?, text = ?, thinking = ?, stats = ?, provenance = ?"
                    " WHERE id = ?",
                    (
                        time.time(),
                        status,
                        _storable(error) if error else None,
                        result.done_reason,
                        _storable(result.model),
                        digest,
                        _storable(result.text),
                        _storable(result.thinking),
                        _json(result.stats.as_dict()),
                        _json(provenance),
                        self.id,
                    ),
                )
                if self._answer_sent or self._thinking_sent:  # the pieces are in the text now
                    db.execute("DELETE FROM chunks WHERE answer_id = ?", (self.id,))
        except Exception as exc:
            log._fail(exc)
