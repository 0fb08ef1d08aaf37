"""Alembic migrations: up and down on SQLite and PostgreSQL, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ketaplan.course.db import downgrade, upgrade
from ketaplan.course.schema import Base


def test_upgrade_and_downgrade(clinic_engine):
    tables = set(inspect(clinic_engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    downgrade(clinic_engine, "base")
    assert set(inspect(clinic_engine).get_table_names()) <= {"alembic_version"}
    upgrade(clinic_engine)
    assert {t.name for t in Base.metadata.sorted_tables} <= set(inspect(clinic_engine).get_table_names())


def test_the_models_and_the_migrations_agree(clinic_engine):
    with clinic_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
