"""Tables for the terminal: one rich table for every command that lists.

On a terminal the table fits its width (long cells fold onto more lines). Written to a pipe or a
file, every row stays on one line so that scripts can read it line by line; rich then lays out each
column once, as one cell holding all of that column's lines, which keeps a table of thousands of rows
as quick to print as the query behind it. Cell text is plain text, never rich markup (a name such as
``digits[classes=0,1]`` prints as it is), and ``rich`` is imported only when a table prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

PIPE_WIDTH = 1_000_000  # columns of a table that is not drawn on a terminal: never fold a row


def print_table(rows: Iterable[Sequence[object]], columns: Sequence[str], *, title: str | None = None,
                right: Sequence[str] = ()) -> None:
    """Print ``rows`` under ``columns`` (the names in ``right`` right-aligned), fitted to the terminal."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cells = [["" if v is None else " ".join(str(v).splitlines()) for v in row] for row in rows]
    console = Console(soft_wrap=False, highlight=False)
    on_terminal = console.is_terminal
    if not on_terminal:
        console = Console(soft_wrap=False, highlight=False, width=PIPE_WIDTH)
    table = Table(title=title, box=None, header_style="bold", pad_edge=False, expand=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left",
                         overflow="fold", no_wrap=not on_terminal)
    if on_terminal:
        for row in cells:
            table.add_row(*(Text(v) for v in row))
        console.print(table)
        return
    if cells:  # one cell per column, one line per row: the layout rich would give, measured once per column
        table.add_row(*(Text("\n".join(row[i] for row in cells)) for i in range(len(columns))))
    with console.capture() as captured:
        console.print(table)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
