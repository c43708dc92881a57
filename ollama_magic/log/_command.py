"""``%ollama log``: search, export and delete logged answers."""

from __future__ import annotations

from collections.abc import Callable

from ..commands import CommandContext
from ..errors import OllamaUsageError
from ._records import Records
from ._store import AnswerLog

USAGE = "%ollama log [TEXT] [-n N] [--model M] [--export FILE] [--forget ID ...|--forget --all]"


def _usage(problem: str) -> OllamaUsageError:
    return OllamaUsageError(f"{problem} Usage: `{USAGE}`.")


def _value(argv: list[str], at: int, flag: str) -> str:
    if at + 1 >= len(argv):
        raise _usage(f"{flag} needs a value.")
    return argv[at + 1]


def log_command(log: AnswerLog) -> Callable[[CommandContext, list[str]], Records]:
    """The ``%ollama log`` subcommand, reading and changing ``log``."""

    def command(ctx: CommandContext, argv: list[str]) -> Records:
        """Newest logged answers (matching TEXT), exported to FILE, or deleted by id."""
        words: list[str] = []
        n: int | None = None
        model = export = None
        forget: list[int] = []
        forget_all = forgetting = False
        at = 0
        while at < len(argv):
            arg = argv[at]
            if arg == "-n":
                raw = _value(argv, at, "-n")
                if not raw.isdigit() or int(raw) < 1:
                    raise _usage(f"-n takes a positive whole number, not {raw!r}.")
                n, at = int(raw), at + 1
            elif arg == "--model":
                model, at = _value(argv, at, arg), at + 1
            elif arg == "--export":
                export, at = _value(argv, at, arg), at + 1
            elif arg == "--forget":
                forgetting = True
                while at + 1 < len(argv) and not argv[at + 1].startswith("-"):
                    for part in argv[at + 1].split(","):
                        if not part.strip().isdigit():
                            raise _usage(
                                f"--forget takes record numbers (the # column), not {part!r}."
                            )
                        forget.append(int(part))
                    at += 1
            elif arg == "--all":
                forget_all = True
            elif arg.startswith("-") and arg != "-":
                raise _usage(f"Unknown option {arg!r}.")
            else:
                words.append(arg)
            at += 1
        text = " ".join(words) or None
        if forget_all and not forgetting:
            raise _usage("To delete every logged answer, write `%ollama log --forget --all`.")
        if forgetting:
            if forget_all == bool(forget):
                raise _usage("--forget takes record numbers (the # column) or --all.")
            if text or n or model or export:
                raise _usage("--forget deletes by number only; it takes no search or export.")
            deleted = log.forget(forget, everything=forget_all)
            return Records(note=f"Deleted {deleted} record{'s' if deleted != 1 else ''}.")
        if export is not None:
            records = log.search(text, n=n or 1_000_000_000, model=model)
            log.export(records, export)
            plural = "s" if len(records) != 1 else ""
            return Records(records, note=f"Wrote {len(records)} record{plural} to {export}.")
        records = log.search(text, n=n or 20, model=model)
        if not records and not log.enabled:
            records.note = "The answer log is off (OLLAMA_MAGIC_LOG or OllamaMagics.log)."
        return records

    return command
