"""The escalation service on a real database (SQLite and PostgreSQL): chains that start, wait,
hold, stop, resume, move up a level and fall back, stored durably and run exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.core.leads import EventType
from leadwatch.db.engine import unit_of_work
from leadwatch.escalations import service
from leadwatch.escalations.document import EscalationSettings
from leadwatch.escalations.jobs import EscalationRunner
from leadwatch.escalations.models import Escalation, EscalationDecision
from leadwatch.leads.models import Lead
from leadwatch.notifications.models import OutboxMessage
from tests.integration.escalation_support import (
    FRIDAY_EVENING,
    OPEN_TUESDAY,
    World,
    make_world,
    set_probability,
    staffed_document,
)


@pytest.fixture
def world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    return make_world(session_factory, settings, OPEN_TUESDAY)


def test_a_critical_lead_is_escalated_at_once_with_messages_in_the_outbox(world: World) -> None:
    lead = world.add_lead("C-1", probability=0.05)
    counts = world.watch(lead)
    assert (counts.started, counts.notified) == (1, 1)
    esc = world.escalation(lead)
    assert (esc.level, esc.status, esc.step, esc.depth) == ("critical", "active", 1, 1)
    assert esc.due_at == OPEN_TUESDAY + timedelta(minutes=10)  # step 2 waits 10 minutes
    log = world.decisions(esc.id)
    assert [d.action for d in log] == ["start", "notify"]
    assert "P(sale in 30 d) 0.05 < critical line 0.10: critical" in log[0].reason
    assert "the critical policy 'critical'" in log[0].reason
    sent = {(m.recipient, m.channel, m.address) for m in world.messages(esc.id)}
    assert sent == {
        ("dana", "sms", "+15550100001"),
        ("dana", "email", "dana@riverside.example"),
        ("dana", "in_app", "dana"),
        ("sam", "sms", "+15550100002"),
        ("sam", "email", "sam@riverside.example"),
        ("sam", "in_app", "sam"),
    }
    message = world.messages(esc.id)[0]
    assert message.subject.startswith("[CRITICAL] Customer C-1 waiting 5 min")
    assert "/claim/" in message.body and message.status == "pending"
    # The decision log names people, not their addresses.
    assert log[1].recipients[0].keys() == {"person", "name", "channel"}


def test_a_delayed_step_waits_for_its_due_time_and_runs_once(world: World) -> None:
    lead = world.add_lead("M-1", probability=0.25)
    world.watch(lead)
    esc = world.escalation(lead)
    assert (esc.level, esc.due_at) == ("medium", OPEN_TUESDAY + timedelta(minutes=15))
    assert world.messages(esc.id) == []
    runner = world.runner()
    assert runner.run_due().ran == 0  # not due yet
    world.clock.advance(minutes=15)
    assert runner.run_due().ran == 1
    assert runner.run_due().ran == 0  # never twice
    assert {m.channel for m in world.messages(esc.id)} == {"email", "in_app"}
    esc = world.escalation(lead)
    assert (esc.step, esc.due_at) == (1, world.clock.now + timedelta(minutes=45))


def test_low_risk_leads_are_not_escalated(world: World) -> None:
    lead = world.add_lead("L-1", probability=0.6)
    counts = world.watch(lead)
    assert counts.started == 0 and counts.skipped == {"low risk": 1}


def test_contact_stops_the_chain_at_once_and_a_due_step_rechecks_the_lead(world: World) -> None:
    first = world.add_lead("S-1", probability=0.15)
    second = world.add_lead("S-2", probability=0.15)
    world.watch(first, second)
    world.event(first, EventType.CONTACTED)
    assert world.watch(first).stopped == 1  # what intake does when the event arrives
    esc = world.escalation(first)
    assert (esc.status, esc.end_reason) == ("stopped", "lead contacted: chain stopped")
    assert esc.active_lead_id is None and esc.ended_at == world.clock.now
    # The second lead is sold without intake telling escalation: its due step finds out.
    world.event(second, EventType.SOLD)
    world.clock.advance(minutes=5)
    world.runner().run_due()
    esc = world.escalation(second)
    assert (esc.status, esc.end_reason) == ("stopped", "lead sold: chain stopped")
    assert world.messages(esc.id) == []


def test_after_hours_a_high_lead_is_held_and_a_critical_one_routed(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    world = make_world(session_factory, settings, FRIDAY_EVENING)
    high = world.add_lead("H-1", probability=0.15)
    critical = world.add_lead("K-1", probability=0.05)
    world.watch(high, critical)
    world.clock.advance(minutes=5)
    world.runner().run_due()
    held = world.escalation(high)
    saturday_nine = FRIDAY_EVENING.replace(day=7, hour=14, minute=0)  # 09:00 CDT
    assert held.due_at == saturday_nine and held.step == 0
    hold = world.decisions(held.id)[-1]
    assert hold.action == "hold" and hold.after_hours
    assert "holds until the next opening (Sat 07 Jun 09:00 CDT)" in hold.reason
    routed = world.decisions(world.escalation(critical).id)[1]
    assert routed.action == "notify" and "routes to role:sales_manager" in routed.reason
    assert {(r["name"], r["channel"]) for r in routed.recipients} == {("Sam Patel", "sms")}
    # Saturday morning the held step runs.
    world.clock.now = saturday_nine
    assert world.runner().run_due().ran >= 1
    assert world.decisions(held.id)[-1].action == "notify"


def test_nobody_reachable_falls_back_and_dead_deliveries_fall_back_once(world: World) -> None:
    nobody = [p for p in staffed_document()["people"] if p["key"] != "bdc"]
    world.save_settings(staffed_document(people=nobody))
    lead = world.add_lead("F-1", probability=0.25, rep=None)  # medium: rep, then BDC
    world.watch(lead)
    world.clock.advance(minutes=15)
    world.runner().run_due()
    esc = world.escalation(lead)
    notified = world.decisions(esc.id)[-1]
    assert notified.fallback and "the lead has no assigned rep" in notified.reason
    assert {r["name"] for r in notified.recipients} == {"Gina Lopez"}
    # Every delivery of that step fails for good: the fallback is told again, once.
    with unit_of_work(world.factory) as db_session:
        ids = [m.id for m in db_session.scalars(select(OutboxMessage))]
        db_session.execute(update(OutboxMessage).values(status="dead"))
    with unit_of_work(world.factory) as db_session:
        decision = service.on_delivery_dead(
            db_session=db_session,
            message_id=ids[0],
            runtime=world.runtime(db_session),
            now=world.clock(),
        )
    assert decision is None  # that step already went to the fallback


def test_a_step_whose_messages_all_died_is_sent_to_the_fallback(world: World) -> None:
    lead = world.add_lead("D-1", probability=0.25)
    world.watch(lead)
    world.clock.advance(minutes=15)
    world.runner().run_due()
    esc = world.escalation(lead)
    with unit_of_work(world.factory) as db_session:
        ids = [m.id for m in db_session.scalars(select(OutboxMessage))]
        db_session.execute(
            update(OutboxMessage).where(OutboxMessage.id != ids[0]).values(status="dead")
        )
    with unit_of_work(world.factory) as db_session:
        partial = service.on_delivery_dead(
            db_session=db_session,
            message_id=ids[1],
            runtime=world.runtime(db_session),
            now=world.clock(),
        )
    assert partial is None  # one message is still on its way
    with unit_of_work(world.factory) as db_session:
        db_session.execute(update(OutboxMessage).values(status="dead"))
    with unit_of_work(world.factory) as db_session:
        decision = service.on_delivery_dead(
            db_session=db_session,
            message_id=ids[0],
            runtime=world.runtime(db_session),
            now=world.clock(),
        )
    assert decision is not None and decision.fallback
    assert "every delivery of step 1 failed permanently" in decision.reason
    assert {m.recipient for m in world.messages(esc.id) if m.status == "pending"} == {"gina"}


def test_a_claim_pauses_the_chain_and_a_lapsed_claim_resumes_it(world: World) -> None:
    lead = world.add_lead("CL-1", probability=0.15)  # high: step 1 after 5 min
    world.watch(lead)
    esc = world.escalation(lead)
    with unit_of_work(world.factory) as db_session:
        service.claim(
            db_session=db_session,
            escalation_id=esc.id,
            by="Dana Reyes",
            runtime=world.runtime(db_session),
            now=world.clock(),
        )
    esc = world.escalation(lead)
    assert (esc.status, esc.claimed_by) == ("claimed", "Dana Reyes")
    assert esc.due_at == world.clock.now + timedelta(minutes=30)
    with unit_of_work(world.factory) as db_session:
        assert db_session.get(Lead, lead).status == "new"  # a claim is not a contact
        with pytest.raises(service.EscalationError, match="already claimed by Dana Reyes"):
            service.claim(
                db_session=db_session,
                escalation_id=esc.id,
                by="Sam Patel",
                runtime=world.runtime(db_session),
                now=world.clock(),
            )
    world.clock.advance(minutes=10)
    assert world.runner().run_due().ran == 0  # the claim holds the chain
    world.clock.advance(minutes=20)
    assert world.runner().run_due().ran == 1
    resumed = world.decisions(esc.id)[-1]
    assert resumed.action == "notify" and resumed.reason.startswith("claim lapsed")
    assert world.escalation(lead).status == "active"


def test_a_claim_followed_by_contact_ends_the_chain(world: World) -> None:
    lead = world.add_lead("CL-2", probability=0.15)
    world.watch(lead)
    esc = world.escalation(lead)
    with unit_of_work(world.factory) as db_session:
        service.claim(
            db_session=db_session,
            escalation_id=esc.id,
            by="Dana Reyes",
            runtime=world.runtime(db_session),
            now=world.clock(),
        )
    world.clock.advance(minutes=12)
    world.event(lead, EventType.CONTACTED)
    world.clock.advance(minutes=30)
    world.runner().run_due()
    esc = world.escalation(lead)
    assert esc.status == "stopped" and esc.end_reason == "lead contacted: chain stopped"
    assert world.messages(esc.id) == []


def test_a_worse_level_moves_the_escalation_up_and_never_doubles_it(world: World) -> None:
    lead = world.add_lead("U-1", probability=0.25)
    world.watch(lead)
    with unit_of_work(world.factory) as db_session:
        set_probability(db_session, lead, 0.04)
    counts = world.watch(lead)
    assert (counts.started, counts.upgraded) == (0, 1)
    with unit_of_work(world.factory) as db_session:
        rows = db_session.scalars(select(Escalation).where(Escalation.lead_id == lead)).all()
    assert len(rows) == 1 and rows[0].level == "critical"
    actions = [d.action for d in world.decisions(rows[0].id)]
    assert actions == ["start", "upgrade", "notify"]  # critical's first step is immediate
    assert "level worsened from medium to critical" in world.decisions(rows[0].id)[1].reason
    # A better score later does not move it down.
    with unit_of_work(world.factory) as db_session:
        set_probability(db_session, lead, 0.5)
    assert world.watch(lead).upgraded == 0


def test_duplicates_of_one_shopper_share_one_escalation(world: World) -> None:
    first = world.add_lead("DUP-1", probability=0.15, email="pat@example.com")
    again = world.add_lead("DUP-2", probability=0.15, email="pat@example.com")
    with unit_of_work(world.factory) as db_session:
        assert db_session.get(Lead, again).duplicate_of_id == first
    world.watch(first)
    world.watch(again)
    with unit_of_work(world.factory) as db_session:
        leads = db_session.scalars(select(Escalation.lead_id)).all()
    assert leads == [first]


def test_the_unique_live_escalation_holds_against_a_second_writer(world: World) -> None:
    lead = world.add_lead("R-1", probability=0.15)
    world.watch(lead)
    with unit_of_work(world.factory) as db_session:
        row = db_session.get(Lead, lead)
        assert row is not None
        facts_row = service._read_leads(db_session, [lead])[lead]
        from leadwatch.core import escalation as engine

        runtime = world.runtime(db_session)
        plan = engine.assess(
            runtime.config.rules,
            service._facts(facts_row),
            0.15,
            thresholds=runtime.thresholds,
        ).plan
        assert plan is not None
        # Another process that missed the first start tries again: nothing is inserted.
        assert (
            service._start(db_session, facts_row, plan, 0.15, runtime=runtime, now=world.clock())
            is None
        )


def test_the_frozen_plan_outlives_a_settings_change(world: World) -> None:
    lead = world.add_lead("V-1", probability=0.25)
    world.watch(lead)
    policies = EscalationSettings().model_dump(mode="json")["policies"]
    policies["medium"] = {
        "steps": [{"delay_minutes": 1, "recipients": ["bdc"], "channels": ["email"]}]
    }
    quick = staffed_document(policies=policies)
    version = world.save_settings(quick)
    assert version == 2
    world.clock.advance(minutes=15)
    world.runner().run_due()
    esc = world.escalation(lead)
    assert esc.settings_version == 1
    step = world.decisions(esc.id)[-1]
    assert {r["name"] for r in step.recipients} == {"Dana Reyes"}  # version 1's first step
    newer = world.add_lead("V-2", probability=0.25)
    world.watch(newer)
    assert world.escalation(newer).settings_version == 2
    assert world.escalation(newer).due_at == world.clock.now + timedelta(minutes=1)


def test_overdue_steps_run_exactly_once_across_concurrent_workers(world: World) -> None:
    leads = [world.add_lead(f"X-{i}", probability=0.25) for i in range(24)]
    world.watch(*leads)
    # The workers were down for an hour: every first step (due after 15 min) is overdue.
    world.clock.advance(hours=1)
    runners: list[EscalationRunner] = [world.runner() for _ in range(3)]
    ran: list[int] = []
    errors: list[BaseException] = []

    def work(runner: EscalationRunner) -> None:
        try:
            ran.append(runner.run_due().ran)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(ran) == 24
    with unit_of_work(world.factory) as db_session:
        notified = db_session.scalars(
            select(EscalationDecision.escalation_id).where(EscalationDecision.action == "notify")
        ).all()
    assert sorted(notified) == sorted(set(notified)) and len(notified) == 24


def test_a_stale_run_token_runs_nothing(world: World) -> None:
    lead = world.add_lead("T-1", probability=0.25)
    world.watch(lead)
    world.clock.advance(minutes=20)
    with unit_of_work(world.factory) as db_session:
        [(escalation_id, token)] = service.due(db_session=db_session, now=world.clock())
    with unit_of_work(world.factory) as db_session:
        assert service.take(
            db_session=db_session, escalation_id=escalation_id, token=token, now=world.clock()
        )
    with unit_of_work(world.factory) as db_session:
        assert not service.take(
            db_session=db_session, escalation_id=escalation_id, token=token, now=world.clock()
        )


def test_a_failing_step_is_logged_and_retried_later(world: World) -> None:
    lead = world.add_lead("E-1", probability=0.25)
    world.watch(lead)
    esc = world.escalation(lead)
    with unit_of_work(world.factory) as db_session:
        db_session.execute(
            update(Escalation).where(Escalation.id == esc.id).values(plan={"broken": True})
        )
    world.clock.advance(minutes=15)
    result = world.runner().run_due()
    assert (result.ran, result.failed) == (0, 1)
    last = world.decisions(esc.id)[-1]
    assert last.action == "error" and "retried in 1 min" in last.reason
    assert world.escalation(lead).due_at == world.clock.now + timedelta(minutes=1)


def test_the_sweep_starts_chains_for_watched_leads_and_skips_old_ones(world: World) -> None:
    fresh = world.add_lead("W-1", probability=0.15)
    old = world.add_lead("W-2", probability=0.15, created_at=world.clock.now - timedelta(days=5))
    result = world.runner().sweep()
    assert result.started == 1
    with unit_of_work(world.factory) as db_session:
        leads = db_session.scalars(select(Escalation.lead_id)).all()
    assert leads == [fresh] and old not in leads


def test_a_fallback_a_dead_worker_left_unsent_is_repaired_by_the_sweep(world: World) -> None:
    lead = world.add_lead("RP-1", probability=0.05)  # critical: six messages at once
    world.watch(lead)
    esc = world.escalation(lead)
    with unit_of_work(world.factory) as db_session:
        db_session.execute(update(OutboxMessage).values(status="dead"))  # ...and then it died
    assert world.runner().repair() == 1
    assert world.runner().repair() == 0  # once
    log = world.decisions(esc.id)
    assert log[-1].fallback and "every delivery of step 1 failed permanently" in log[-1].reason
    assert world.escalation(lead).status == "active"  # a fallback changes nothing else


def test_the_repair_passes_over_stopped_chains(world: World) -> None:
    """A chain stopped by contact needs no fallback for its dead step; the repair must not
    pick that step again every sweep (it would crowd out steps that need one)."""
    from leadwatch.escalations.service import repair_fallbacks

    stopped = world.add_lead("RP-2", probability=0.05)
    world.watch(stopped)
    world.event(stopped, EventType.CONTACTED)
    world.watch(stopped)  # sees the contact: the chain stops
    assert world.escalation(stopped).status == "stopped"
    with unit_of_work(world.factory) as db_session:
        db_session.execute(update(OutboxMessage).values(status="dead"))
    runner = world.runner()
    assert runner.repair() == 0
    with unit_of_work(world.factory) as db_session:
        before = world.escalation(stopped).run_token
        assert (
            repair_fallbacks(
                db_session=db_session, runtime=world.runtime(db_session), now=world.clock()
            )
            == 0
        )
    assert world.escalation(stopped).run_token == before  # not even taken and looked at


def test_a_settings_save_that_loses_the_race_for_its_version_is_a_conflict(world: World) -> None:
    """Two saves at once both take the next version number; the second gets a conflict,
    saves nothing, and its session stays usable (every caller, not just the API)."""
    from sqlalchemy import event

    from leadwatch.escalations import settings as settings_service

    first = world.save_settings({"escalate_low": True}, author="first")

    def meanwhile(_session: Session, _context: object, _instances: object) -> None:
        world.save_settings({"escalate_low": False}, author="other")  # commits first

    with unit_of_work(world.factory) as db_session:
        event.listen(db_session, "before_flush", meanwhile, once=True)
        with pytest.raises(settings_service.SettingsConflictError, match="someone else"):
            settings_service.save(
                db_session=db_session,
                document=settings_service.parse({"watch_hours": 12}),
                author="late",
                now=world.clock(),
            )
        assert settings_service.current_version(db_session=db_session) == first + 1
    with unit_of_work(world.factory) as db_session:
        newest = settings_service.history(db_session=db_session, limit=1)[0]
    assert (newest.version, newest.author) == (first + 1, "other")
