"""Building the dispatcher from settings: the channels that are configured, and for the ones
that are not, the reason (a message for them is dead at once, saying which setting is
missing, and its escalation step falls back to other recipients)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.notifications.channels.base import Channel, ChannelNotConfiguredError
from leadwatch.notifications.channels.in_app import InAppChannel
from leadwatch.notifications.credentials import CredentialsError, CredentialSource
from leadwatch.notifications.dispatcher import Dispatcher, Throttle

log = logging.getLogger(__name__)


def build_channels(
    settings: Settings, session_factory: sessionmaker[Session]
) -> tuple[dict[str, Channel], dict[str, str]]:
    from leadwatch.notifications.channels.email import EmailChannel
    from leadwatch.notifications.channels.slack import SlackChannel
    from leadwatch.notifications.channels.sms import TwilioSmsChannel
    from leadwatch.notifications.channels.webhook import WebhookChannel

    channels: dict[str, Channel] = {"in_app": InAppChannel(session_factory)}
    unconfigured: dict[str, str] = {}
    factories: dict[str, Callable[[Settings], Channel]] = {
        "email": EmailChannel.from_settings,
        # Delivery receipts come back to LEADWATCH_PUBLIC_URL when it is set.
        "sms": lambda s: TwilioSmsChannel.from_settings(s, status_callbacks=True),
        "slack": SlackChannel.from_settings,
        "webhook": WebhookChannel.from_settings,
    }
    for name, factory in factories.items():
        try:
            channels[name] = factory(settings)
        except ChannelNotConfiguredError as exc:
            unconfigured[name] = str(exc)
    return channels, unconfigured


def build_dispatcher(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    on_dead: Callable[[Session, int, datetime], None] | None = None,
    clock: Callable[[], datetime] | None = None,
    saved_credentials: bool = True,
    credentials_every: float = 5.0,
    batch: int = 200,
) -> Dispatcher:
    """``saved_credentials``: channel credentials saved on the settings page override the
    environment's, and a later save reaches this dispatcher within seconds. ``batch``: the
    messages of one round (claimed in one unit of work, their outcomes written in another)."""
    source = (
        CredentialSource(settings, session_factory, every=credentials_every)
        if saved_credentials
        else None
    )

    def refresh() -> tuple[dict[str, Channel], dict[str, str]] | None:
        assert source is not None
        try:
            fresh = source.changed()
        except CredentialsError as exc:  # keep sending with what works; say why once a check
            log.error("saved channel credentials not used: %s", exc)
            return None
        return build_channels(fresh, session_factory) if fresh is not None else None

    first = None
    if source is not None:
        try:
            first = source.changed()
        except CredentialsError as exc:
            log.error("saved channel credentials not used: %s", exc)
    channels, unconfigured = build_channels(first or settings, session_factory)
    for name, reason in unconfigured.items():
        log.warning("channel %s is off: %s", name, reason)
    return Dispatcher(
        session_factory=session_factory,
        channels=channels,
        unconfigured=unconfigured,
        on_dead=on_dead,
        refresh=refresh if source is not None else None,
        throttles=[Throttle("sms", settings.sms_throttle_count, settings.sms_throttle_minutes)],
        retry_seconds=settings.delivery_retry_seconds,
        lease_seconds=settings.delivery_lease_seconds,
        clock=clock or (lambda: datetime.now(UTC)),
        batch=batch,
    )
