"""A logged answer streamed again, event by event, as if a backend sent it."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator

from ..errors import Interrupted
from ..events import AnswerDelta, Done, Event, Stats, ThinkingDelta
from ._records import Record

#: Characters per replayed piece: small enough that a live view still fills as it streams.
PIECE = 512
_STAT_FIELDS = frozenset(f.name for f in dataclasses.fields(Stats))


class ReplayStream:
    """The events of a logged answer: thinking, answer, then ``Done`` with the logged stats.

    Behaves like a backend's stream (iterator, ``close``, ``abort`` from another thread,
    context manager), so the streaming loop needs no special case for a replay.
    """

    def __init__(self, record: Record) -> None:
        self.record = record
        self._events = self._generate()
        self._aborted = threading.Event()

    def _generate(self) -> Generator[Event, None, None]:
        record = self.record
        for start in range(0, len(record.thinking), PIECE):
            yield ThinkingDelta(record.thinking[start : start + PIECE])
        for start in range(0, len(record.text), PIECE):
            yield AnswerDelta(record.text[start : start + PIECE])
        stats = Stats(**{k: v for k, v in record.stats.items() if k in _STAT_FIELDS})
        yield Done(record.done_reason or "stop", record.model, stats)

    def __iter__(self) -> ReplayStream:
        return self

    def __next__(self) -> Event:
        if self._aborted.is_set():
            raise Interrupted("The replay of a logged answer was stopped.")
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def abort(self) -> None:
        self._aborted.set()

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay_stream(record: Record) -> ReplayStream:
    """Stream a logged answer again (for ``--cache``): same text, thinking, stats and model.

    >>> from datetime import datetime
    >>> r = Record(1, "hi", "Hello", "hmm", "m", "complete", datetime.now(), stats={"chunks": 2})
    >>> list(replay_stream(r))  # doctest: +NORMALIZE_WHITESPACE
    [ThinkingDelta('hmm'), AnswerDelta('Hello'),
     Done(done_reason='stop', model='m', stats=Stats(chunks=2))]
    """
    return ReplayStream(record)
