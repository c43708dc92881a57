"""From an answer to a code cell: find the Python in it, check it parses, offer it as the next cell.

An answer is untrusted text. Nothing here runs it: the code is only parsed (the same way IPython
would, so ``%magic`` and ``!shell`` lines are fine) and handed to the front end as the content of
a new cell, which the user reads and runs.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

#: Info strings of fenced blocks taken as Python (the first word, lower-cased).
PYTHON_LABELS = frozenset({"python", "py", "python3", "py3", "ipython", "ipython3"})

#: Cell magics whose body is Python, so a syntax error inside them is worth reporting.
PYTHON_BODY_CELL_MAGICS = frozenset({"time", "timeit", "prun", "capture", "debug"})

_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$")
_CELL_MAGIC = re.compile(r"^%%(?P<name>\w+)")


@dataclass(frozen=True)
class _Block:
    label: str
    text: str


def _fenced_blocks(answer: str) -> list[_Block]:
    """The fenced code blocks of a Markdown text, as CommonMark reads them.

    A block closes at a line holding only a fence of the same character at least as long as the
    opening one, so a shorter fence inside (a block quoted in a block) stays content. A block
    left open runs to the end of the text, as in an answer that was cut off.
    """
    blocks: list[_Block] = []
    lines = answer.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        words = opening["info"].strip().strip("{}").lstrip(".").split()
        label = words[0].lower().rstrip(",}") if words else ""
        body: list[str] = []
        i += 1
        while i < len(lines):
            line = lines[i]
            stripped = line.lstrip(" ")
            if (
                len(line) - len(stripped) <= 3
                and stripped.startswith(fence[0] * len(fence))
                and not stripped.rstrip().strip(fence[0])
            ):
                i += 1
                break
            body.append(_drop_indent(line, indent))
            i += 1
        blocks.append(_Block(label, "\n".join(body)))
    return blocks


def _drop_indent(line: str, indent: int) -> str:
    """Remove up to ``indent`` leading spaces (the opening fence's own indentation)."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent) :]


def extract_code(answer: str) -> str | None:
    """The Python code of an answer, without fences; ``None`` when it holds none.

    Blocks labelled ``python``, ``py``, ``ipython`` (and their ``3`` forms) are taken, joined by a
    blank line. Only when there are none are unlabelled ```` ``` ```` / ``~~~`` blocks taken:
    next to labelled code they usually hold sample output. Blocks in other languages are
    ignored. An answer with no block at all is taken whole when it is Python (IPython syntax
    included) and does more than name a value, so that "Yes" or "42" is not mistaken for code.

    >>> extract_code("Use this:\\n```python\\nprint('hi')\\n```\\nOutput:\\n```\\nhi\\n```")
    "print('hi')"
    >>> extract_code("import math\\nmath.sqrt(2)")
    'import math\\nmath.sqrt(2)'
    >>> extract_code("Yes") is None
    True
    """
    blocks = _fenced_blocks(answer)
    chosen = [b.text for b in blocks if b.label in PYTHON_LABELS]
    if not chosen:
        chosen = [b.text for b in blocks if b.label == ""]
    code = "\n\n".join(text.strip("\n").rstrip() for text in chosen if text.strip())
    if code:
        return code
    if blocks:
        return None  # the answer has code, but not in Python
    whole = answer.strip("\n").rstrip()
    if whole.strip() and validate_code(whole).ok and _does_something(whole):
        return whole
    return None


def _does_something(code: str) -> bool:
    """False for text that parses but only names a value (``Yes``, ``42``, ``"done"``)."""
    try:
        tree = ast.parse(_transformer().transform_cell(code))
    except (SyntaxError, ValueError):
        return True  # IPython-only syntax that transformed into more than a name
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, (ast.Name, ast.Constant)))
        for node in tree.body
    )


@dataclass(frozen=True)
class CodeCheck:
    """Whether code parses as a cell; if not, where (a line of the code as given) and why."""

    ok: bool
    line: int | None = None
    message: str = ""

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return "the code parses"
        return f"line {self.line}: {self.message}" if self.line else self.message


_DEFAULT_TRANSFORMER: TransformerManager | None = None


def _transformer(shell: Any = None) -> Any:
    """The shell's own input transformer (with any the user added), else IPython's default."""
    global _DEFAULT_TRANSFORMER
    manager = getattr(shell, "input_transformer_manager", None)
    if manager is not None:
        return manager
    if _DEFAULT_TRANSFORMER is None:
        _DEFAULT_TRANSFORMER = TransformerManager()
    return _DEFAULT_TRANSFORMER


def validate_code(code: str, shell: Any = None) -> CodeCheck:
    """Check that ``code`` would compile as a cell, without running anything.

    IPython's input transformation runs first, so magics, ``!commands`` and top-level
    ``await`` are fine. The body of ``%%time``, ``%%timeit``, ``%%capture``, ``%%prun`` and
    ``%%debug`` is checked too; other cell magics' bodies are not Python. A cell magic below
    the first line is reported, since IPython would only fail on it at run time.

    >>> validate_code("%timeit sum(range(9))\\nfiles = !ls\\nx = 1")
    CodeCheck(ok=True, line=None, message='')
    >>> str(validate_code("x = 1\\ndef f(:\\n    pass"))
    'line 2: invalid syntax'
    """
    return _check(code, shell, 0)


def _check(code: str, shell: Any, offset: int) -> CodeCheck:
    lines = code.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None:
        magic = _CELL_MAGIC.match(lines[first].lstrip())
        if magic is not None:
            if magic["name"] not in PYTHON_BODY_CELL_MAGICS:
                return CodeCheck(True)
            return _check("\n".join(lines[first + 1 :]), shell, offset + first + 1)
    try:
        transformed = _transformer(shell).transform_cell(code)
    except SyntaxError as exc:
        return _failure(exc, lines, None, offset)
    except Exception as exc:  # a broken transformer of the user's must not break the magic
        return CodeCheck(False, None, f"IPython could not read the code ({exc})")
    try:
        tree = compile(
            transformed,
            "<cell>",
            "exec",
            flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            dont_inherit=True,
        )
        compile(tree, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as exc:
        return _failure(exc, lines, transformed.splitlines(), offset)
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:
        return CodeCheck(False, None, str(exc) or type(exc).__name__)
    misplaced = _misplaced_cell_magic(tree)
    if misplaced is not None:
        line = _original_line(lines, transformed.splitlines(), misplaced[0])
        return CodeCheck(
            False,
            line + offset,
            f"the cell magic %{misplaced[1]} must be on the first line of a cell",
        )
    return CodeCheck(True)


def _failure(
    exc: SyntaxError, original: list[str], transformed: list[str] | None, offset: int
) -> CodeCheck:
    message = exc.msg or "invalid syntax"
    if not exc.lineno:
        return CodeCheck(False, None, message)
    line = exc.lineno if transformed is None else _original_line(original, transformed, exc.lineno)
    return CodeCheck(False, min(line, max(len(original), 1)) + offset, message)


def _original_line(original: list[str], transformed: list[str], lineno: int) -> int:
    """The line of the code as typed that a line of IPython's transformed code came from.

    Transformation keeps one line per line except where a magic spans continuation lines; then
    the nearest line with the same text is the one (the failing line is plain Python, which
    transformation leaves as it was).
    """
    if len(original) == len(transformed) or not 0 < lineno <= len(transformed):
        return lineno
    text = transformed[lineno - 1].strip()
    same = [i + 1 for i, line in enumerate(original) if line.strip() == text]
    if same:
        return min(same, key=lambda i: abs(i - lineno))
    return min(lineno, len(original))


def _misplaced_cell_magic(tree: ast.AST) -> tuple[int, str] | None:
    """A ``%%name`` line below the first, which IPython turns into the line magic ``%name``."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_line_magic"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith("%")
        ):
            return node.lineno, node.args[0].value
    return None


def insert_code(shell: Any, code: str) -> None:
    """Offer ``code`` as the next cell; the user reads it and runs it (it is never run here).

    This is IPython's ``set_next_input`` payload: JupyterLab, Notebook 7 and VS Code open a new
    cell below with the code; terminal IPython puts it at the next prompt; front ends without
    payloads (nbclient, papermill) ignore it.
    """
    shell.set_next_input(code, replace=False)


@dataclass(frozen=True)
class CodeOffer:
    """What became of the code in an answer: the code, its check, and a line for the user."""

    code: str | None
    check: CodeCheck | None
    inserted: bool
    note: str


def offer_code(shell: Any, answer: str, out_name: str = "ollama_response") -> CodeOffer:
    """Extract, check and (when it parses) insert the code of an answer; say what happened.

    Code that does not parse, or that comes from an answer that did not finish, is not
    inserted: it stays in ``OUT.code`` and the note says why. ``note`` is plain text that may
    quote the parser's message about the model's code: escape it before showing it as Markdown.
    """
    code = extract_code(answer)
    if code is None:
        return CodeOffer(None, None, False, "The answer has no Python code; no cell was added.")
    check = validate_code(code, shell)
    where = f"{out_name}.code"
    if getattr(answer, "complete", True) is False:
        note = f"The answer did not finish, so its code was not added as a cell; it is in {where}."
        return CodeOffer(code, check, False, note)
    if not check.ok:
        note = (
            f"The code in the answer does not parse ({check}); no cell was added. It is in {where}."
        )
        return CodeOffer(code, check, False, note)
    insert_code(shell, code)
    place = "a new cell below" if getattr(shell, "kernel", None) is not None else "the next prompt"
    note = f"The code is in {place} (and in {where}): read it before running it."
    return CodeOffer(code, check, True, note)
