"""Scoring stored leads with the active model: on intake, and whenever asked.

The model works on each dealership's local clock (hour of day, weekday and waiting time as
the store sees them), so leads are turned into local naive times per dealership before they
are scored "as of now". Only open leads are scored on intake: a lead that has sold or is lost
needs no risk level, and skipping them keeps history imports fast.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from leadwatch.leads.models import Dealership, Lead
from leadwatch.leads.store import IN_BATCH, ScoreNew, leads_table

if TYPE_CHECKING:
    from leadwatch.prediction.artifacts import ModelStore
    from leadwatch.prediction.predictor import LeadOutcomePredictor

log = logging.getLogger(__name__)
CLOSED_STATUSES = ("sold", "delivered", "lost")
SCORE_COLUMNS = ("sale_probability_14d", "sale_probability_30d", "risk_level", "top_factors")
ONE_BY_ONE = 32  # up to this many leads are scored one at a time (see score_leads)


class ActiveModel:
    """The active model of a store, loaded once and reloaded when another one is activated.
    Shared by request threads; without an active model, scoring is skipped (and said once)."""

    def __init__(self, store_factory: Callable[[], ModelStore]) -> None:
        self._store_factory = store_factory
        self._lock = threading.Lock()
        self._version: str | None = None
        self._predictor: LeadOutcomePredictor | None = None
        self._warned = False
        self._made_store: ModelStore | None = None

    def get(self) -> LeadOutcomePredictor | None:
        from leadwatch.prediction.artifacts import ModelFileError
        from leadwatch.prediction.predictor import LeadOutcomePredictor

        try:
            store = self._store()
            version = store.active_version()
        except ModelFileError as exc:
            self._warn(f"no model for scoring: {exc}")
            return None
        if version is None:
            self._warn("no active model: leads are stored unscored (run `leadwatch train`)")
            return None
        with self._lock:
            if version != self._version:
                try:
                    self._predictor = LeadOutcomePredictor.load(version, store=store)
                except ModelFileError as exc:
                    self._warn(f"active model refused, leads stay unscored: {exc}")
                    return None
                self._version = version
            return self._predictor

    def _store(self) -> ModelStore:
        """Made once: it reads the signing key, which does not change while a process runs.
        (Which version is active is still read on every call.)"""
        store = self._made_store
        if store is None:
            store = self._made_store = self._store_factory()
        return store

    def _warn(self, message: str) -> None:
        if not self._warned:
            log.warning(message)
            self._warned = True


def score_safely(
    *,
    db_session: Session,
    lead_ids: Sequence[int],
    active: ActiveModel,
    now: datetime,
) -> int:
    """Intake's scoring: a failing model must not cost the leads, so a failure is logged and
    the leads stay stored, unscored (a later re-score catches up)."""
    predictor = active.get()
    if predictor is None or not lead_ids:
        return 0
    try:
        return score_leads(db_session=db_session, lead_ids=lead_ids, predictor=predictor, now=now)
    except Exception:  # the model is third-party code on user data: anything can go wrong
        log.exception("scoring %d new leads failed; they are stored unscored", len(lead_ids))
        return 0


def score_before_insert(active: ActiveModel, now: datetime) -> ScoreNew | None:
    """Intake's scoring of its new leads from their values, before they are inserted: the
    scores go in with the insert, so the leads are neither read back nor updated, and the
    model runs before the transaction writes anything (while it holds no write lock). None
    without a model. Like `score_safely`, a failing model leaves the leads unscored."""
    predictor = active.get()
    if predictor is None:
        return None

    def score(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | None]:
        """``records``: `_lead_records`' form plus each lead's ``status``."""
        scores: list[dict[str, Any] | None] = []
        try:
            for record in records:
                rest = dict(record)
                closed = rest.pop("status") in CLOSED_STATUSES
                scores.append(None if closed else _score_one(rest, predictor, now))
            return scores
        except Exception:  # the model is third-party code on user data
            log.exception("scoring %d new leads failed; they are stored unscored", len(records))
            return [None] * len(records)

    return score


def score_open_leads(
    *, db_session: Session, predictor: LeadOutcomePredictor, now: datetime, batch: int = 5_000
) -> int:
    """Re-score every open original lead (after training a new model, say)."""
    ids = list(
        db_session.scalars(
            select(Lead.id).where(
                Lead.status.not_in(CLOSED_STATUSES), Lead.duplicate_of_id.is_(None)
            )
        )
    )
    return sum(
        score_leads(
            db_session=db_session, lead_ids=ids[i : i + batch], predictor=predictor, now=now
        )
        for i in range(0, len(ids), batch)
    )


def score_leads(
    *,
    db_session: Session,
    lead_ids: Sequence[int],
    predictor: LeadOutcomePredictor,
    now: datetime,
    only_open: bool = True,
) -> int:
    """Score the given leads as of ``now`` and store the scores. Returns how many."""
    import pandas as pd

    records = _lead_records(db_session, lead_ids, only_open=only_open)
    if not records:
        return 0
    rows: list[dict[str, Any]] = []
    if len(records) <= ONE_BY_ONE:  # a few leads: one by one, without pandas
        for record in records:
            rows.append({"b_id": int(record["id"]), **_score_one(record, predictor, now)})
    else:
        frame = pd.DataFrame.from_records(records)
        for column in ("created_at", "contacted_at", "sold_at"):
            frame[column] = pd.to_datetime(frame[column])
        frame["vehicle_price"] = pd.to_numeric(frame["vehicle_price"], errors="coerce")
        for zone, group in frame.groupby("timezone"):
            local_now = pd.Timestamp(now.astimezone(ZoneInfo(str(zone))).replace(tzinfo=None))
            scored = predictor.predict(group.drop(columns=["timezone"]), as_of=local_now)
            for item in scored[["id", *SCORE_COLUMNS]].to_dict("records"):
                item["top_factors"] = [f for f in str(item["top_factors"]).split("; ") if f]
                rows.append(
                    {"b_id": int(item["id"]), **_score_values(item, now, predictor.version_)}
                )
    names = [name for name in rows[0] if name != "b_id"]
    statement = (
        update(leads_table)
        .where(leads_table.c.id == bindparam("b_id"))
        .values({name: bindparam(name) for name in names})
    )
    db_session.connection().execute(statement, rows)
    return len(rows)


def _score_one(
    record: Mapping[str, Any], predictor: LeadOutcomePredictor, now: datetime
) -> dict[str, Any]:
    """One lead's score columns, from its record (`_lead_records`' form), on the pandas-free
    single-lead path: well under a millisecond, where a frame round trip costs several."""
    one = dict(record)
    local_now = now.astimezone(ZoneInfo(one.pop("timezone"))).replace(tzinfo=None)
    return _score_values(predictor.predict_one(one, as_of=local_now), now, predictor.version_)


def _score_values(score: Mapping[Any, Any], now: datetime, version: str | None) -> dict[str, Any]:
    return {
        "sale_probability_14d": float(score["sale_probability_14d"]),
        "sale_probability_30d": float(score["sale_probability_30d"]),
        "risk_level": str(score["risk_level"]),
        "top_factors": list(score["top_factors"]),
        "scored_at": now,
        "model_version": version,
    }


_RECORD_COLUMNS = (
    Lead.id,
    Lead.created_at,
    Lead.contacted_at,
    Lead.sold_at,
    Lead.rep,
    Lead.vehicle_make,
    Lead.vehicle_model,
    Lead.vehicle_price,
    Lead.lead_source,
    Dealership.name.label("dealership"),
    Dealership.timezone.label("timezone"),
)


# Built once: constructing a statement costs more than running it for one lead.
_RECORDS = (
    select(*_RECORD_COLUMNS)
    .join(Dealership, Lead.dealership_id == Dealership.id)
    .where(Lead.id.in_(bindparam("ids", expanding=True)))
)
_OPEN_RECORDS = _RECORDS.where(Lead.status.not_in(CLOSED_STATUSES))


def _lead_records(
    db_session: Session, lead_ids: Sequence[int], *, only_open: bool
) -> list[dict[str, Any]]:
    """The leads as the model reads them, times in each dealership's local clock."""
    records: list[dict[str, Any]] = []
    statement = _OPEN_RECORDS if only_open else _RECORDS
    for start in range(0, len(lead_ids), IN_BATCH):
        query_ids = {"ids": list(lead_ids[start : start + IN_BATCH])}
        for row in db_session.execute(statement, query_ids):
            record = dict(row._mapping)
            zone = record["timezone"]
            for column in ("created_at", "contacted_at", "sold_at"):
                record[column] = _local(record[column], zone)
            price = record["vehicle_price"]
            record["vehicle_price"] = None if price is None else float(price)
            records.append(record)
    return records


def _local(value: datetime | None, zone: str) -> datetime | None:
    if value is None or pd_isna(value):
        return None
    return value.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def pd_isna(value: object) -> bool:
    return value != value  # NaN/NaT are the only values unequal to themselves
