"""Progress bars on stderr, drawn by rich (it ships with typer): one small bar type for long work.

A bar appears with its first update, so an error raised before any progress prints alone on its
line, and it disappears when closed (the result lines that follow stay clean). ``rich`` is imported
only when a bar first draws.
"""

from __future__ import annotations

from typing import Any


class Bar:
    """``update(n)`` advances, ``set(done, total)`` moves to a position, ``note(text)`` shows a short
    status after the bar (a loss, say); ``close()`` removes it. ``total=None``: no known end."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "", enabled: bool = True):
        self.desc, self.total, self.unit, self.enabled = desc, total, unit, enabled
        self.done = 0
        self._progress: Any = None
        self._task: Any = None

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        if self.unit:
            columns.append(TextColumn(self.unit))
        columns += [TimeElapsedColumn(), TextColumn("{task.fields[note]}")]
        self._progress = Progress(*columns, console=Console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task(self.desc, total=self.total, note="")

    def set(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            self._start()
        self.done = done
        if total is not None:
            self.total = total
        self._progress.update(self._task, completed=done, total=self.total)

    def update(self, n: int = 1) -> None:
        self.set(self.done + n)

    def note(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, note=text)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # an error mid-way still gives the terminal back
