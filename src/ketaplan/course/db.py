"""Database connections: a SQLite file by default (WAL, full sync), PostgreSQL by URL; migrations by Alembic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ketaplan.errors import InputError

DEFAULT_URL = "sqlite:///ketaplan-clinic.db"
ENV_URL = "KETAPLAN_DB"


def database_url(url: str | None = None) -> str:
    """The URL given, else $KETAPLAN_DB, else a SQLite file in the current folder; a bare path means SQLite."""
    url = url or os.environ.get(ENV_URL) or DEFAULT_URL
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        make_url(url)
    except ArgumentError:
        raise InputError("--db", url, "a database URL such as sqlite:///clinic.db or "
                         "postgresql://user@host/db") from None
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise InputError("--db", url, "SQLite (sqlite:///FILE) or PostgreSQL (postgresql://...) databases")
    return url


def make_engine(url: str | None = None) -> Engine:
    """An engine; SQLite connections get WAL, synchronous=FULL, foreign keys and a busy timeout."""
    url = database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:
            cur = connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work is committed together at the end, or rolled back on any error.

    A conflict the database detects (a unique code taken by a parallel request) becomes one sentence.
    """
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        with factory() as session, session.begin():
            yield session
    except IntegrityError:
        raise InputError("record", "this change", "conflicts with another one made at the same time (for example "
                         "the same patient code); nothing was saved - reload and try again") from None


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("ketaplan.course") / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (creates the tables on an empty database)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def require_schema(engine: Engine) -> None:
    """Refuse a database that has not been initialised (``ketaplan clinic init``)."""
    if "patients" not in inspect(engine).get_table_names():
        raise InputError("--db", engine.url.render_as_string(hide_password=True),
                         "this database has no clinic tables yet; run `ketaplan clinic init --db ...` first")
