"""The clinic database as the ``clinic`` commands open it: engine, session and who is acting."""

from __future__ import annotations

import getpass
import os


def clinic_engine(db: str | None, initialised: bool = True):
    """The engine of ``db`` (URL or SQLite file), checked to hold the current schema when ``initialised``."""
    from ketaplan.course.db import make_engine, require_schema

    engine = make_engine(db)
    if initialised:
        require_schema(engine)
    return engine


def actor_name(name: str | None) -> str:
    """Who acts: the given name, else $KETAPLAN_USER, else the login name."""
    return (name or os.environ.get("KETAPLAN_USER") or getpass.getuser()).strip()


def clinic_session(db):
    """A transaction on the clinic database."""
    from ketaplan.course.db import transaction

    return transaction(clinic_engine(db))
