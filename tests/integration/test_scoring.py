"""Intake scores new open leads with the active model and stores the score."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from leadwatch import LeadOutcomePredictor
from leadwatch.app import create_app
from leadwatch.auth import service as auth_service
from leadwatch.cli import app as cli_app
from leadwatch.config import Settings
from leadwatch.db.engine import make_session_factory, unit_of_work
from leadwatch.leads.models import Lead
from leadwatch.prediction.artifacts import store_for
from tests.conftest import FIXED_NOW
from tests.model.history import make_history


@pytest.fixture
def scored_settings(settings: Settings, model_home: Path) -> Settings:
    return settings.model_copy(update={"home": model_home})


@pytest.fixture
def client(engine: Engine, scored_settings: Settings) -> Iterator[TestClient]:
    app = create_app(scored_settings, engine=engine, clock=lambda: FIXED_NOW)
    with unit_of_work(make_session_factory(engine)) as db_session:
        _, token = auth_service.create_token(db_session=db_session, name="t", now=FIXED_NOW)
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


def test_a_posted_lead_is_scored_at_once(client: TestClient) -> None:
    lead = {
        "external_id": "S-1",
        "created_at": "2025-06-02T09:30:00",
        "rep": "Unknown Rep",
        "lead_source": "Facebook",
        "vehicle": {"make": "Toyota", "model": "Camry"},
    }
    response = client.post("/api/v1/leads", json=lead)
    assert response.status_code == 201
    stored = client.get(f"/api/v1/leads/{response.json()['leads'][0]['id']}").json()
    assert 0 < stored["sale_probability_14d"] <= stored["sale_probability_30d"] < 1
    assert stored["risk_level"] in {"critical", "high", "medium", "low"}
    assert stored["model_version"] and stored["scored_at"]
    assert isinstance(stored["top_factors"], list)


def test_sold_leads_are_not_scored(client: TestClient) -> None:
    lead = {
        "external_id": "S-2",
        "created_at": "2025-05-02T09:30:00",
        "events": [{"type": "sold", "occurred_at": "2025-05-04T12:00:00"}],
    }
    lead_id = client.post("/api/v1/leads", json=lead).json()["leads"][0]["id"]
    assert client.get(f"/api/v1/leads/{lead_id}").json()["risk_level"] is None


def test_cli_import_scores_open_leads(
    engine: Engine, scored_settings: Settings, tmp_path: Path
) -> None:
    csv_file = tmp_path / "open.csv"
    csv_file.write_text(
        "lead_id,created_at,rep,lead_source,vehicle_make,vehicle_model,sold_at\n"
        "O-1,2025-06-01 10:00,Ana Ruiz,Website,Ford,F-150,\n"
        "O-2,2025-05-01 10:00,Ana Ruiz,Website,Ford,F-150,2025-05-03 10:00\n"
    )
    env = {
        "LEADWATCH_HOME": str(scored_settings.home),
        "LEADWATCH_DATABASE_URL": scored_settings.resolved_database_url,
    }
    result = CliRunner().invoke(cli_app, ["import", str(csv_file), "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 2
    with unit_of_work(make_session_factory(engine)) as db_session:
        levels = dict(db_session.execute(select(Lead.external_id, Lead.risk_level)).all())
    assert levels["O-1"] in {"critical", "high", "medium", "low"}
    assert levels["O-2"] is None


def test_one_by_one_and_batch_scoring_agree(
    engine: Engine, scored_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from leadwatch.core.leads import Customer, EventType, LeadEventIn, LeadIn, Vehicle
    from leadwatch.leads import scoring
    from leadwatch.leads.directory import DealershipDirectory
    from leadwatch.leads.store import store_leads

    predictor = LeadOutcomePredictor.load(store=store_for(scored_settings.home, None))
    leads = []
    for i in range(12):
        created = FIXED_NOW - timedelta(hours=3 * i + 1)
        events = (LeadEventIn(EventType.CREATED, created),)
        if i % 3 == 0:
            events += (LeadEventIn(EventType.CONTACTED, created + timedelta(minutes=7 * i)),)
        leads.append(
            (
                i + 2,
                LeadIn(
                    source_system="t",
                    external_id=f"B-{i}",
                    created_at=created,
                    rep=["Ana Ruiz", None, "New Person"][i % 3],
                    lead_source=["Website", "Facebook", "Referral", None][i % 4],
                    vehicles=(Vehicle(make="Toyota", model="Camry"),),
                    customer=Customer(emails=(f"b{i}@example.com",)),
                    events=events,
                ),
            )
        )
    factory = make_session_factory(engine)
    with unit_of_work(factory) as db_session:
        directory = DealershipDirectory(
            default_name="Riverside Motors", default_timezone="America/Chicago"
        )
        ids = [
            s.lead_id
            for s in store_leads(
                db_session=db_session,
                leads=leads,
                directory=directory.load(db_session=db_session),
                now=FIXED_NOW,
            )
        ]
    results = []
    for limit in (0, 100):  # 0: always the batch path; 100: always one by one
        monkeypatch.setattr(scoring, "ONE_BY_ONE", limit)
        with unit_of_work(factory) as db_session:
            scoring.score_leads(
                db_session=db_session, lead_ids=ids, predictor=predictor, now=FIXED_NOW
            )
        with unit_of_work(factory) as db_session:
            results.append(
                db_session.execute(
                    select(Lead.sale_probability_30d, Lead.risk_level, Lead.top_factors).order_by(
                        Lead.id
                    )
                ).all()
            )
    assert results[0] == results[1]


def test_training_rescores_the_open_leads(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    env = {
        "LEADWATCH_HOME": str(tmp_path / "home"),
        "LEADWATCH_DATABASE_URL": settings.resolved_database_url,
    }
    runner = CliRunner()
    open_lead = tmp_path / "open.csv"
    open_lead.write_text("lead_id,created_at,lead_source\nR-1,2025-06-01 10:00,Website\n")
    assert runner.invoke(cli_app, ["import", str(open_lead)], env=env).exit_code == 0
    history = make_history(leads=6_000, seed=3, days=365).leads
    for column in ("created_at", "contacted_at", "sold_at", "lost_at"):
        history[column] = history[column].dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("")
    data = tmp_path / "history.csv"
    history.to_csv(data, index=False)
    result = runner.invoke(cli_app, ["train", "--data", str(data), "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rescored_open_leads"] == 1
    with unit_of_work(make_session_factory(engine)) as db_session:
        lead = db_session.scalars(select(Lead).where(Lead.external_id == "R-1")).one()
    assert lead.risk_level is not None and lead.model_version is not None


def test_cli_import_escalates_fresh_open_leads_and_passes_over_old_ones(
    engine: Engine, scored_settings: Settings, tmp_path: Path
) -> None:
    """A history import only hands escalation the leads it could act on: a new lead older
    than the watch window gets no chain, one created minutes ago does (every level made
    critical here, so that any score escalates)."""
    from datetime import UTC, datetime, timedelta

    from leadwatch.escalations import settings as settings_service
    from leadwatch.escalations.document import EscalationSettings
    from leadwatch.escalations.models import Escalation
    from tests.integration.escalation_support import staffed_document

    week = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    document = staffed_document(
        thresholds={"critical": 0.999, "high": 0.9995, "medium": 0.9999},
        working_hours={"default": {"weekly": {day: ["00:00-24:00"] for day in week}}},
    )
    with unit_of_work(make_session_factory(engine)) as db_session:
        settings_service.save(
            db_session=db_session,
            document=EscalationSettings.model_validate(document),
            author="test",
            now=FIXED_NOW,
        )
    now = datetime.now(UTC)
    fresh = (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    old = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    csv_file = tmp_path / "mixed.csv"
    csv_file.write_text(
        "lead_id,created_at,rep,lead_source,vehicle_make,vehicle_model\n"
        f"F-1,{fresh},Ana Ruiz,Website,Ford,F-150\n"
        f"OLD-1,{old},Ana Ruiz,Website,Ford,F-150\n"
    )
    env = {
        "LEADWATCH_HOME": str(scored_settings.home),
        "LEADWATCH_DATABASE_URL": scored_settings.resolved_database_url,
    }
    result = CliRunner().invoke(cli_app, ["import", str(csv_file), "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    with unit_of_work(make_session_factory(engine)) as db_session:
        escalated = db_session.scalars(
            select(Lead.external_id).join(Escalation, Escalation.lead_id == Lead.id)
        ).all()
    assert escalated == ["F-1"]


def _intake_leads() -> list[tuple[int, Any]]:
    """A few leads as an API intake brings them: open ones in two time zones, a contacted
    one, a sold one, and a repeat shopper (linked to an earlier one, so not scored)."""
    from datetime import timedelta

    from leadwatch.core.leads import Customer, EventType, LeadEventIn, LeadIn, Vehicle

    leads = []
    for i in range(6):
        created = FIXED_NOW - timedelta(hours=5 * i + 1)
        events: tuple[LeadEventIn, ...] = (LeadEventIn(EventType.CREATED, created),)
        if i == 2:
            events += (LeadEventIn(EventType.CONTACTED, created + timedelta(minutes=9)),)
        if i == 3:
            events += (LeadEventIn(EventType.SOLD, created + timedelta(hours=2)),)
        leads.append(
            LeadIn(
                source_system="t",
                external_id=f"I-{i}",
                created_at=created,
                dealership="Harbor Auto" if i % 2 else None,
                rep=["Ana Ruiz", None, "New Person"][i % 3],
                lead_source=["Website", "Facebook", "Referral"][i % 3],
                vehicles=(Vehicle(make="Toyota", model="Camry", price=Decimal("31500")),),
                customer=Customer(full_name=f"Shopper {i}", emails=(f"i{i}@example.com",)),
                events=events,
            )
        )
    repeat = dataclasses.replace(leads[0], external_id="I-repeat", source_system="other")
    return [(n + 1, lead) for n, lead in enumerate([*leads, repeat])]


def test_scores_given_at_insert_equal_the_scores_of_a_stored_lead(
    engine: Engine, scored_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API intake scores its new leads from their values before inserting them: the scores
    must be those that scoring the stored lead gives, and the view handed to escalation must
    be what escalation would read back."""
    from leadwatch.escalations import service as escalation_service
    from leadwatch.leads import scoring
    from leadwatch.leads.directory import DealershipDirectory, ensure_dealership
    from leadwatch.leads.store import store_leads

    factory = make_session_factory(engine)
    active = scoring.ActiveModel(lambda: store_for(scored_settings.home, None))
    with unit_of_work(factory) as db_session:
        ensure_dealership(db_session=db_session, name="Harbor Auto", timezone="Asia/Tokyo")
    with unit_of_work(factory) as db_session:
        directory = DealershipDirectory(
            default_name="Riverside Motors", default_timezone="America/Chicago"
        ).load(db_session=db_session)
        stored = store_leads(
            db_session=db_session,
            leads=_intake_leads(),
            directory=directory,
            now=FIXED_NOW,
            score_new=scoring.score_before_insert(active, FIXED_NOW),
        )
    outcomes = {s.external_id: (s.outcome, s.scored) for s in stored}
    assert outcomes["I-repeat"] == ("linked", False)
    assert all(outcomes[f"I-{i}"] == ("imported", True) for i in range(6))
    columns = (Lead.external_id, Lead.sale_probability_14d, Lead.sale_probability_30d)
    columns += (Lead.risk_level, Lead.top_factors, Lead.scored_at, Lead.model_version)

    def scores() -> dict[str, tuple[Any, ...]]:
        with unit_of_work(factory) as db_session:
            return {row[0]: tuple(row[1:]) for row in db_session.execute(select(*columns))}

    at_insert = scores()
    assert at_insert["I-3"] == (None,) * 6  # sold: not scored
    assert at_insert["I-repeat"] == (None,) * 6  # linked: only the original is scored
    assert at_insert["I-1"][4] == FIXED_NOW and at_insert["I-1"][5]
    predictor = active.get()
    assert predictor is not None
    monkeypatch.setattr(scoring, "ONE_BY_ONE", 0)  # the batch (pandas) path, as a referee
    with unit_of_work(factory) as db_session:
        ids = [s.lead_id for s in stored if s.outcome == "imported"]
        scoring.score_leads(db_session=db_session, lead_ids=ids, predictor=predictor, now=FIXED_NOW)
    assert scores() == at_insert

    with unit_of_work(factory) as db_session:
        read = escalation_service._read_leads(db_session, [s.lead_id for s in stored])
    for item in stored:
        if item.view is None:
            continue
        row = read[item.lead_id]
        assert {name: item.view[name] for name in row._fields} == dict(row._mapping)


def test_a_failing_model_at_insert_leaves_the_leads_stored_unscored(
    engine: Engine,
    scored_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from leadwatch.leads import scoring
    from leadwatch.leads.directory import DealershipDirectory
    from leadwatch.leads.store import store_leads

    active = scoring.ActiveModel(lambda: store_for(scored_settings.home, None))
    predictor = active.get()

    def broken(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        raise ValueError("the model broke")

    monkeypatch.setattr(predictor, "predict_one", broken)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as db_session:
        stored = store_leads(
            db_session=db_session,
            leads=_intake_leads()[:2],
            directory=DealershipDirectory(
                default_name="Riverside Motors", default_timezone="America/Chicago"
            ).load(db_session=db_session),
            now=FIXED_NOW,
            score_new=scoring.score_before_insert(active, FIXED_NOW),
        )
    assert [s.outcome for s in stored] == ["imported", "imported"]
    assert "scoring 2 new leads failed" in caplog.text
    with unit_of_work(factory) as db_session:
        assert db_session.scalars(select(Lead.risk_level)).all() == [None, None]
