"""What a check found wrong with a hook script, and where: one `Problem` per finding.

The compiler here and the upload rules (`hookengine.scripts`) both report problems this way;
their text (`str()`) is what a refused save lists in its 400 `errors` and what a draft run's
log shows, and the position lets an editor mark the spot.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import ClassVar

# The line breaks Python's tokenizer counts lines by (str.splitlines also breaks at \f, \v,
# \x1c... and so would number lines differently from a SyntaxError).
LINE_BREAK = re.compile(r"\r\n|\r|\n")
QUOTED = re.compile(r'"([^"]+)"')


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One problem: its text, the line it is on, and its columns when they are known.

    Lines and columns start at 1; columns count characters (code points), and `end_column` is
    the column just past the end. A column of None means the whole line. A problem about the
    whole script (its size, a dependency the request sent) is on line 1.
    """

    # Which check found it (`source`): compiling under the hook language's rules, the PEP 723
    # block, the declared dependencies, or finding the trigger the script is for.
    COMPILE: ClassVar[str] = "compile"
    METADATA: ClassVar[str] = "metadata"
    DEPENDENCIES: ClassVar[str] = "dependencies"
    TRIGGER: ClassVar[str] = "trigger"
    SOURCES: ClassVar[tuple[str, ...]] = (COMPILE, METADATA, DEPENDENCIES, TRIGGER)

    line: int = 1
    column: int | None = None
    end_column: int | None = None
    message: str
    source: str

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "end_column": self.end_column,
                "message": self.message, "source": self.source}

    @classmethod
    def of_syntax_error(cls, message: str, error: SyntaxError,
                        source: str = COMPILE) -> Problem:
        """The problem of a SyntaxError, at the offsets it carries (1-based characters)."""
        column = error.offset if isinstance(error.offset, int) and error.offset >= 1 else None
        end = error.end_offset if (column and error.end_lineno == error.lineno
                                   and isinstance(error.end_offset, int)
                                   and error.end_offset > column) else None
        return cls(line=line_number(error.lineno), column=column, end_column=end,
                   message=message, source=source)


def line_number(lineno) -> int:
    """A line a problem can be on: Python's own, or 1 when it gave none."""
    return lineno if isinstance(lineno, int) and lineno >= 1 else 1


def at_node(message: str, info: str, node: ast.AST, lines: list[str]) -> Problem:
    """The problem of a rule broken at `node`, as RestrictedPython reports it.

    A rule about a name (in double quotes in `info`: `"_x" is an invalid variable name`) points
    at that name on the node's line, looked for from the node on (a definition's node starts at
    `def`, an attribute's at its object); any other rule points at the node, to its end when it
    ends on that line. The whole line when the name is not on it.
    """
    lineno = getattr(node, "lineno", None)
    text = lines[lineno - 1] if isinstance(lineno, int) and 0 < lineno <= len(lines) else None
    column = end = None
    if text is not None:
        start = _characters(text, getattr(node, "col_offset", None)) or 0
        quoted = QUOTED.search(info)
        if quoted:
            column, end = _find_name(text, quoted.group(1), start)
        elif getattr(node, "col_offset", None) is not None:
            column = start + 1
            if getattr(node, "end_lineno", None) == lineno:
                end = (_characters(text, node.end_col_offset) or 0) + 1
    return Problem(line=line_number(lineno), column=column, end_column=end, message=message,
                   source=Problem.COMPILE)


def _find_name(text: str, name: str, start: int) -> tuple[int | None, int | None]:
    """1-based (column, end column) of `name` as a whole word in `text`, preferring a match
    at or after `start`; (None, None) when it is not there."""
    word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
    found = word.search(text, start) or word.search(text)
    return (found.start() + 1, found.end() + 1) if found else (None, None)


def _characters(text: str, byte_offset) -> int | None:
    """The character offset of a UTF-8 byte offset into `text` (ast's col_offset is bytes)."""
    if not isinstance(byte_offset, int):
        return None
    return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "replace"))
