"""What every write to the answer log shares: how long it waits, and text SQLite accepts."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

#: How long a write waits for another process's transaction (they last milliseconds).
BUSY_TIMEOUT = 2.0
#: A flush waits less: the answer is streaming, and a missed flush is retried a second later.
FLUSH_WAIT = 0.25


def _storable(text: str) -> str:
    """Text SQLite accepts: lone surrogates (which a stream may carry) become U+FFFD.

    Looked for without encoding: a long answer is not copied just to be checked.

    >>> _storable("caf\u00e9"), _storable("a" + chr(0xD800) + "b")
    ('café', 'a\ufffdb')
    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json(value: Any) -> str:
    return _storable(json.dumps(value, ensure_ascii=False, default=str))


def _is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (named in Python 3.11+)
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
