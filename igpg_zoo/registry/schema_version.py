"""The newest schema revision this version writes, read without alembic or SQLAlchemy.

Each migration file in ``migrations/versions`` is named ``<revision>_<slug>.py`` and revisions sort
in order (a test checks both against alembic's own view), so the head is the largest file prefix.
"""

from __future__ import annotations

from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"


def head_revision(migrations: Path = MIGRATIONS) -> str:
    """The newest revision in the folder ``migrations`` ("" when there is none)."""
    names = [p.name.split("_", 1)[0] for p in (migrations / "versions").glob("[0-9]*_*.py")]
    return max(names, default="")
