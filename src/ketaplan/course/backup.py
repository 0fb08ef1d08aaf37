"""Backup and restore of the whole clinic database as one compressed JSON file (any backend to any backend).

The backup is taken in one read transaction, so it is consistent. Restore needs an initialised, empty
database; it inserts every table in dependency order in one transaction and moves PostgreSQL's id
sequences past the restored ids.
"""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Date, DateTime, Engine, func, select, text

from ketaplan.course.db import require_schema
from ketaplan.course.schema import Base
from ketaplan.errors import InputError

FORMAT = "ketaplan-clinic-backup/1"


def _plain(v):
    return v.isoformat() if isinstance(v, (datetime, date)) else v


def backup(engine: Engine, path: str | Path) -> dict[str, int]:
    """Write every table to ``path`` (.json.gz); returns the row count per table."""
    require_schema(engine)
    tables, counts = {}, {}
    with engine.connect() as conn, conn.begin():
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        for table in Base.metadata.sorted_tables:
            rows = [{k: _plain(v) for k, v in row._mapping.items()} for row in conn.execute(select(table))]
            tables[table.name] = rows
            counts[table.name] = len(rows)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, "revision": revision, "tables": tables}, fh)
    return counts


def restore(engine: Engine, path: str | Path) -> dict[str, int]:
    """Load a backup into an initialised, empty database."""
    require_schema(engine)
    p = Path(path)
    if not p.is_file():
        raise InputError("backup", str(path), "the file does not exist")
    try:
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError("backup", str(path), f"is not a ketaplan backup ({exc})") from None
    if not (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("tables"), dict)
            and "revision" in data):
        raise InputError("backup", str(path), f"is not a {FORMAT} file")
    counts = {}
    with engine.begin() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if revision != data["revision"]:
            raise InputError("backup", data["revision"], f"was taken at schema revision {data['revision']}; this "
                             f"database is at {revision} (migrate one of them first)")
        for table in Base.metadata.sorted_tables:
            if conn.execute(select(func.count()).select_from(table)).scalar():
                raise InputError("--db", str(engine.url.render_as_string(hide_password=True)),
                                 f"is not empty (table {table.name}); restore into a new database")
        for table in Base.metadata.sorted_tables:
            rows = [_typed(table, r) for r in data["tables"].get(table.name, [])]
            if rows:
                conn.execute(table.insert(), rows)
            counts[table.name] = len(rows)
            if engine.dialect.name == "postgresql" and "id" in table.c and rows:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                  f"(SELECT MAX(id) FROM {table.name}))"))
    return counts


def _typed(table, row: dict) -> dict:
    out = {}
    for col in table.columns:
        v = row.get(col.name)
        if v is not None and isinstance(col.type, DateTime):
            v = datetime.fromisoformat(v)
        elif v is not None and isinstance(col.type, Date):
            v = date.fromisoformat(v)
        out[col.name] = v
    return out
