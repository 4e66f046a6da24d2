"""The CLI end to end on a real database: import (CSV, ADF), quarantine, generate, tokens."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from leadwatch.cli import app
from leadwatch.config import Settings
from leadwatch.db.engine import make_session_factory, unit_of_work
from leadwatch.leads.models import Lead, QuarantinedRecord

runner = CliRunner()


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "LEADWATCH_HOME": str(settings.home),
        "LEADWATCH_DATABASE_URL": settings.resolved_database_url,
        "LEADWATCH_DEFAULT_DEALERSHIP": settings.default_dealership,
        "LEADWATCH_DEFAULT_TIMEZONE": settings.default_timezone,
    }


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout


def lead_count(engine: Engine) -> int:
    with unit_of_work(make_session_factory(engine)) as db_session:
        return db_session.scalar(select(func.count()).select_from(Lead)) or 0


def test_import_crm_export_twice_is_idempotent(
    env: dict[str, str], engine: Engine, fixtures_dir: Path
) -> None:
    path = fixtures_dir / "csv" / "crm_export.csv"
    code, out = run(env, "import", str(path), "--json")
    assert code == 0, out
    first = json.loads(out)
    assert first["rejected"] == 0 and first["imported"] >= 3 and first["updated"] == 0
    code, out = run(env, "import", str(path), "--json")
    second = json.loads(out)
    assert (second["imported"], second["updated"]) == (0, first["imported"] + first["linked"])
    assert lead_count(engine) == first["imported"] + first["linked"]
    with unit_of_work(make_session_factory(engine)) as db_session:
        lead = db_session.scalars(select(Lead).where(Lead.external_id == "A-100")).one()
        # 03/05/2024 2:30 PM at a dealership in the default zone (Chicago, CST) is 20:30 UTC
        assert lead.created_at.isoformat() == "2024-03-05T20:30:00+00:00"
        assert (lead.rep, lead.lead_source, lead.vehicle_model) == (
            "Bob Smith",
            "AutoTrader",
            "Civic",
        )
        assert lead.status == "sold" and lead.sold_at is not None
        assert lead.dealership.name == "Windy City Honda"


def test_mixed_file_keeps_valid_rows_and_quarantines_the_rest(
    env: dict[str, str], engine: Engine, fixtures_dir: Path
) -> None:
    path = fixtures_dir / "csv" / "mixed.csv"
    code, out = run(env, "import", str(path), "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["imported"], result["rejected"]) == (2, 3)
    by_row: dict[int, set[str]] = {}
    for error in result["errors"]:
        by_row.setdefault(error["row"], set()).add(error["field"])
        assert error["message"]
    assert set(by_row) == {3, 4, 6}  # line numbers in the file, the header being line 1
    assert "lead_id" in by_row[3] and "created_at" in by_row[3]
    assert lead_count(engine) == 2

    code, out = run(env, "import", "--rejected", "--json")
    assert code == 0
    listed = json.loads(out)
    assert listed["total"] == 3
    assert {item["row"] for item in listed["items"]} == {3, 4, 6}
    assert all(item["source"] == str(path) for item in listed["items"])
    assert any("13/45/2024" in item["raw"] for item in listed["items"])
    code, out = run(env, "import", "--rejected")
    assert code == 0 and "Quarantined records" in out


def test_mapping_file_covers_unknown_headings(
    env: dict[str, str], engine: Engine, fixtures_dir: Path
) -> None:
    folder = fixtures_dir / "csv"
    code, out = run(
        env,
        "import",
        str(folder / "custom_headings.csv"),
        "--mapping",
        str(folder / "mapping.txt"),
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["imported"] >= 1
    code, out = run(env, "import", str(folder / "custom_headings.csv"), "--json")
    assert code == 2  # without the mapping the required columns are missing


def test_adf_file_import(env: dict[str, str], engine: Engine, fixtures_dir: Path) -> None:
    path = fixtures_dir / "adf" / "multi_prospect.xml"
    code, out = run(env, "import", str(path), "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["imported"] + result["linked"] >= 2
    assert all(isinstance(e["row"], int) for e in result["errors"])
    code, out = run(env, "import", str(fixtures_dir / "adf" / "billion_laughs.xml"), "--json")
    assert code == 2


def test_nul_bytes_and_bad_encoding_do_not_lose_the_file(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(
        b"lead_id,created_at,rep\nN-1,2024-03-05 09:00,Bo\x00b\nN-2,2024-03-05 09:30,Jos\xe9\n"
    )
    code, out = run(env, "import", str(path), "--json")
    assert code == 0, out
    assert json.loads(out)["imported"] == 2
    with unit_of_work(make_session_factory(engine)) as db_session:
        reps = set(db_session.scalars(select(Lead.rep)))
    assert reps == {"Bo\ufffdb", "Jos\ufffd"}


def test_missing_file_and_empty_file_are_clear_errors(env: dict[str, str], tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", str(tmp_path / "nope.csv")], env=env)
    assert result.exit_code == 2 and "no such file" in result.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = runner.invoke(app, ["import", str(empty)], env=env)
    assert result.exit_code == 2 and "empty" in result.stderr


def test_generate_then_import_links_repeat_shoppers(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    out_file = tmp_path / "history.csv"
    code, _ = run(env, "generate", "--leads", "3000", "--seed", "4", "--out", str(out_file))
    assert code == 0
    truth = out_file.with_suffix(".truth.csv")
    with truth.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3000
    assert all(float(r["p_sale_14d"]) <= float(r["p_sale_30d"]) for r in rows)
    code, out = run(env, "import", str(out_file), "--json")
    result = json.loads(out)
    assert result["rejected"] == 0
    assert result["imported"] + result["linked"] == 3000
    assert 0 < result["linked"] < 150  # about 2 % of the shoppers come back through a second portal
    with unit_of_work(make_session_factory(engine)) as db_session:
        assert db_session.scalar(select(func.count()).select_from(QuarantinedRecord)) == 0
        linked = db_session.scalar(
            select(func.count()).select_from(Lead).where(Lead.duplicate_of_id.is_not(None))
        )
    assert linked == result["linked"]


def test_tokens_and_dealerships(env: dict[str, str]) -> None:
    code, out = run(env, "token", "create", "crm bridge")
    assert code == 0 and "lw_" in out
    token = out.split(": ", 1)[1].strip()
    code, out = run(env, "token", "list")
    assert code == 0 and "crm bridge" in out and token not in out
    code, out = run(env, "token", "revoke", "1")
    assert code == 0
    code, out = run(env, "dealership", "set", "Lakeshore Auto", "--timezone", "America/New_York")
    assert code == 0
    code, out = run(env, "dealership", "list")
    assert "Lakeshore Auto" in out and "America/New_York" in out
    result = runner.invoke(app, ["dealership", "set", "X", "--timezone", "Mars/Olympus"], env=env)
    assert result.exit_code == 2 and "unknown IANA time zone" in result.stderr


def test_invalid_settings_are_reported_by_name(tmp_path: Path) -> None:
    env = {"LEADWATCH_HOME": str(tmp_path), "LEADWATCH_DEFAULT_TIMEZONE": "Nowhere/Land"}
    result = runner.invoke(app, ["token", "list"], env=env)
    assert result.exit_code == 2
    assert "LEADWATCH_DEFAULT_TIMEZONE" in result.stderr


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("import", "generate", "serve", "demo", "db", "token", "dealership"):
        assert command in result.stdout


@pytest.mark.postgres
def test_an_out_of_date_postgresql_schema_is_refused_not_migrated(pg_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.conftest import PG_ADMIN_URL

    name = "lw_test_unmigrated"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        env = {"LEADWATCH_DATABASE_URL": url}
        result = runner.invoke(app, ["token", "list"], env=env)
        assert result.exit_code == 2 and "leadwatch db upgrade" in result.stderr
        result = runner.invoke(app, ["db", "upgrade"], env=env)
        assert result.exit_code == 0, result.stderr
        assert runner.invoke(app, ["token", "list"], env=env).exit_code == 0
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
