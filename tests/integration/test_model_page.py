"""The Model page: the active model's validation, calibration and importance, every saved
version; admins activate a version, admins and managers retrain from the stored leads in the
background and follow its progress; reps only look."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch import LeadOutcomePredictor
from leadwatch.app import create_app
from leadwatch.config import Settings
from leadwatch.core.leads import RejectedRecord
from leadwatch.db.engine import unit_of_work
from leadwatch.demo.generator import GeneratorConfig, write_history
from leadwatch.intake.csv_reader import read_csv_leads
from leadwatch.leads.directory import DealershipDirectory
from leadwatch.leads.importer import run_import
from leadwatch.leads.models import Lead
from leadwatch.leads.retrain import Progress, RetrainJobs, RetrainResult
from leadwatch.prediction.artifacts import store_for
from leadwatch.users import service as user_service
from tests.conftest import FIXED_NOW
from tests.integration.web_support import CSRF, PASSWORD, sign_in
from tests.model.history import make_history

USERS = {"admin": "ada@riverside.example", "manager": "sam@riverside.example"}
USERS["rep"] = "dana@riverside.example"


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Two saved logistic models, the newer one active."""
    home = tmp_path_factory.mktemp("model-page-home")
    versions = []
    for seed in (3, 4):
        predictor = LeadOutcomePredictor("logistic")
        predictor.train(make_history(leads=6_000, seed=seed, days=365).leads)
        versions.append(predictor.save(store_for(home, None)).version)
    return home, versions


@pytest.fixture
def trained(settings: Settings, model_home: tuple[Path, list[str]]) -> list[str]:
    """This test's home holds a copy of the two models: [older, active]."""
    home, versions = model_home
    shutil.copytree(home / "models", settings.home / "models")
    shutil.copy(home / "secret.key", settings.home / "secret.key")
    return versions


@pytest.fixture
def users(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as db_session:
        for role, email in USERS.items():
            user_service.create_user(
                db_session=db_session, email=email, password=PASSWORD, role=role, now=FIXED_NOW
            )


class Browser:
    """Sign-in sessions of one app, one per role, closed together."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.app = create_app(settings, engine=engine, clock=lambda: FIXED_NOW)
        self.clients: list[TestClient] = []

    def as_(self, role: str) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)
        client.__enter__()
        self.clients.append(client)
        assert sign_in(client, USERS[role]).status_code == 303
        return client

    @property
    def jobs(self) -> RetrainJobs:
        jobs: RetrainJobs = self.app.state.model_jobs
        return jobs


@pytest.fixture
def browser(engine: Engine, settings: Settings, users: None) -> Iterator[Browser]:
    browser = Browser(engine, settings)
    yield browser
    browser.jobs.join(timeout=120)  # never leave a retrain writing into the next test
    for client in browser.clients:
        client.__exit__(None, None, None)


def token(client: TestClient) -> str:
    found = CSRF.search(client.get("/model").text)
    assert found is not None
    return found.group(1)


def store_history(session_factory: sessionmaker[Session], tmp: Path, leads: int, days: int) -> None:
    """Generated lead history, imported as `leadwatch import` would."""
    config = GeneratorConfig(
        leads=leads,
        seed=11,
        end=FIXED_NOW,
        days=days,
        dealerships=(("Riverside Motors", "America/Chicago"),),
    )
    history = tmp / "history.csv"
    write_history(config, history, tmp / "truth.csv")
    directory = DealershipDirectory(
        default_name="Riverside Motors", default_timezone="America/Chicago"
    )
    with unit_of_work(session_factory) as db_session:
        directory.load(db_session=db_session)
    with history.open(newline="", encoding="utf-8") as handle:
        records = (
            item if isinstance(item, RejectedRecord) else (item.line, item.lead)
            for item in read_csv_leads(handle, source_system="crm", local_tz_for=directory.tz_for)
        )
        counts = run_import(
            session_factory=session_factory,
            records=records,
            directory=directory,
            source="history.csv",
            fmt="csv",
            clock=lambda: FIXED_NOW,
        )
    assert counts.imported >= leads * 0.9


def active(settings: Settings) -> str | None:
    return store_for(settings.home, settings.secret_key_value).active_version()


def test_anonymous_callers_are_sent_to_sign_in(browser: Browser) -> None:
    with TestClient(browser.app, follow_redirects=False) as anonymous:
        for method, path in (
            ("GET", "/model"),
            ("GET", "/model/retrain"),
            ("POST", "/model/retrain"),
            ("POST", "/model/activate"),
        ):
            response = anonymous.request(method, path, data={"csrf_token": "x"})
            assert response.status_code == 303, path
            assert response.headers["location"] == f"/login?next={path}"


def test_the_page_shows_the_active_model(browser: Browser, trained: list[str]) -> None:
    older, newer = trained
    page = browser.as_("rep").get("/model")
    assert page.status_code == 200
    text = page.text
    assert '<a href="/model">Model</a>' in text  # in the navigation
    assert f"<code>{newer}</code>" in text and "logistic" in text
    assert "Data window" in text and "leads created 2024-06" in text and "6,000 leads" in text
    for label in ("ROC AUC", "PR AUC", "Brier score", "Log loss", "ECE", "Top-decile lift"):
        assert label in text
    assert "Top-decile capture" in text and text.count('<th scope="col">baseline</th>') == 2
    assert "14 days" in text and "30 days" in text
    assert 'aria-labelledby="calibration-' in text and "stroke-dasharray" in text  # diagonal
    assert "Feature importance" in text and "contact_delay" in text
    assert "Escalations use: critical below 10%" in text
    history = text[text.index("Training history") :]
    assert history.index(newer) < history.index(older)  # newest first
    assert "<strong>active</strong>" in history
    assert 'action="/model/retrain"' not in text and 'action="/model/activate"' not in text


def test_without_a_model_the_page_says_how_to_train_one(browser: Browser) -> None:
    text = browser.as_("manager").get("/model").text
    assert "No model has been trained" in text
    assert "leadwatch train --data FILE" in text and "<strong>Retrain</strong>" in text
    assert '<select id="model-type" name="model_type">' in text
    assert '<option value="gradient_boosting" selected>' in text
    assert "No saved versions." in text


def test_a_rep_can_neither_retrain_nor_activate(
    browser: Browser, trained: list[str], settings: Settings
) -> None:
    rep = browser.as_("rep")
    csrf = token(rep)
    refused = rep.post("/model/retrain", data={"csrf_token": csrf, "model_type": "logistic"})
    assert refused.status_code == 403
    refused = rep.post("/model/activate", data={"csrf_token": csrf, "version": trained[0]})
    assert refused.status_code == 403
    assert browser.jobs.current() is None and active(settings) == trained[1]
    manager = browser.as_("manager")  # managers retrain but do not activate
    refused = manager.post(
        "/model/activate", data={"csrf_token": token(manager), "version": trained[0]}
    )
    assert refused.status_code == 403 and active(settings) == trained[1]


def test_the_forms_need_their_csrf_token(
    browser: Browser, trained: list[str], settings: Settings
) -> None:
    admin = browser.as_("admin")
    forged = admin.post("/model/retrain", data={"csrf_token": "forged", "model_type": "logistic"})
    assert forged.status_code == 403
    forged = admin.post("/model/activate", data={"csrf_token": "forged", "version": trained[0]})
    assert forged.status_code == 403
    assert admin.post("/model/retrain", data={"model_type": "logistic"}).status_code == 422
    unknown = admin.post("/model/retrain", data={"csrf_token": token(admin), "model_type": "xgb"})
    assert unknown.status_code == 422 and "unknown model type &#39;xgb&#39;" in unknown.text
    assert browser.jobs.current() is None and active(settings) == trained[1]


def test_an_admin_activates_an_older_version(
    browser: Browser, trained: list[str], settings: Settings
) -> None:
    admin = browser.as_("admin")
    page = admin.get("/model").text
    assert f'aria-label="Activate model {trained[0]}"' in page
    done = admin.post("/model/activate", data={"csrf_token": token(admin), "version": trained[0]})
    assert done.status_code == 303 and active(settings) == trained[0]
    page = admin.get(done.headers["location"]).text
    assert f"Model {trained[0]} is now active" in page and f"<code>{trained[0]}</code>" in page
    unknown = admin.post("/model/activate", data={"csrf_token": token(admin), "version": "../x"})
    assert unknown.status_code == 422 and "not a valid version name" in unknown.text
    assert active(settings) == trained[0]


def test_a_manager_retrains_on_the_stored_leads(
    browser: Browser,
    trained: list[str],
    settings: Settings,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    store_history(session_factory, tmp_path, leads=3_000, days=365)
    manager = browser.as_("manager")
    started = manager.post(
        "/model/retrain", data={"csrf_token": token(manager), "model_type": "logistic"}
    )
    assert started.status_code == 303 and started.headers["location"] == "/model/retrain"
    browser.jobs.join(timeout=120)
    job = browser.jobs.current()
    assert job is not None and job.state == "done", job
    assert job.result is not None
    new = job.result.version
    page = manager.get("/model/retrain")
    assert "Status: done" in page.text and f"<code>{new}</code>" in page.text
    assert 'value="100"' in page.text and 'http-equiv="refresh"' not in page.text
    assert "ROC AUC" in page.text and "baseline" in page.text
    assert active(settings) == new and new not in trained
    with unit_of_work(session_factory) as db_session:
        open_versions = db_session.scalars(
            select(Lead.model_version).where(
                Lead.status.not_in(("sold", "delivered", "lost")), Lead.duplicate_of_id.is_(None)
            )
        ).all()
    assert open_versions and set(open_versions) == {new}
    assert job.result.rescored == len(open_versions) and job.result.rows >= 2_700
    listing = manager.get("/model").text
    assert f"<code>{new}</code>" in listing and "Last retrain: done" in listing


def test_a_second_retrain_is_refused_while_one_runs(browser: Browser, trained: list[str]) -> None:
    release = threading.Event()

    def slow(progress: Progress) -> RetrainResult:
        progress("fitting", 0.4)
        release.wait(timeout=60)
        raise ValueError("stopped by the test")

    browser.jobs.start(model_type="auto", started_by="ada@riverside.example", work=slow)
    try:
        admin = browser.as_("admin")
        refused = admin.post("/model/retrain", data={"csrf_token": token(admin)})
        assert refused.status_code == 409
        assert "already running" in refused.text and 'role="alert"' in refused.text
        progress = admin.get("/model/retrain").text
        assert '<progress id="retrain-progress" max="100" value="40">' in progress
        assert '<meta http-equiv="refresh" content="2">' in progress
        assert "Status: running (fitting, 40%)" in progress
        model_page = admin.get("/model").text
        assert "A retrain (auto) is running" in model_page
        assert (
            admin.post(
                "/model/activate", data={"csrf_token": token(admin), "version": trained[0]}
            ).status_code
            == 409
        )
    finally:
        release.set()
        browser.jobs.join(timeout=10)
    job = browser.jobs.current()
    assert (
        job is not None
        and job.state == "failed"
        and job.error == "training failed: stopped by the test"
    )


def test_a_failed_retrain_says_why_and_keeps_the_model(
    browser: Browser,
    trained: list[str],
    settings: Settings,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    manager = browser.as_("manager")
    manager.post("/model/retrain", data={"csrf_token": token(manager), "model_type": "logistic"})
    browser.jobs.join(timeout=60)
    page = manager.get("/model/retrain").text
    assert "Status: failed. no leads are stored yet" in page and active(settings) == trained[1]

    store_history(session_factory, tmp_path, leads=200, days=40)
    manager.post("/model/retrain", data={"csrf_token": token(manager), "model_type": "logistic"})
    browser.jobs.join(timeout=60)
    page = manager.get("/model/retrain").text
    assert "Status: failed. history too short: the history covers" in page
    assert "The model that was active before the retrain is still active." in page
    assert active(settings) == trained[1]
    assert len(store_for(settings.home, None).list()) == 2  # nothing half-saved


def test_a_retrain_reports_every_stage_in_order(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    from leadwatch.leads.retrain import retrain

    store_history(session_factory, tmp_path, leads=3_000, days=365)
    seen: list[tuple[str, float]] = []
    result = retrain(
        session_factory=session_factory,
        store=store_for(settings.home, None),
        model_type="logistic",
        clock=lambda: FIXED_NOW,
        progress=lambda stage, fraction: seen.append((stage, fraction)),
    )
    stages = [stage for stage, _ in seen]
    assert stages == [
        "reading leads",
        "preparing",
        "fitting",
        "calibrating",
        "validating",
        "importance",
        "fitting",  # the model that ships, one slice later
        "calibrating",
        "saving",
        "re-scoring",
    ]
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] < 1
    assert active(settings) == result.version and result.model_type == "logistic"
