"""The escalation CLI on a real database (SQLite and PostgreSQL): preview, the settings file
(export, import, history), list, show, claim, statistics and `worker --once`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from leadwatch.cli import app
from leadwatch.config import Settings
from leadwatch.core.calendar import WEEKDAYS
from leadwatch.db.engine import unit_of_work
from leadwatch.escalations import settings as settings_service
from tests.integration.escalation_support import (
    FRIDAY_EVENING,
    World,
    make_world,
    staffed_document,
)

runner = CliRunner()
SATURDAY_NINE = datetime.fromisoformat("2025-06-07T09:00:00-05:00")


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "LEADWATCH_HOME": str(settings.home),
        "LEADWATCH_DATABASE_URL": settings.resolved_database_url,
        "LEADWATCH_DEFAULT_DEALERSHIP": settings.default_dealership,
        "LEADWATCH_DEFAULT_TIMEZONE": settings.default_timezone,
        "COLUMNS": "200",  # rich tables: no wrapping inside the checked words
    }


@pytest.fixture
def world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    """Staffed settings (version 1) saved in the database the CLI uses."""
    return make_world(session_factory, settings, FRIDAY_EVENING)


@pytest.fixture
def live_world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    """For commands on the real clock: started 20 minutes ago, the store always open (so the
    time of day the tests run at changes nothing)."""
    world = make_world(session_factory, settings, datetime.now(UTC) - timedelta(minutes=20))
    always = {"default": {"weekly": {day: ["00:00-24:00"] for day in WEEKDAYS}}}
    world.save_settings(staffed_document(working_hours=always))
    return world


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def preview(env: dict[str, str], lead: Path, at: str, *args: str) -> Result:
    return cli(env, "escalation", "preview", "--lead", str(lead), "--at", at, *args)


def lead_file(tmp_path: Path, **fields: Any) -> Path:
    lead = {
        "external_id": "P-1",
        "created_at": "2025-06-06T18:20:00",
        "rep": "Dana Reyes",
        "lead_source": "Cars.com",
        "vehicle": {"make": "Toyota", "model": "Camry", "price": 32000},
    } | fields
    path = tmp_path / "lead.json"
    path.write_text(json.dumps(lead))
    return path


def version_in_force(world: World) -> int:
    with unit_of_work(world.factory) as db_session:
        return settings_service.current_version(db_session=db_session)


# --- preview ---------------------------------------------------------------------------------


def test_preview_friday_evening_holds_until_saturday(
    env: dict[str, str], world: World, tmp_path: Path
) -> None:
    path = lead_file(tmp_path)
    for at in ("2025-06-06T18:30", "2025-06-06T23:30:00+00:00", "2025-06-07T01:30+02:00"):
        result = preview(env, path, at, "--probability", "0.15", "--json")
        assert result.exit_code == 0, result.stderr
        shown = json.loads(result.stdout)
        assert (shown["level"], shown["probability"], shown["settings_version"]) == (
            "high",
            0.15,
            1,
        )
        steps = shown["steps"]
        assert steps[0]["action"] == "hold", at
        # The first step (5 min) falls after Friday's closing: it waits for the opening.
        assert datetime.fromisoformat(steps[0]["at"]) == FRIDAY_EVENING + timedelta(minutes=5)
        assert "Sat 07 Jun 09:00" in steps[0]["reason"]
        assert (steps[1]["action"], datetime.fromisoformat(steps[1]["at"])) == (
            "notify",
            SATURDAY_NINE,
        )
        assert (steps[1]["recipients"], steps[1]["channels"]) == (["Dana Reyes"], ["sms", "in_app"])
    table = preview(env, path, "2025-06-06T18:30", "--probability", "0.15")
    assert table.exit_code == 0, table.stderr
    assert "high (P 0.15)" in table.stdout
    assert "Fri 06 Jun 18:35" in table.stdout and "Sat 07 Jun 09:00" in table.stdout


def test_preview_in_open_hours_notifies_after_the_first_delay(
    env: dict[str, str], world: World, tmp_path: Path
) -> None:
    path = lead_file(tmp_path, created_at="2025-06-03T09:55:00")
    result = preview(env, path, "2025-06-03T10:00-05:00", "--probability", "0.15", "--json")
    assert result.exit_code == 0, result.stderr
    first = json.loads(result.stdout)["steps"][0]
    start = datetime.fromisoformat("2025-06-03T10:00:00-05:00")
    assert (first["action"], datetime.fromisoformat(first["at"])) == (
        "notify",
        start + timedelta(minutes=5),
    )


def test_preview_refuses_a_bad_lead_file_and_a_missing_probability(
    env: dict[str, str], world: World, tmp_path: Path
) -> None:
    bad = lead_file(tmp_path, created_at="last tuesday", vehicle={"price": -5})
    result = cli(env, "escalation", "preview", "--lead", str(bad), "--probability", "0.1")
    assert result.exit_code == 2
    assert "not a valid lead" in result.stderr and str(bad) in result.stderr
    assert "created_at" in result.stderr and "vehicle.price" in result.stderr
    good = lead_file(tmp_path)
    result = preview(env, good, "2025-06-06T18:30")
    assert result.exit_code == 2
    assert "no active model" in result.stderr and "leadwatch train" in result.stderr
    assert "--probability" in result.stderr
    result = preview(env, good, "Friday", "--probability", "0.1")
    assert result.exit_code == 2 and "not an ISO 8601 time" in result.stderr
    assert cli(env, "escalation", "list", "--json").stdout.strip() == "[]"  # nothing stored


# --- settings --------------------------------------------------------------------------------


def test_settings_export_edit_import_and_history(
    env: dict[str, str], world: World, tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    result = cli(env, "settings", "export", str(path))
    assert result.exit_code == 0, result.stderr
    assert f"settings version 1 written to {path}" in result.stderr
    document = json.loads(path.read_text())
    assert document["claim_timeout_minutes"] == 30.0
    assert [p["key"] for p in document["people"]] == ["dana", "sam", "gina", "bdc"]
    assert json.loads(cli(env, "settings", "export").stdout) == document
    document["claim_timeout_minutes"] = 45
    path.write_text(json.dumps(document))
    result = cli(env, "settings", "import", str(path), "--author", "alice", "--comment", "why")
    assert result.exit_code == 0, result.stderr
    assert "saved settings version 2 by alice" in result.stdout
    assert "claim_timeout_minutes: 30.0 -> 45.0" in result.stdout
    assert version_in_force(world) == 2
    history = cli(env, "settings", "history")
    assert history.exit_code == 0, history.stderr
    lines = history.stdout.splitlines()
    alice = next(line for line in lines if "alice" in line)
    assert "2" in alice and "claim_timeout_minutes: 30.0 -> 45.0" in alice and "why" in alice
    assert lines.index(alice) < lines.index(next(line for line in lines if " test " in line))


def test_change_lines_keep_their_bracketed_keys(
    env: dict[str, str], world: World, tmp_path: Path
) -> None:
    people = staffed_document()["people"]
    document = staffed_document(people=[dict(people[0], name="Dana R."), *people[1:]])
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(document))
    dry = cli(env, "settings", "import", str(path), "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "people[dana].name: Dana Reyes -> Dana R." in dry.stdout
    comment = "[HR-12] name change"
    result = cli(env, "settings", "import", str(path), "--author", "bob", "--comment", comment)
    assert result.exit_code == 0, result.stderr
    assert "people[dana].name: Dana Reyes -> Dana R." in result.stdout
    history = cli(env, "settings", "history").stdout
    assert "people[dana].name" in history and "[HR-12] name change" in history


def test_settings_import_refuses_a_broken_file_by_path(
    env: dict[str, str], world: World, tmp_path: Path
) -> None:
    bad_step = {"steps": [{"recipients": ["rep"], "channels": ["pigeon"]}]}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(staffed_document(claim_timeout=5, policies={"high": bad_step})))
    for extra in ([], ["--dry-run"]):
        result = cli(env, "settings", "import", str(path), "--author", "alice", *extra)
        assert result.exit_code == 2
        assert str(path) in result.stderr and "escalation settings refused" in result.stderr
        assert "claim_timeout: Extra inputs are not permitted" in result.stderr
        assert "policies.high.steps.0.channels.0" in result.stderr
    path.write_text("{not json")
    result = cli(env, "settings", "import", str(path))
    assert result.exit_code == 2 and str(path) in result.stderr
    assert version_in_force(world) == 1


def test_a_dry_run_saves_nothing(env: dict[str, str], world: World, tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(staffed_document(watch_hours=12)))
    result = cli(env, "settings", "import", str(path), "--author", "alice", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "watch_hours: 72.0 -> 12.0" in result.stdout and "saved" not in result.stdout
    assert version_in_force(world) == 1
    path.write_text(json.dumps(staffed_document()))
    same = cli(env, "settings", "import", str(path), "--dry-run")
    assert same.exit_code == 0 and "no changes" in same.stdout
    assert "alice" not in cli(env, "settings", "history").stdout


# --- escalations on the real clock -----------------------------------------------------------


def test_list_show_claim_and_stats(env: dict[str, str], live_world: World) -> None:
    critical = live_world.add_lead("C-1", probability=0.05)
    high = live_world.add_lead("H-1", probability=0.15)
    live_world.watch(critical, high)
    critical_esc, high_esc = live_world.escalation(critical), live_world.escalation(high)

    result = cli(env, "escalation", "list", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["id"], r["lead_id"], r["level"], r["status"]) for r in rows] == [
        (high_esc.id, high, "high", "active"),
        (critical_esc.id, critical, "critical", "active"),
    ]
    assert rows[1]["depth"] == 1 and rows[0]["depth"] == 0

    shown = cli(env, "escalation", "show", str(critical_esc.id))
    assert shown.exit_code == 0, shown.stderr
    assert f"escalation {critical_esc.id}: lead {critical}, critical, active, settings v2" in (
        shown.stdout
    )
    assert "start" in shown.stdout and "notify" in shown.stdout
    assert "Sam Patel (sms)" in shown.stdout and "critical line 0.10" in shown.stdout
    missing = cli(env, "escalation", "show", "9999")
    assert missing.exit_code == 2 and "no escalation 9999" in missing.stderr

    claimed = cli(env, "escalation", "claim", str(high_esc.id), "--by", "Sam Patel")
    assert claimed.exit_code == 0, claimed.stderr
    assert "claimed by Sam Patel; log contact within 30 min" in claimed.stdout
    blank = cli(env, "escalation", "claim", str(critical_esc.id), "--by", " ")
    assert blank.exit_code == 2 and "--by must name who" in blank.stderr
    again = cli(env, "escalation", "claim", str(high_esc.id), "--by", "Dana Reyes")
    assert again.exit_code == 2 and "already claimed by Sam Patel" in again.stderr
    rows = json.loads(cli(env, "escalation", "list", "--status", "claimed", "--json").stdout)
    assert [(r["id"], r["claimed_by"]) for r in rows] == [(high_esc.id, "Sam Patel")]
    bogus = cli(env, "escalation", "list", "--status", "clamed")
    assert bogus.exit_code == 2 and "live, active, claimed, stopped or exhausted" in bogus.stderr

    result = cli(env, "escalation", "stats", "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert (stats["total"], stats["live"], stats["succeeded"]) == (2, 2, 0)
    assert stats["success_rate"] is None  # nothing has ended yet
    assert stats["by_status"] == {"active": 1, "claimed": 1}
    assert {level: row["total"] for level, row in stats["by_level"].items()} == {
        "critical": 1,
        "high": 1,
    }
    assert {channel: row["total"] for channel, row in stats["by_channel"].items()} == {
        "email": 2,
        "in_app": 2,
        "sms": 2,
    }
    assert stats["time_to_claim"]["count"] == 1
    assert stats["time_to_claim"]["median_minutes"] >= 20  # claimed on the real clock
    text = cli(env, "escalation", "stats")
    assert text.exit_code == 0 and "2 escalations in 30 days, 2 live" in text.stdout


def test_worker_once_runs_a_due_step(env: dict[str, str], live_world: World) -> None:
    lead = live_world.add_lead("M-1", probability=0.25)  # medium: first step after 15 min
    live_world.watch(lead)
    esc = live_world.escalation(lead)
    assert esc.due_at is not None and esc.due_at < datetime.now(UTC)
    assert live_world.messages(esc.id) == []

    result = cli(env, "worker", "--once")
    assert result.exit_code == 0, result.stderr
    assert "ran 1 due steps (0 failed)" in result.stdout
    step = live_world.decisions(esc.id)[-1]
    assert (step.action, step.step) == ("notify", 0), step.reason
    assert {(r["name"], r["channel"]) for r in step.recipients} == {
        ("Dana Reyes", "email"),
        ("Dana Reyes", "in_app"),
    }
    assert {(m.recipient, m.channel) for m in live_world.messages(esc.id)} == {
        ("dana", "email"),
        ("dana", "in_app"),
    }
    assert live_world.escalation(lead).step == 1
    again = cli(env, "worker", "--once")
    assert again.exit_code == 0 and "ran 0 due steps" in again.stdout  # the next is 45 min off
