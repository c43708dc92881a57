"""Who is writing a record, and whether that writer still exists.

A record left ``streaming`` is only *lost* once the process that wrote it is gone. A process id
alone can be reused after a crash, so on Linux the id is paired with the process's start time
(``/proc/PID/stat``); elsewhere only the id is checked. A record written on another machine
(a log folder on a shared drive) cannot be checked and keeps reading as ``streaming``.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import cache
from typing import NamedTuple


class Writer(NamedTuple):
    """The process behind a record: id, start time (``None`` where unknown) and machine."""

    pid: int
    start: str | None
    host: str


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) from ``/proc/PID/stat``, or ``None`` when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def this_writer() -> Writer:
    """This process, as recorded in the records it writes (a forked child is a new writer)."""
    return _writer(os.getpid())


@cache
def _writer(pid: int) -> Writer:
    stat = _proc_stat(pid) if sys.platform.startswith("linux") else None
    return Writer(pid, stat[1] if stat else None, socket.gethostname())


def writer_alive(writer: Writer) -> bool:
    """False only when the writer is known to be gone (a zombie counts as gone)."""
    if writer.host != this_writer().host:
        return True
    if sys.platform.startswith("linux"):
        stat = _proc_stat(writer.pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        return writer.start is None or stat[1] == writer.start
    if sys.platform == "win32":
        return _windows_alive(writer.pid)
    try:
        os.kill(writer.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _windows_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() != 87  # ERROR_INVALID_PARAMETER: no such process
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
