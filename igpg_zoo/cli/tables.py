"""Tables for the terminal: one rich table, as wide as the terminal, for every command that lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def print_table(rows: Iterable[Sequence[object]], columns: Sequence[str], *, title: str | None = None,
                right: Sequence[str] = ()) -> None:
    """Print ``rows`` under ``columns`` (the names in ``right`` right-aligned), wrapped to the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=None, header_style="bold", pad_edge=False, expand=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(soft_wrap=False).print(table)
