"""`leadwatch analyze` end to end: a CSV (canonical or mapped headings) or the stored leads in,
a terminal report, JSON or a self-contained HTML file out; clear errors for bad input."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from leadwatch.cli import app
from leadwatch.config import Settings
from leadwatch.core.leads import EventType
from leadwatch.db.engine import make_session_factory, unit_of_work
from leadwatch.escalations import settings as settings_service
from leadwatch.escalations.document import EscalationSettings
from tests.integration.test_lead_export import T0, lead, store
from tests.model.history import make_history

runner = CliRunner()


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "LEADWATCH_HOME": str(settings.home),
        "LEADWATCH_DATABASE_URL": settings.resolved_database_url,
        "LEADWATCH_DEFAULT_DEALERSHIP": settings.default_dealership,
        "LEADWATCH_DEFAULT_TIMEZONE": settings.default_timezone,
        "COLUMNS": "160",
    }


@pytest.fixture(scope="module")
def history_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flow") / "history.csv"
    make_history(leads=3000, seed=8, days=200).leads.to_csv(path, index=False)
    return path


def analyze(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["analyze", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_csv_to_json(env: dict[str, str], history_csv: Path) -> None:
    code, out, err = analyze(env, "--data", str(history_csv), "--json", "--min-group", "50")
    assert code == 0, err
    report = json.loads(out)
    assert report["leads"] == 3000 and report["min_group"] == 50
    overall = report["overall"]["d30"]
    assert 0 < overall["low"] < overall["rate"] < overall["high"] < 1
    sources = next(b for b in report["breakdowns"] if b["dimension"] == "source")
    assert {row["name"] for row in sources["rows"]} >= {"Website", "Facebook", "Referral"}
    assert all(row["small"] == (row["d30"]["n"] < 50) for row in sources["rows"])
    assert [b["name"] for b in report["speed"]["buckets"]][0] == "< 5 min"
    assert report["speed"]["hours"][0]["hours"] == "Mon-Sat 09:00-20:00, Sun closed"
    assert report["recommendations"] and all("n = " in r["text"] for r in report["recommendations"])


def test_csv_to_terminal_and_self_contained_html(
    env: dict[str, str], history_csv: Path, tmp_path: Path
) -> None:
    page = tmp_path / "flow.html"
    code, out, err = analyze(env, "--data", str(history_csv), "--html", str(page))
    assert code == 0, err
    for heading in ("Recommendations", "Speed to lead", "Stage funnel", "Open leads by age"):
        assert heading in out
    assert "HTML report written to" in out
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and html.count("<svg") >= 6
    assert "<title" in html and 'role="img"' in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html
    assert "Facebook" in html and "Speed to lead" in html


def test_mapping_as_of_hours_and_dealership(
    env: dict[str, str], history_csv: Path, tmp_path: Path
) -> None:
    text = history_csv.read_text(encoding="utf-8").replace("created_at", "Internet Up Date", 1)
    renamed = tmp_path / "crm.csv"
    renamed.write_text(text, encoding="utf-8")
    code, _, err = analyze(env, "--data", str(renamed), "--json")
    assert code == 2 and "created_at" in err and "--mapping" in err
    mapping = tmp_path / "map.txt"
    mapping.write_text("Internet Up Date = created_at\n", encoding="utf-8")
    code, out, err = analyze(
        env,
        "--data",
        str(renamed),
        "--mapping",
        str(mapping),
        "--as-of",
        "2025-04-01T00:00",
        "--hours",
        "mon-fri 08:00-18:00; sat 09:00-13:00",
        "--dealership",
        "lakeshore auto",
        "--cohort",
        "week",
        "--target",
        "appointment=30d",
        "--target",
        "contacted=4h",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["as_of"] == "2025-04-01 00:00:00"
    assert report["excluded"]["created after the as-of"] > 0
    assert [row["name"] for row in report["breakdowns"][3]["rows"]] == ["Lakeshore Auto"]
    targets = {t["stage"]: t["target_minutes"] for t in report["funnel"]["stage_times"]}
    assert (targets["appointment"], targets["contacted"], targets["offer"]) == (43200, 240, 2880)
    assert report["speed"]["hours"] == [
        {
            "dealership": "Lakeshore Auto",
            "hours": "Mon-Fri 08:00-18:00, Sat 09:00-13:00, Sun closed",
            "source": "--hours",
        }
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--data", "missing.csv"), "no such file"),
        (("--hours", "someday 09:00-17:00"), "days are mon"),
        (("--hours", "mon 18:00-09:00"), "closes before it opens"),
        (("--as-of", "soon"), "is not a date"),
        (("--cohort", "year"), "'month' or 'week'"),
        (("--target", "signed=2d"), "stages are contacted"),
        (("--target", "offer=soon"), "such as offer=30m"),
        (("--dealership", "Nowhere Motors"), "no such dealership"),
    ],
)
def test_bad_options_say_what_is_wrong(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    code, _, err = analyze(env, *args)
    assert code == 2 and message in err, err


def test_empty_csv_and_empty_database(env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("lead_id,created_at\n", encoding="utf-8")
    code, _, err = analyze(env, "--data", str(empty))
    assert code == 2 and "no leads to analyse" in err
    code, _, err = analyze(env)
    assert code == 2 and "no leads to analyse" in err and "leadwatch import" in err


def test_stored_leads_with_the_escalation_settings_hours(
    env: dict[str, str], engine: Engine
) -> None:
    factory = make_session_factory(engine)
    leads = []
    for i in range(60):
        events: tuple[tuple[EventType, timedelta], ...] = (
            (EventType.CONTACTED, timedelta(minutes=3 if i % 2 else 90)),
        )
        if i % 3 == 0:
            events += ((EventType.SOLD, timedelta(days=4)),)
        dealer = "Lakeshore Auto" if i % 5 == 0 else "Riverside Motors"
        leads.append(
            lead(f"S{i}", dealership=dealer, created=T0 + timedelta(hours=i * 5), events=events)
        )
    with unit_of_work(factory) as db_session:
        store(db_session, leads)
        document = EscalationSettings.model_validate(
            {
                "working_hours": {
                    "dealerships": {"Lakeshore Auto": {"weekly": {"sun": ["10:00-16:00"]}}}
                }
            }
        )
        settings_service.save(db_session=db_session, document=document, author="test", now=T0)
    as_of = (T0 + timedelta(days=60)).isoformat()  # aware: taken to each store's clock
    code, out, err = analyze(env, "--json", "--min-group", "5", "--as-of", as_of)
    assert code == 0, err
    report = json.loads(out)
    assert report["leads"] == 60 and report["as_of"] == "2025-06-30 14:00:00+00:00"
    assert report["overall"]["d30"] == {
        "n": 60,
        "count": 20,
        "rate": 0.3333,
        "low": 0.2273,
        "high": 0.4594,
    }
    used = {u["dealership"]: u for u in report["speed"]["hours"]}
    assert used["Lakeshore Auto"]["hours"] == "Mon-Sat closed, Sun 10:00-16:00"
    assert used["Riverside Motors"]["source"] == "escalation settings"
    code, out, err = analyze(env, "--json", "--dealership", "LAKESHORE AUTO")
    assert code == 0, err
    assert json.loads(out)["leads"] == 12
    code, out, err = analyze(env)
    assert code == 0 and "Lead flow" in out and "Riverside Motors" in out, err
