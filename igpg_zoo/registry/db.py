"""The registry database: SQLAlchemy 2 tables, the engine, ``session_scope()`` and migrations.

The schema is created and upgraded only by alembic (``registry/migrations``), run on open when the
stored revision is not the newest migration (one query; alembic is imported only then), so a registry
written by this version opens with the next one. No business logic lives here; the
``CheckpointStore`` turns these rows into records and rows never leave it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    exc,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from igpg_zoo.errors import RegistryUnavailable
from igpg_zoo.registry import schema_version

MIGRATIONS = schema_version.MIGRATIONS

# Named constraints, so later migrations can alter them (SQLite batch mode needs names).
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CheckpointRow(Base):
    __tablename__ = "checkpoints"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (migration 0002)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(512))
    arch: Mapped[str] = mapped_column(String(1024), index=True)
    task: Mapped[str] = mapped_column(String(512), index=True)
    dataset: Mapped[str] = mapped_column(String(512), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    n_params: Mapped[int] = mapped_column(BigInteger)
    license: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC; sorts as text
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # sha256 over the weights' sha and the canonical metadata: the key of an idempotent add
    identity: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="SET NULL"), nullable=True, index=True
    )
    extra: Mapped[dict[str, Any]] = mapped_column(JSON)

    metrics: Mapped[list[MetricRow]] = relationship(
        back_populates="checkpoint", cascade="all, delete-orphan", passive_deletes=True
    )
    tags: Mapped[list[TagRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class MetricRow(Base):
    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "name", "dataset"),
        Index("ix_metrics_name_value", "name", "value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    dataset: Mapped[str] = mapped_column(String(512))

    checkpoint: Mapped[CheckpointRow] = relationship(back_populates="metrics")


class TagRow(Base):
    __tablename__ = "tags"

    checkpoint_id: Mapped[int] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)


class EmbeddingRow(Base):
    """The vectors of one checkpoint, so the FAISS cache rebuilds without re-embedding."""

    __tablename__ = "embeddings"

    checkpoint_id: Mapped[int] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE"), primary_key=True
    )
    embedder: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    text_sha: Mapped[str] = mapped_column(String(64), index=True)  # reuse a vector for the same text
    dim: Mapped[int] = mapped_column(Integer)
    text_vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    dataset_vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ArtifactRow(Base):
    """A generator artifact (tokenizer, prior): tensors in a blob, config and provenance as JSON."""

    __tablename__ = "artifacts"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (migration 0002)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("artifacts.id", ondelete="SET NULL"), nullable=True
    )


class AnswerRow(Base):
    """One answer of ``query``: its inputs (with the data's fingerprint), candidates, estimates and decision."""

    __tablename__ = "answers"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[str] = mapped_column(String(32))
    data_fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # "" without --data
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    candidates: Mapped[list[Any]] = mapped_column(JSON)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)


class ScoreRow(Base):
    """A transferability estimate of one checkpoint on one user sample (select's cache)."""

    __tablename__ = "answer_scores"

    checkpoint_id: Mapped[int] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE"), primary_key=True
    )
    data_fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    estimate: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))  # the weights scored
    value: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


# -- engine, sessions, migrations ------------------------------------------------------------


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite opens transactions only before DML and runs DDL outside them; take control so every
    # SQLAlchemy transaction (migrations included) is one real SQLite transaction
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA case_sensitive_like=ON")  # LIKE patterns match as on PostgreSQL
    # write-ahead log: readers never block the writer, and a commit costs one fsync
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise RegistryUnavailable(
            f"'{url}' is not a registry location; give a SQLite file path or a SQLAlchemy URL "
            "such as postgresql+psycopg://user@host/zoo"
        ) from None
    try:
        engine = create_engine(parsed, future=True)
    except exc.NoSuchModuleError:
        raise RegistryUnavailable(
            f"unknown database driver '{parsed.drivername}' in registry URL; use a SQLite file path "
            "or a postgresql+psycopg:// URL"
        ) from None
    except ImportError as err:
        raise RegistryUnavailable(
            f"the driver for '{parsed.drivername}' is not installed ({err}); for PostgreSQL run "
            "pip install 'igpg-zoo[postgres]'"
        ) from None
    if engine.dialect.name == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not Path(database).parent.is_dir():
            raise RegistryUnavailable(
                f"the folder of registry file {database} does not exist; create it or pass --registry"
            )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two processes migrating a new file take turns
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def head_revision() -> str:
    """The newest migration, from the file names in ``MIGRATIONS`` (no alembic import)."""
    return schema_version.head_revision(MIGRATIONS)


def _current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, in one query; None for a database without one."""
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except (exc.OperationalError, exc.ProgrammingError) as err:
        if "alembic_version" in str(err.orig if err.orig is not None else err):  # no such table: a new database
            return None
        raise
    return rows[0][0] if len(rows) == 1 else None


def _upgrade(engine: Engine) -> None:
    """Bring the schema to the newest alembic revision (creates it on a fresh database).

    The common case (already at the head) costs one query and never imports alembic."""
    if _current_revision(engine) == head_revision():
        return  # nothing to do, no write lock taken
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with (engine.connect().execution_options(sqlite_immediate=True) as connection,
          _sqlite_foreign_keys_off(connection), connection.begin()):
        if engine.dialect.name == "postgresql":  # one migrator at a time per database
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7211902)")
        cfg.attributes["connection"] = connection
        try:
            command.upgrade(cfg, "head")
        except CommandError as err:  # a revision this version does not know: written by a newer igpg-zoo
            raise RegistryUnavailable(
                f"the registry's schema is newer than this igpg-zoo understands ({_first_line(err)}); "
                "upgrade igpg-zoo (pip install -U igpg-zoo)"
            ) from None
        if engine.dialect.name == "sqlite":
            _check_foreign_keys(connection)  # before the commit: a broken upgrade rolls back whole


@contextmanager
def _sqlite_foreign_keys_off(connection: Any) -> Iterator[None]:
    """Foreign keys off while SQLite migrations run, on again after (SQLite's recipe for altering tables).

    Batch migrations rebuild a table by copying it and dropping the original; with foreign keys on,
    that drop deletes metrics, tags and embeddings and clears parent links. The pragma is a no-op
    inside a transaction, so it is set on the driver connection before the migration's BEGIN.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if not connection.invalidated:  # pooled connections must keep the pragmas of _sqlite_pragmas
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Any) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, rowid, parent = broken[0][:3]
        raise RegistryUnavailable(
            f"upgrading the registry's schema would leave {len(broken)} broken reference(s) (first: "
            f"{table} row {rowid} -> {parent}); nothing was changed; run PRAGMA foreign_key_check on the file "
            "to list them"
        )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


BLOB_LOCK = 7211903  # PostgreSQL advisory lock key of blob use (migrations use 7211902)


class Database:
    """An engine on the registry URL, migrated to the newest schema, and its sessions."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        try:
            _upgrade(self.engine)
        except RegistryUnavailable:
            self.engine.dispose()
            raise
        except exc.DBAPIError as err:  # unreachable server, bad credentials, a file that is no database
            self.engine.dispose()
            reason = _first_line(err.orig) if err.orig is not None else _first_line(err)
            hint = ("check that it is an igpg-zoo SQLite registry file" if self.is_sqlite else
                    "check the URL and that the server is running")
            if self.is_sqlite and "readonly" in reason:  # WAL needs to create files beside the registry
                hint = "the file or its folder is read-only; copy the registry (with blobs/) somewhere writable"
            raise RegistryUnavailable(
                f"cannot open registry {make_url(url).render_as_string(hide_password=True)}: {reason}; {hint}"
            ) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session_scope(self, write: bool = False) -> Iterator[Session]:
        """A session that commits on success, rolls back on error and always closes.

        ``write``: the transaction will write. On SQLite it then takes the write lock when it begins
        (``BEGIN IMMEDIATE``), so concurrent writers wait their turn (``busy_timeout``) instead of a
        read transaction failing at once with "database is locked" when it tries to write.
        """
        session = self._sessions()
        try:
            if write and self.is_sqlite:
                session.connection(execution_options={"sqlite_immediate": True})
            yield session
            session.commit()
        except exc.OperationalError as err:
            session.rollback()
            raise self._unusable(err) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def lock_blobs(self, session: Session) -> None:
        """Serialise the write transactions that start or stop using blobs (until the transaction ends).

        Whether a blob is still used is a question about committed rows, and the answer must not
        change between asking it and acting on it: an add that finds its blob already there and a
        remove that deletes that blob as unused would otherwise leave a row without weights. SQLite
        write transactions already hold the one write lock; PostgreSQL takes an advisory lock."""
        if not self.is_sqlite:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BLOB_LOCK})

    def _unusable(self, err: exc.OperationalError) -> RegistryUnavailable:
        """A one-line error for a database that refuses a statement (busy, read-only, gone)."""
        reason = _first_line(err.orig) if err.orig is not None else _first_line(err)
        where = make_url(self.url).render_as_string(hide_password=True)
        if "locked" in reason or "busy" in reason:
            hint = "another process is writing it; try again when it has finished"
        elif "readonly" in reason or "read-only" in reason:
            hint = "the file or its folder is read-only; ask for write access or work on a copy"
        else:
            hint = "check the registry (igpg-zoo verify) and try again"
        return RegistryUnavailable(f"cannot use registry {where} ({reason}); {hint}")

    def dispose(self) -> None:
        self.engine.dispose()
