"""Answers that a stop ended moments ago, so that a kernel shutdown right after can claim them.

A front end restarts a kernel by first interrupting it, as the stop button does, and then asking
it to shut down. An answer streaming at that moment therefore ends as if its user had stopped
it. When the shutdown request follows within :data:`CLAIM_WINDOW` seconds, each such answer is
re-worded to say that the kernel stopped, which is what the saved notebook should tell a reader.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Seconds after a stop in which a shutdown request is taken to be what caused it (a front end
#: sends the two back to back).
CLAIM_WINDOW = 2.0

_lock = threading.Lock()
_recent: list[tuple[float, Callable[[str], None]]] = []


def stopped_just_now(restate: Callable[[str], None]) -> None:
    """An answer was just stopped; ``restate(reason)`` re-words it if the kernel did that."""
    now = time.monotonic()
    with _lock:
        _recent[:] = [(at, call) for at, call in _recent if now - at < CLAIM_WINDOW]
        _recent.append((now, restate))


def claim_recent_stops(reason: str) -> None:
    """Re-word every answer stopped in the last :data:`CLAIM_WINDOW` s."""
    now = time.monotonic()
    with _lock:
        due = [call for at, call in _recent if now - at < CLAIM_WINDOW]
        _recent.clear()
    for restate in due:
        try:
            restate(reason)
        except Exception:  # a shutdown goes ahead whatever one view does
            continue
