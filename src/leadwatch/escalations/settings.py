"""The Lead Escalation settings in force, their versions, and export / import.

Every save is a new version with its author, comment and a list of what changed; the newest
is in force. Escalations freeze the plan they started with, so a save never changes one in
flight. Parsed settings are cached per version: steps fall due in hot loops.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leadwatch.core.calendar import WorkingHours
from leadwatch.escalations.document import EscalationSettings, settings_changes
from leadwatch.escalations.models import SettingsVersion
from leadwatch.escalations.router import AlertEscalationRouter


class SettingsError(ValueError):
    """A settings document was refused; the message lists every problem with its path."""


class SettingsConflictError(Exception):
    """Another save took the next version number first: nothing was saved."""


# One version of the settings, parsed once, is a router (it decides with those settings).
Config = AlertEscalationRouter


def parse(data: Mapping[str, Any] | str | bytes) -> EscalationSettings:
    try:
        if isinstance(data, str | bytes):
            return EscalationSettings.model_validate_json(data)
        return EscalationSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(document)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"escalation settings refused: {problems}") from None


def current_version(*, db_session: Session) -> int:
    return int(db_session.scalar(select(func.max(SettingsVersion.version))) or 0)


def get_version(*, db_session: Session, version: int) -> SettingsVersion | None:
    return db_session.scalars(
        select(SettingsVersion).where(SettingsVersion.version == version)
    ).one_or_none()


def history(*, db_session: Session, limit: int = 50) -> list[SettingsVersion]:
    query = select(SettingsVersion).order_by(SettingsVersion.version.desc()).limit(limit)
    return list(db_session.scalars(query))


def save(
    *,
    db_session: Session,
    document: EscalationSettings,
    author: str,
    now: datetime,
    comment: str | None = None,
    also_changed: Sequence[str] = (),
) -> SettingsVersion:
    """Store ``document`` as the next version (in force once the unit of work commits).
    ``also_changed``: changes made with it outside the document (a dealership's time zone),
    recorded in its history."""
    number = current_version(db_session=db_session)
    old = load(db_session=db_session).document
    data = document.model_dump(mode="json")
    row = SettingsVersion(
        version=number + 1,
        document=data,
        digest=digest(data),
        author=author,
        comment=comment,
        changes=[*settings_changes(old, document), *also_changed],
        created_at=now,
    )
    try:
        with db_session.begin_nested():  # versions are unique: a racing save makes this fail
            db_session.add(row)
            db_session.flush()
    except IntegrityError:
        raise SettingsConflictError(
            "the settings were saved by someone else meanwhile; reload them and try again"
        ) from None
    # Once committed, this process's cached settings (RuntimeSource) are out of date. Not
    # before: a thread reading in between would cache the old ones under the new count.
    event.listen(db_session, "after_commit", _bump, once=True)
    return row


def _bump(_session: Session) -> None:
    global generation
    generation += 1


# Bumped by every save in this process.
generation = 0

# Keyed by version and content: the same version number can hold different documents in
# different databases (one process may use several), or after a rolled-back save.
_cache: dict[tuple[int, str], Config] = {}
_cache_lock = threading.Lock()


def digest(data: Mapping[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load(*, db_session: Session, version: int | None = None) -> Config:
    """The settings in force (or the given version), parsed once per process."""
    query = select(SettingsVersion.version, SettingsVersion.digest)
    if version is None:
        query = query.order_by(SettingsVersion.version.desc()).limit(1)
    else:
        query = query.where(SettingsVersion.version == version)
    head = db_session.execute(query).first()
    if head is None and version:
        raise SettingsError(f"no escalation settings version {version}")
    number, content = (int(head[0]), str(head[1])) if head else (0, "")
    key = (number, content)
    with _cache_lock:
        found = _cache.get(key)
    if found is not None:
        return found
    if number == 0:
        document = EscalationSettings()
    else:
        row = get_version(db_session=db_session, version=number)
        assert row is not None  # read just above, in the same transaction
        document = parse(row.document)
    config = AlertEscalationRouter(document, version=number)
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = config
    return config


def working_hours_of(
    *, db_session: Session, stores: Iterable[tuple[str, str]]
) -> dict[str, WorkingHours]:
    """Each (dealership, time zone) pair's working hours from the settings in force. A zone
    this system does not know raises `CalendarError` naming it."""
    config = load(db_session=db_session)
    return {str(name): config.calendar(str(name), str(zone)) for name, zone in stores}
