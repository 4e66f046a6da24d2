"""The Alembic migrations produce exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from leadwatch.db.migrate import current_revision, head_revision, upgrade
from leadwatch.db.registry import Base


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_database_is_at_head_and_upgrade_is_repeatable(engine: Engine) -> None:
    assert current_revision(engine) == head_revision(engine)
    upgrade(engine)  # a second upgrade is a no-op, as `serve` relies on
    assert current_revision(engine) == head_revision(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"leads", "lead_events", "dealerships", "rejected_records", "api_tokens"} <= tables
