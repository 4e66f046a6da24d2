"""Shared fixtures: a real database on SQLite and on PostgreSQL, and the app on top of it.

The PostgreSQL tier uses the server at LEADWATCH_TEST_PG_URL (default: 127.0.0.1:5432, trust
auth, database `test`) to create a database of its own for the session and drop it after.
Without a server the tier is skipped with a loud notice, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.db.engine import make_engine, make_session_factory
from leadwatch.db.migrate import upgrade
from leadwatch.db.registry import Base

PG_ADMIN_URL = os.environ.get(
    "LEADWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
_pg_skipped: list[str] = []


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no server here"
        return str(exc).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    problem = _pg_reachable()
    if problem is not None:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {problem}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the PostgreSQL tier must run)")
        _pg_skipped.append(message)
        pytest.skip(message)
    name = f"lw_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_skipped:
        terminalreporter.write_sep("!", "PostgreSQL tier SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_pg_skipped[0], red=True)


@pytest.fixture(scope="session")
def _sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("sqlite-home")
    engine = make_engine(Settings(home=home, _env_file=None))  # type: ignore[call-arg]
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _pg_engine(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("pg-home")
    engine = make_engine(Settings(home=home, database_url=pg_url, _env_file=None))  # type: ignore[call-arg]
    upgrade(engine)
    yield engine
    engine.dispose()


def _empty(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated, empty database: each test runs once on SQLite and once on PostgreSQL."""
    fixture = "_sqlite_engine" if request.param == "sqlite" else "_pg_engine"
    db_engine: Engine = request.getfixturevalue(fixture)
    _empty(db_engine)
    return db_engine


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def db_session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    session = session_factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    url = engine.url.render_as_string(hide_password=False)
    return Settings(  # type: ignore[call-arg]
        home=tmp_path,
        database_url=url,
        default_dealership="Riverside Motors",
        default_timezone="America/Chicago",
        _env_file=None,
    )


FIXED_NOW = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def fixtures_dir() -> Path:
    return Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def _trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with one small logistic model, trained once per test session."""
    from leadwatch import LeadOutcomePredictor
    from leadwatch.prediction.artifacts import store_for
    from tests.model.history import make_history

    home = tmp_path_factory.mktemp("trained-home")
    predictor = LeadOutcomePredictor("logistic")
    predictor.train(make_history(leads=6_000, seed=3, days=365).leads)
    predictor.save(store_for(home, None))
    return home


@pytest.fixture(scope="module")
def model_home(_trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained home for one test module, which may change its copy."""
    import shutil

    home = tmp_path_factory.mktemp("model-home") / "home"
    shutil.copytree(_trained_home, home)
    return home
