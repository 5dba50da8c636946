"""Tables a person can read at any terminal width (rich), for the render-only CLI commands.

Key columns (names, states, prices) are never cut: they keep their full width and do not wrap.
Columns with nothing in them are left out. Other columns may wrap between words, never inside one
and never into "…". When the terminal is too narrow for every column, the least important ones
(the rightmost non-key columns) go, and a line says which and points to ``--json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rich.console import Console

EMPTY = ("", "-", "—")
#: rich's cost per column (padding and border) in a boxed table, plus the outer border
_COLUMN_COST = 3
_NARROWEST_WRAP = 6


@dataclass(frozen=True)
class Col:
    header: str
    key: bool = False
    justify: Literal["left", "right"] = "left"
    #: a non-key column narrower than this would wrap into an unreadable stack: drop it instead
    min_width: int = 0


def _natural(col: Col, cells: Sequence[str]) -> int:
    return max([len(col.header), *(len(c) for c in cells)])


def _least(col: Col, cells: Sequence[str]) -> int:
    """The narrowest a column may be: full width for a key column, else its longest word (a
    column may wrap between words, never inside one) and at least a few characters."""
    natural = _natural(col, cells)
    if col.key:
        return natural
    longest_word = max((len(w) for text in (col.header, *cells) for w in text.split()), default=1)
    return min(natural, max(longest_word, _NARROWEST_WRAP, col.min_width))


def fit_columns(
    columns: Sequence[Col], rows: Sequence[Sequence[str]], width: int
) -> tuple[list[int], list[str]]:
    """Indexes of the columns to show at ``width``, and the headers of non-empty ones left out."""
    cells = [[row[i] for row in rows] for i in range(len(columns))]
    shown = [i for i, col in enumerate(columns) if col.key or any(c not in EMPTY for c in cells[i])]
    dropped: list[str] = []

    def needed() -> int:
        return sum(_least(columns[i], cells[i]) + _COLUMN_COST for i in shown) + 1

    while needed() > width:
        optional = [i for i in shown if not columns[i].key]
        if not optional:
            break
        shown.remove(optional[-1])
        dropped.insert(0, columns[optional[-1]].header)
    return shown, dropped


def allot_widths(
    columns: Sequence[Col], cells: Sequence[Sequence[str]], shown: Sequence[int], width: int
) -> dict[int, int]:
    """Each shown column's width: its least, then the spare room shared out up to its natural width
    (left to right), so the table is exactly as wide as it needs and never wider than ``width``."""
    widths = {i: _least(columns[i], cells[i]) for i in shown}
    spare = width - (sum(widths.values()) + _COLUMN_COST * len(shown) + 1)
    for i in shown:
        grow = max(0, min(spare, _natural(columns[i], cells[i]) - widths[i]))
        widths[i] += grow
        spare -= grow
    return widths


def print_table(
    console: Console,
    columns: Sequence[Col],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    json_hint: str = "--json",
) -> None:
    """Print ``rows`` (already formatted strings) as a table fitted to ``console.width``."""
    from rich.table import Table

    shown, dropped = fit_columns(columns, rows, console.width)
    cells = [[row[i] for row in rows] for i in range(len(columns))]
    widths = allot_widths(columns, cells, shown, console.width)
    table = Table(title=title, title_justify="left")
    for i in shown:
        col = columns[i]
        table.add_column(col.header, justify=col.justify, no_wrap=col.key, overflow="fold", width=widths[i])
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    console.print(table)
    if dropped:
        console.print(
            f"left out at {console.width} columns: {', '.join(dropped)} (widen the terminal, or {json_hint})",
            highlight=False,
        )


def wrap_text(text: str, width: int) -> str:
    """Wrap each line of ``text`` to ``width``, continuing under its own indentation (+2)."""
    import textwrap

    out = []
    for line in text.splitlines():
        indent = " " * (len(line) - len(line.lstrip()))
        if len(line) <= width or not line.strip():
            out.append(line)
            continue
        out += textwrap.wrap(
            line.strip(),
            width,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_on_hyphens=False,
        )
    return "\n".join(out)
