"""A durable, searchable log of every answer, and the replay of identical requests.

Every answer is written to an SQLite file while it streams (see :mod:`._store`), can be
searched, exported and deleted with ``%ollama log``, and an identical earlier request can be
answered from it again with :func:`replay_stream`.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as home, AnswerLog(home, enabled=True) as log:
...     body = {"model": "m", "messages": [{"role": "user", "content": "Why?"}]}
...     entry = log.begin(body, backend="ollama", host="h", digest="d1", kernel="k", cell="c")
...     entry.flush(b"Because", b"")
...     [(r.prompt, r.text, r.status) for r in log.search("why")]
[('Why?', 'Because', 'streaming')]
"""

from ._command import log_command
from ._records import Record, Records
from ._replay import ReplayStream, replay_stream
from ._store import AnswerLog, AnswerLogError, LogEntry, default_home, fts5_available

__all__ = [
    "AnswerLog",
    "AnswerLogError",
    "LogEntry",
    "Record",
    "Records",
    "ReplayStream",
    "default_home",
    "fts5_available",
    "log_command",
    "replay_stream",
]
