"""Alembic environment: runs on the connection ``registry.db`` hands over, never from an .ini file."""

from alembic import context

from igpg_zoo.registry.db import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
