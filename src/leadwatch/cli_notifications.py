"""CLI for delivery: the outbox and its dead letters, template previews, webhook checks."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from leadwatch.cli_support import err, fail, load_settings, now, out

outbox_app = typer.Typer(
    help="The outbox: messages waiting, sent and dead; attempts; re-sending dead letters.",
    no_args_is_help=True,
)
notifications_app = typer.Typer(
    help="Channels: template previews, webhook test events and signing secret.",
    no_args_is_help=True,
)


def _factory() -> Any:
    from leadwatch.cli import _engine
    from leadwatch.db.engine import make_session_factory

    return make_session_factory(_engine(load_settings()))


@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        str | None, typer.Option(help="pending, sending, retry, sent, dead or folded.")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="email, sms, slack, webhook, in_app.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Messages, newest first, with counts by status. `--status dead` lists dead letters."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.notifications import service
    from leadwatch.notifications.api import MessageRead

    if status is not None and status not in service.STATUSES:
        raise fail(f"unknown status {status!r}: use one of {', '.join(service.STATUSES)}")
    with unit_of_work(_factory()) as db_session:
        rows = [
            MessageRead.of(m).model_dump(mode="json")
            for m in service.list_messages(
                db_session=db_session, status=status, channel=channel, limit=limit
            )
        ]
        counts = service.counts_by_status(db_session=db_session)
    if as_json:
        sys.stdout.write(json.dumps({"counts": counts, "messages": rows}, indent=2) + "\n")
        return
    out.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "the outbox is empty")
    table = Table("id", "channel", "to", "status", "tries", "next / sent", "last error")
    for r in rows:
        when = r["sent_at"] or r["next_attempt_at"]
        table.add_row(
            str(r["id"]),
            r["channel"],
            escape(f"{r['recipient_name']} <{r['address']}>"),
            r["status"],
            str(r["attempts"]),
            (when or "")[:19],
            escape((r["last_error"] or "")[:80]),
        )
    out.print(table)


@outbox_app.command("show")
def outbox_show(message_id: Annotated[int, typer.Argument(help="Message id.")]) -> None:
    """One message and every attempt to deliver it."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.notifications import service
    from leadwatch.notifications.api import MessageRead

    with unit_of_work(_factory()) as db_session:
        try:
            message = service.get_message(db_session=db_session, message_id=message_id)
        except service.MessageNotFoundError as exc:
            raise fail(str(exc)) from None
        shown = MessageRead.of(message)
        out.print(
            escape(
                f"#{shown.id} {shown.channel} to {shown.recipient_name} <{shown.address}>: "
                f"{shown.status} after {shown.attempts} attempts (key {shown.idempotency_key})"
            )
        )
        out.print(escape(f"subject: {message.subject}"))
        table = Table("at (UTC)", "outcome", "code", "ms", "worker", "detail")
        for a in service.attempts(db_session=db_session, message_id=message_id):
            table.add_row(
                a.at.strftime("%Y-%m-%d %H:%M:%S"),
                a.outcome,
                a.code or "",
                f"{a.latency_ms:.0f}",
                escape(a.worker),
                escape(a.detail[:200]),
            )
        out.print(table)


@outbox_app.command("resend")
def outbox_resend(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead message ids.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead letter.")] = False,
) -> None:
    """Queue dead letters again; they keep their idempotency keys, so receivers can tell."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.notifications import service

    if not ids and not all_dead:
        raise fail("give message ids or --all-dead")
    settings = load_settings()
    with unit_of_work(_factory()) as db_session:
        count = service.resend(
            db_session=db_session,
            message_ids=None if all_dead else list(ids or []),
            now=now(),
            max_age_hours=settings.delivery_max_age_hours,
        )
    out.print(f"{count} dead letters queued again")


@notifications_app.command("preview")
def preview_template(
    channel: Annotated[str, typer.Option(help="email, sms, slack, webhook or in_app.")],
    level: Annotated[str, typer.Option(help="critical, high, medium or low.")] = "critical",
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part (email).")] = False,
) -> None:
    """Render a channel's template for a sample lead (templates saved in the settings, then
    custom files in LEADWATCH_HOME/templates, override the defaults)."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.notifications.service import templates_in_force
    from leadwatch.notifications.templates import sample_context

    if channel not in ("email", "sms", "slack", "webhook", "in_app"):
        raise fail(f"unknown channel {channel!r}: use email, sms, slack, webhook or in_app")
    if level not in ("critical", "high", "medium", "low"):
        raise fail(f"unknown level {level!r}: use critical, high, medium or low")
    with unit_of_work(_factory()) as db_session:
        chosen = templates_in_force(db_session=db_session, settings=load_settings())
    rendered = chosen.render(channel=channel, level=level, context=sample_context(level))
    for name in rendered.fallbacks:
        err.print(f"[yellow]custom template {escape(name)} failed; the default was used[/]")
    out.print(escape(f"subject: {rendered.subject}\n"), highlight=False)
    out.print(escape(rendered.html if html and rendered.html else rendered.text), highlight=False)


@notifications_app.command("test-webhook")
def test_webhook(url: Annotated[str, typer.Argument(help="The receiver's URL.")]) -> None:
    """Send a signed test event to a webhook receiver and show its answer."""
    from leadwatch.notifications.channels.webhook import WebhookChannel

    with WebhookChannel.from_settings(load_settings()) as channel:  # closes its connection pool
        result = channel.send_test_event(url)
    out.print(escape(f"{result.outcome.value} ({result.code or '-'}): {result.detail}"))
    if result.outcome.value != "sent":
        raise typer.Exit(1)


@notifications_app.command("webhook-secret")
def webhook_secret() -> None:
    """The secret webhook receivers verify signatures with (keep it private)."""
    from leadwatch.notifications.channels.webhook import signing_secret_hex

    out.print(signing_secret_hex(load_settings()))
