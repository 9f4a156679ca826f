"""Long messages wrapped to a width: each line of a message at spaces, continuations indented under it."""

from __future__ import annotations

import re
import shutil
import textwrap

# Two spaces between words: a row of an aligned table, which rewrapping would scramble.
_ALIGNED = re.compile(r"\S {2,}\S")


def wrap_message(text: str, width: int, indent: str = "  ") -> list[str]:
    """The lines of ``text``, each wrapped to ``width`` columns at spaces.

    A continuation line starts with the leading spaces of the line it continues plus
    ``indent``. Words are never broken (a path or a key longer than the width stays
    whole), and rows of aligned tables are left as they are.
    """
    lines: list[str] = []
    for line in text.splitlines() or [""]:
        body = line.lstrip(" ")
        lead = line[:len(line) - len(body)]
        if len(line) <= width or _ALIGNED.search(body):
            lines.append(line.rstrip())
            continue
        lines += textwrap.wrap(body, width=max(width, len(lead + indent) + 20), initial_indent=lead,
                               subsequent_indent=lead + indent, break_long_words=False,
                               break_on_hyphens=False) or [""]
    return lines


def fit_line(line: str, width: int) -> str:
    """``line`` cut at a space to at most ``width`` columns, ended with "…" when cut."""
    if len(line) <= width:
        return line
    cut = line.rfind(" ", 0, width - 1)
    return line[:cut if cut > width // 2 else width - 1].rstrip() + " …"


def fit_last_column(rows: list[tuple[str, ...]], width: int, names: set[str]) -> tuple[list[tuple[str, ...]], set[str]]:
    """Rows of a table (columns two spaces apart) with the last cell of each row named in ``names``
    (by its first cell) cut so that the row fits ``width``; and the names of the rows that were cut."""
    room = max(20, width - sum(max(len(row[i]) for row in rows) + 2 for i in range(len(rows[0]) - 1)))
    fitted, cut = [], set()
    for row in rows:
        if row[0] in names and len(row[-1]) > room:
            row = (*row[:-1], fit_line(row[-1], room))
            cut.add(row[0])
        fitted.append(row)
    return fitted, cut


def terminal_width(fallback: int = 100) -> int:
    """Columns of the terminal standard output goes to (``$COLUMNS`` first; ``fallback`` when not a terminal)."""
    return shutil.get_terminal_size((fallback, 24)).columns
