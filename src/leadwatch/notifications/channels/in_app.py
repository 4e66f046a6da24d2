"""In-app notifications: stored per person in the `inbox` table, unread until marked read.

Sending is an insert in a transaction of its own; the outbox message id is unique in the
inbox, so a repeat after a crash adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.db.engine import insert_or_skip, unit_of_work
from leadwatch.notifications.channels.base import DeliveryResult, Outcome, OutgoingMessage
from leadwatch.notifications.models import InboxItem

INBOX = cast(Table, InboxItem.__table__)


class InAppChannel:
    name = "in_app"

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def send(self, message: OutgoingMessage) -> DeliveryResult:
        values = {
            "person": message.address or message.recipient,
            "message_id": message.id,
            "lead_id": message.data.get("lead_id"),
            "level": message.data.get("level"),
            "title": message.subject,
            "body": message.text,
            "data": dict(message.data),
            "created_at": datetime.now(UTC),
        }
        with unit_of_work(self.session_factory) as db_session:
            statement = (
                insert_or_skip(db_session.get_bind().dialect.name, INBOX, ["message_id"])
                .values(values)
                .returning(INBOX.c.id)
            )
            item = db_session.execute(statement).scalar_one_or_none()
        detail = "stored in the inbox" if item is not None else "already in the inbox (repeat)"
        return DeliveryResult(Outcome.SENT, detail, provider_id=None if item is None else str(item))
