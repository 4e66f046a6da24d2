"""Running escalations: after intake, for due steps, and in the periodic sweep.

`EscalationRunner` is what every worker runs (`leadwatch worker`, the child process of the
embedded `serve`, or its thread with `--worker-in thread`): every tick it executes the steps
that have fallen due, each in its own unit of work, and every ``sweep_seconds`` it re-scores
the open leads nobody has contacted (their wait grows, so their chance falls) and lets their
escalations start or move up a level. Every due time lives in the database, so any process
can stop at any moment and another carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.db.engine import make_session_factory, unit_of_work, write_gate
from leadwatch.escalations import service
from leadwatch.escalations import settings as settings_service
from leadwatch.escalations.models import Escalation
from leadwatch.leads.models import Lead
from leadwatch.leads.scoring import CLOSED_STATUSES, ActiveModel, score_leads
from leadwatch.notifications.dispatcher import Dispatcher
from leadwatch.notifications.models import OutboxMessage
from leadwatch.notifications.templates import TemplateSet
from leadwatch.prediction.artifacts import installation_key

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RuntimeSource:
    """Builds the `service.Runtime` for a unit of work: the settings in force, the risk
    lines (the settings' own or the active model's) and the claim-link key and address."""

    def __init__(
        self, settings: Settings, active_model: ActiveModel, *, reuse_seconds: float = 0.0
    ) -> None:
        """``reuse_seconds``: how long the settings read may be reused before asking the
        database again. A save in this process is seen at once; one in another process
        within that time. The server uses a second: intake then skips a query per lead."""
        self.settings = settings
        self.active_model = active_model
        self.reuse_seconds = reuse_seconds
        self._key: bytes | None = None
        self.templates = TemplateSet(settings.home / "templates")
        self._template_sets: dict[tuple[tuple[str, str], ...], TemplateSet] = {}
        self._cached: tuple[float, int, settings_service.Config] | None = None

    @property
    def signing_key(self) -> bytes:
        if self._key is None:
            self._key = installation_key(self.settings.home, self.settings.secret_key_value)
        return self._key

    def config(self, db_session: Session) -> settings_service.Config:
        cached, now = self._cached, time.monotonic()
        if (
            cached is not None
            and now - cached[0] < self.reuse_seconds
            and cached[1] == settings_service.generation
        ):
            return cached[2]
        config = settings_service.load(db_session=db_session)
        self._cached = (now, settings_service.generation, config)
        return config

    def __call__(self, db_session: Session) -> service.Runtime:
        config = self.config(db_session)
        levels = None
        if config.rules.thresholds is None:
            predictor = self.active_model.get()
            levels = predictor.risk_levels if predictor is not None else None
        return service.Runtime(
            config=config,
            thresholds=config.thresholds(levels),
            signing_key=self.signing_key,
            public_url=self.settings.public_base_url,
            claim_link_hours=self.settings.claim_link_hours,
            delivery_max_age_hours=self.settings.delivery_max_age_hours,
            templates=self.templates_for(config),
        )

    def templates_for(self, config: settings_service.Config) -> TemplateSet:
        """The templates of that settings version over the folder's and the defaults; built
        once per distinct set of custom templates, since environments cache compiled ones."""
        overrides = config.document.templates
        if not overrides:
            return self.templates
        key = tuple(sorted(overrides.items()))
        found = self._template_sets.get(key)
        if found is None:
            if len(self._template_sets) > 8:
                self._template_sets.clear()
            found = self._template_sets[key] = self.templates.with_overrides(overrides)
        return found


def watch_safely(
    *,
    db_session: Session,
    lead_ids: Sequence[int],
    runtime: RuntimeSource,
    now: datetime,
    new_ids: Collection[int] = (),
    views: Mapping[int, Mapping[str, Any]] | None = None,
) -> service.WatchCounts | None:
    """Intake's escalation pass. It runs in a savepoint: if it fails, the leads stay stored
    (and the sweep picks them up) rather than the whole intake failing. ``new_ids`` and
    ``views``: the leads this unit of work inserted (`service.watch`)."""
    if not lead_ids:
        return None
    try:
        with db_session.begin_nested():
            return service.watch(
                db_session=db_session,
                lead_ids=lead_ids,
                runtime=runtime(db_session),
                now=now,
                new_ids=new_ids,
                views=views,
            )
    except Exception:  # never lose leads over an escalation failure
        log.exception("escalating %d new leads failed; the sweep will retry", len(lead_ids))
        return None


@dataclass
class TickResult:
    ran: int = 0
    failed: int = 0
    swept: int = 0
    started: int = 0
    upgraded: int = 0
    stopped: int = 0
    delivered: int = 0
    dead: int = 0


class EscalationRunner:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        runtime: RuntimeSource,
        clock: Callable[[], datetime] = _utcnow,
        poll_seconds: float = 0.25,
        sweep_seconds: float = 60.0,
        batch: int = 200,
        sweep_chunk: int = 1_000,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        """``sweep_chunk``: leads re-scored per unit of work. Smaller holds SQLite's one write
        lock for less time at once, which keeps intake's waits short."""
        self.dispatcher = dispatcher
        self.sweep_chunk = sweep_chunk
        self.session_factory = session_factory
        self.runtime = runtime
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.sweep_seconds = sweep_seconds
        self.batch = batch
        self._last_sweep = float("-inf")

    def run_due(self) -> TickResult:
        """Run every step due now, each in its own unit of work, exactly once."""
        result = TickResult()
        now = self.clock()
        with unit_of_work(self.session_factory) as db_session:
            items = service.due(db_session=db_session, now=now, limit=self.batch)
        for escalation_id, token in items:
            try:
                with unit_of_work(self.session_factory) as db_session:
                    if not service.take(
                        db_session=db_session, escalation_id=escalation_id, token=token, now=now
                    ):
                        continue  # another worker has it
                    service.run_step(
                        db_session=db_session,
                        escalation_id=escalation_id,
                        runtime=self.runtime(db_session),
                        now=self.clock(),  # the decision's time is when it is made
                    )
                    result.ran += 1
            except Exception as exc:  # one broken escalation must not stall the others
                log.exception("escalation %d: step failed", escalation_id)
                result.failed += 1
                with unit_of_work(self.session_factory) as db_session:
                    service.postpone(
                        db_session=db_session,
                        escalation_id=escalation_id,
                        token=token,
                        now=now,
                        error=str(exc),
                    )
        return result

    def sweep(self, chunk: int | None = None) -> TickResult:
        """Re-score the watched leads as of now and bring their escalations up to date."""
        chunk = chunk or self.sweep_chunk
        result = TickResult()
        now = self.clock()
        with unit_of_work(self.session_factory) as db_session:
            watch_hours = settings_service.load(db_session=db_session).rules.watch_hours
            ids = watched_leads(db_session=db_session, now=now, watch_hours=watch_hours)
        if not ids:
            return result  # nothing to watch: no need to load the model either
        predictor = self.runtime.active_model.get()
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            try:
                with unit_of_work(self.session_factory) as db_session:
                    if predictor is not None:
                        score_leads(
                            db_session=db_session, lead_ids=part, predictor=predictor, now=now
                        )
                    counts = service.watch(
                        db_session=db_session,
                        lead_ids=part,
                        runtime=self.runtime(db_session),
                        now=now,
                    )
            except Exception:  # one bad chunk must not stop the others, every minute
                log.exception("sweep: %d leads from id %d failed", len(part), part[0])
                continue
            result.swept += len(part)
            result.started += counts.started
            result.upgraded += counts.upgraded
            result.stopped += counts.stopped
        return result

    def repair(self) -> int:
        """Fallbacks a dead worker left unsent (see `service.repair_fallbacks`)."""
        with unit_of_work(self.session_factory) as db_session:
            return service.repair_fallbacks(
                db_session=db_session, runtime=self.runtime(db_session), now=self.clock()
            )

    def tick(self) -> TickResult:
        result = self.run_due()
        if self.dispatcher is not None:  # messages first: they are already late
            self._deliver(result)
        if time.monotonic() - self._last_sweep >= self.sweep_seconds:
            self._last_sweep = time.monotonic()
            if self.dispatcher is not None:
                try:  # a fallback that cannot be sent now must not hold up the sweep
                    self.repair()
                except Exception:
                    log.exception("repairing missed fallbacks failed; the next sweep retries")
            swept = self.sweep()
            result.swept, result.started = swept.swept, swept.started
            result.upgraded, result.stopped = swept.upgraded, swept.stopped
        if self.dispatcher is not None:
            self._deliver(result)  # and what the sweep's new steps just wrote
        return result

    def _deliver(self, result: TickResult) -> None:
        assert self.dispatcher is not None
        for _ in range(50):  # drain what is due, a batch at a time, then look again
            counts = self.dispatcher.run_once()
            result.delivered += counts.sent
            result.dead += counts.dead
            if counts.claimed < self.dispatcher.batch:
                break

    def wait_seconds(self) -> float:
        """Until the next due step, at most one poll interval (new work may arrive)."""
        with unit_of_work(self.session_factory) as db_session:
            upcoming = service.next_due_at(db_session=db_session)
            if self.dispatcher is not None:
                sending = db_session.scalar(
                    select(func.min(OutboxMessage.next_attempt_at)).where(
                        OutboxMessage.status.in_(("pending", "retry"))
                    )
                )
                if sending is not None and (upcoming is None or sending < upcoming):
                    upcoming = sending
        if upcoming is None:
            return self.poll_seconds
        return max(0.0, min(self.poll_seconds, (upcoming - self.clock()).total_seconds()))

    def serve_forever(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.tick()
                    pause = self.wait_seconds()
                except Exception:  # the database may be restarting: keep trying
                    log.exception("escalation runner tick failed; retrying")
                    pause = 5.0
                stop.wait(pause)
        finally:
            self.close()

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.close()


def make_runner(
    settings: Settings,
    session_factory: sessionmaker[Session],
    runtime: RuntimeSource,
    *,
    clock: Callable[[], datetime] = _utcnow,
    deliver: bool = True,
    short_units: bool = False,
) -> EscalationRunner:
    """The worker's loop: due escalation steps, the sweep, and (``deliver``) the dispatcher,
    whose dead letters send the escalation step to its fallback recipients.

    ``short_units``: for a worker sharing SQLite's one write lock with intake: rounds of 25
    messages and sweep chunks of 100 leads, so that a shopper's lead never waits long
    behind one. It costs throughput: one SQLite worker delivered 2,066 webhooks/s in rounds
    of 25 against 2,554/s in rounds of 200 (bench, 2026-11-26)."""
    from leadwatch.notifications.jobs import build_dispatcher

    def on_dead(db_session: Session, message_id: int, now: datetime) -> None:
        service.on_delivery_dead(
            db_session=db_session, message_id=message_id, runtime=runtime(db_session), now=now
        )

    dispatcher = (
        build_dispatcher(
            settings,
            session_factory,
            on_dead=on_dead,
            clock=clock,
            batch=25 if short_units else 200,
        )
        if deliver
        else None
    )
    return EscalationRunner(
        session_factory=session_factory,
        runtime=runtime,
        clock=clock,
        poll_seconds=settings.worker_poll_seconds,
        sweep_seconds=settings.sweep_seconds,
        sweep_chunk=100 if short_units else 1_000,
        dispatcher=dispatcher,
    )


def background_runner(
    settings: Settings,
    engine: Engine,
    runtime: RuntimeSource,
    *,
    clock: Callable[[], datetime] = _utcnow,
    deliver: bool = True,
) -> EscalationRunner:
    """The worker as every set-up runs it (a thread of `serve`, its own process, `leadwatch
    worker`). On SQLite, whose one write lock it shares with intake, each of its units of
    work first waits while an intake request is in flight in any process (see `WriteGate`),
    and its units are short."""
    shares_lock = engine.dialect.name == "sqlite"
    factory = make_session_factory(
        engine, before_session=write_gate(engine).wait if shares_lock else None
    )
    return make_runner(
        settings, factory, runtime, clock=clock, deliver=deliver, short_units=shares_lock
    )


def watched_leads(*, db_session: Session, now: datetime, watch_hours: float) -> list[int]:
    """Open original leads nobody has contacted, created within the watch window, plus the
    leads of live escalations (whatever their age)."""
    since = now - timedelta(hours=watch_hours)
    recent = select(Lead.id).where(
        Lead.created_at >= since,
        Lead.contacted_at.is_(None),
        Lead.status.not_in(CLOSED_STATUSES),
        Lead.duplicate_of_id.is_(None),
    )
    live = select(Escalation.lead_id).where(Escalation.active_lead_id.is_not(None))
    return sorted({*db_session.scalars(recent), *db_session.scalars(live)})
