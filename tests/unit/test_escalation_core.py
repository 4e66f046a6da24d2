"""The pure escalation engine: risk levels, plans, chains of steps, working hours, fallback,
claims, upgrades and previews (core.policy, core.directory, core.escalation).

Every instant is a fixed aware datetime; nothing here reads the clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadwatch.core.calendar import WorkingHours
from leadwatch.core.directory import Directory, Person
from leadwatch.core.escalation import (
    Action,
    Decision,
    State,
    Status,
    assess,
    begin,
    claim,
    decide,
    fallback,
    preview,
    upgrade,
)
from leadwatch.core.policy import (
    SEVERITY,
    Channel,
    Condition,
    Delivery,
    LeadFacts,
    Level,
    Plan,
    Policy,
    RecipientRef,
    Role,
    Route,
    Rules,
    Step,
    Thresholds,
)

DEALER = "Riverside Motors"
OTHER_DEALER = "Lakeside Auto"
ZONE = "America/Chicago"

# Mon-Fri 09:00-18:00, Sat 09:00-17:00, closed Sunday, in Chicago wall-clock time.
HOURS = WorkingHours.from_spec(
    ZONE,
    weekly={
        "mon": ["09:00-18:00"],
        "tue": ["09:00-18:00"],
        "wed": ["09:00-18:00"],
        "thu": ["09:00-18:00"],
        "fri": ["09:00-18:00"],
        "sat": ["09:00-17:00"],
    },
)
ALWAYS = WorkingHours.always_open(ZONE)

# June 2025 is CDT (UTC-5).
WED_10AM = datetime(2025, 6, 4, 15, 0, tzinfo=UTC)  # Wed 04 Jun 10:00 CDT, open
FRI_5_50PM = datetime(2025, 6, 6, 22, 50, tzinfo=UTC)  # Fri 06 Jun 17:50 CDT, open
FRI_7PM = datetime(2025, 6, 7, 0, 0, tzinfo=UTC)  # Fri 06 Jun 19:00 CDT, closed
SAT_9AM = datetime(2025, 6, 7, 14, 0, tzinfo=UTC)  # Sat 07 Jun 09:00 CDT, opening
MON_9AM = datetime(2025, 6, 9, 14, 0, tzinfo=UTC)  # Mon 09 Jun 09:00 CDT, opening

ANN = Person(
    "ann",
    "Ann Rep",
    dealership=DEALER,
    addresses={Channel.SMS: "+15550101", Channel.EMAIL: "ann@riverside.example"},
)
SAM = Person(
    "sam",
    "Sam Manager",
    roles=frozenset({Role.SALES_MANAGER.value}),
    dealership=DEALER,
    addresses={Channel.SMS: "+15550102", Channel.EMAIL: "sam@riverside.example"},
)
GINA = Person(  # the group's general manager serves every dealership
    "gina",
    "Gina GM",
    roles=frozenset({Role.GENERAL_MANAGER.value}),
    dealership=None,
    addresses={Channel.SMS: "+15550103", Channel.EMAIL: "gina@group.example"},
)
BOB = Person(
    "bob",
    "Bob BDC",
    roles=frozenset({Role.BDC.value}),
    dealership=DEALER,
    addresses={Channel.EMAIL: "bdc@riverside.example"},
)
OMAR = Person(  # a sales manager, but of another dealership
    "omar",
    "Omar Elsewhere",
    roles=frozenset({Role.SALES_MANAGER.value}),
    dealership=OTHER_DEALER,
    addresses={Channel.SMS: "+15550199"},
)
IVY = Person(  # left the company
    "ivy",
    "Ivy Inactive",
    roles=frozenset({Role.SALES_MANAGER.value}),
    dealership=DEALER,
    addresses={Channel.SMS: "+15550104"},
    active=False,
)
PEOPLE = (ANN, SAM, GINA, BOB, OMAR, IVY)
DIRECTORY = Directory(PEOPLE)

LEAD = LeadFacts(lead_id=7, dealership=DEALER, rep="Ann Rep", source="web", price=31_000.0)

REP = RecipientRef("rep")
MANAGER = RecipientRef("role", Role.SALES_MANAGER)
GM = RecipientRef("role", Role.GENERAL_MANAGER)
BDC = RecipientRef("role", Role.BDC)


def step(delay: float, *recipients: RecipientRef, channels: tuple[Channel, ...] = ()) -> Step:
    return Step(delay, recipients or (REP,), channels or (Channel.SMS,))


def plan_for(policy: Policy, level: Level = Level.HIGH, **fields: object) -> Plan:
    return Plan(level=level, policy=policy, why=f"test plan ({level.value})", **fields)  # type: ignore[arg-type]


def run(state: State, plan: Plan, lead: LeadFacts = LEAD, **kwargs: object) -> Decision:
    options: dict[str, object] = {"calendar": ALWAYS, "directory": DIRECTORY}
    options.update(kwargs)
    return decide(state, plan, lead, **options)  # type: ignore[arg-type]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# --- risk levels -------------------------------------------------------------------------------


def test_default_thresholds_are_ten_twenty_thirty_percent() -> None:
    thresholds = Thresholds()
    assert (thresholds.critical, thresholds.high, thresholds.medium) == (0.10, 0.20, 0.30)


@pytest.mark.parametrize(
    ("probability", "level"),
    [
        (0.0, Level.CRITICAL),
        (0.0999, Level.CRITICAL),
        (0.10, Level.HIGH),
        (0.1999, Level.HIGH),
        (0.20, Level.MEDIUM),
        (0.2999, Level.MEDIUM),
        (0.30, Level.LOW),
        (0.75, Level.LOW),
        (1.0, Level.LOW),
    ],
)
def test_level_from_probability_with_default_thresholds(probability: float, level: Level) -> None:
    assert Thresholds().level(probability) is level


def test_custom_thresholds_move_the_lines() -> None:
    thresholds = Thresholds(critical=0.05, high=0.15, medium=0.50)
    assert thresholds.level(0.07) is Level.HIGH
    assert thresholds.level(0.40) is Level.MEDIUM
    assert thresholds.level(0.50) is Level.LOW
    assert thresholds.line(Level.CRITICAL) == 0.05
    assert thresholds.line(Level.MEDIUM) == 0.50
    assert thresholds.line(Level.LOW) is None


@pytest.mark.parametrize(
    ("critical", "high", "medium"),
    [
        (0.20, 0.10, 0.30),  # critical above high
        (0.10, 0.30, 0.20),  # high above medium
        (0.10, 0.10, 0.30),  # equal lines
        (0.0, 0.10, 0.20),  # critical at zero
        (0.10, 0.20, 1.0),  # medium at one
        (float("nan"), 0.20, 0.30),
    ],
)
def test_thresholds_must_be_strictly_ordered_inside_zero_one(
    critical: float, high: float, medium: float
) -> None:
    with pytest.raises(ValueError, match="critical < high < medium"):
        Thresholds(critical=critical, high=high, medium=medium)


@pytest.mark.parametrize("bad", [float("nan"), -0.01, 1.7])
def test_impossible_probability_is_refused_rather_than_given_a_level(bad: float) -> None:
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        Thresholds().level(bad)


_line = st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True)
_probability = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(_line, min_size=3, max_size=3, unique=True).map(sorted),
    first=_probability,
    second=_probability,
)
def test_level_is_monotone_in_probability(lines: list[float], first: float, second: float) -> None:
    thresholds = Thresholds(*lines)
    lower, higher = sorted((first, second))
    assert SEVERITY[thresholds.level(lower)] >= SEVERITY[thresholds.level(higher)]
    # and each level's line is the probability below which it applies
    level = thresholds.level(lower)
    line = thresholds.line(level)
    if line is None:
        assert lower >= thresholds.medium
    else:
        assert lower < line


# --- assess: level, plan and why ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("probability", "level", "says"),
    [
        (0.05, Level.CRITICAL, "P(sale in 30 d) 0.05 < critical line 0.10: critical"),
        (0.15, Level.HIGH, "P(sale in 30 d) 0.15 < high line 0.20: high"),
        (0.25, Level.MEDIUM, "P(sale in 30 d) 0.25 < medium line 0.30: medium"),
    ],
)
def test_assess_freezes_the_level_policy_and_says_why(
    probability: float, level: Level, says: str
) -> None:
    rules = Rules()
    result = assess(rules, LEAD, probability, thresholds=Thresholds(), settings_version=4)
    assert result.level is level
    assert result.probability == probability
    assert result.plan is not None
    assert result.plan.level is level
    assert result.plan.policy is rules.policies[level.value]
    assert result.plan.settings_version == 4
    assert result.plan.claim_timeout_minutes == 30.0
    assert result.plan.fallback_recipients == (GM,)
    assert result.reason == result.plan.why
    assert result.reason == f"{says}; the {level.value} policy '{level.value}'"


def test_low_risk_is_not_escalated_by_default() -> None:
    result = assess(Rules(), LEAD, 0.45, thresholds=Thresholds())
    assert result.level is Level.LOW
    assert result.plan is None
    assert result.reason == "P(sale in 30 d) 0.45 >= medium line 0.30: low risk, not escalated"


def test_low_risk_is_escalated_when_the_rules_say_so() -> None:
    rules = Rules(escalate_low=True, horizon_days=14)
    result = assess(rules, LEAD, 0.45, thresholds=Thresholds())
    assert result.plan is not None
    assert result.plan.policy.name == "low"
    assert result.reason.startswith("P(sale in 14 d) 0.45 >= medium line 0.30: low risk; ")
    assert "not escalated" not in result.reason


def test_assess_uses_the_thresholds_it_is_given() -> None:
    result = assess(Rules(), LEAD, 0.25, thresholds=Thresholds(0.05, 0.10, 0.20))
    assert result.level is Level.LOW
    assert result.plan is None
    assert "medium line 0.20" in result.reason


def test_after_hours_default_routes_critical_and_holds_the_rest() -> None:
    rules = Rules()
    modes = {
        level: assess(rules, LEAD, p, thresholds=Thresholds()).plan
        for level, p in ((Level.CRITICAL, 0.05), (Level.HIGH, 0.15), (Level.MEDIUM, 0.25))
    }
    assert {level: plan.after_hours for level, plan in modes.items() if plan} == {
        Level.CRITICAL: "route",
        Level.HIGH: "hold",
        Level.MEDIUM: "hold",
    }
    critical = modes[Level.CRITICAL]
    assert critical is not None
    assert critical.after_hours_recipients == (MANAGER,)
    assert critical.after_hours_channels == (Channel.SMS,)


def test_level_policies_can_point_levels_at_any_named_policy() -> None:
    defaults = Rules().policies
    quiet = Policy("quiet", (step(120),))
    rules = Rules(
        policies={**defaults, "quiet": quiet},
        level_policies={
            Level.CRITICAL: "critical",
            Level.HIGH: "quiet",
            Level.MEDIUM: "medium",
            Level.LOW: "low",
        },
    )
    plan = assess(rules, LEAD, 0.15, thresholds=Thresholds()).plan
    assert plan is not None
    assert plan.policy is quiet
    assert plan.why.endswith("the high policy 'quiet'")


# --- advanced routing ---------------------------------------------------------------------------


def _routed_rules(*routes: Route) -> Rules:
    defaults = Rules().policies
    extra = {
        name: Policy(name, (step(1, GM),)) for name in ("vip", "web", "porsche", "rep", "store")
    }
    return Rules(policies={**defaults, **extra}, routes=routes)


def test_first_matching_route_wins_and_says_what_matched() -> None:
    rules = _routed_rules(
        Route("luxury", Condition(min_price=50_000), "vip"),
        Route("internet", Condition(sources=frozenset({"Web"})), "web"),
    )
    lead = replace(LEAD, price=62_000.0, source="web")
    plan = assess(rules, lead, 0.15, thresholds=Thresholds()).plan
    assert plan is not None
    assert plan.policy.name == "vip"
    assert plan.why == (
        "P(sale in 30 d) 0.15 < high line 0.20: high; "
        "route 'luxury' (price 62,000 >= 50,000) chose policy 'vip'"
    )
    cheaper = assess(
        rules, replace(lead, price=20_000.0, source="WEB"), 0.15, thresholds=Thresholds()
    ).plan
    assert cheaper is not None
    assert cheaper.policy.name == "web"
    assert "route 'internet' (source WEB) chose policy 'web'" in cheaper.why


def test_no_matching_route_falls_back_to_the_level_policy() -> None:
    rules = _routed_rules(Route("luxury", Condition(min_price=50_000), "vip"))
    for price in (None, 49_999.0):
        plan = assess(rules, replace(LEAD, price=price), 0.15, thresholds=Thresholds()).plan
        assert plan is not None
        assert plan.policy.name == "high"
        assert plan.why.endswith("the high policy 'high'")


def test_price_range_is_inclusive_at_both_ends() -> None:
    condition = Condition(min_price=30_000, max_price=40_000)
    assert condition.explain_match(replace(LEAD, price=30_000.0), Level.HIGH) == (
        "price 30,000 >= 30,000 and <= 40,000"
    )
    assert condition.explain_match(replace(LEAD, price=40_000.0), Level.HIGH) is not None
    assert condition.explain_match(replace(LEAD, price=40_001.0), Level.HIGH) is None
    assert condition.explain_match(replace(LEAD, price=None), Level.HIGH) is None
    with pytest.raises(ValueError, match="above max_price"):
        Condition(min_price=50_000, max_price=40_000)


def test_make_and_model_match_without_regard_to_case() -> None:
    condition = Condition(makes=frozenset({"PORSCHE"}), models=frozenset({"911"}))
    lead = replace(LEAD, make="Porsche", model="911")
    assert condition.explain_match(lead, Level.HIGH) == "make Porsche, model 911"
    assert condition.explain_match(replace(lead, model="Cayenne"), Level.HIGH) is None
    assert condition.explain_match(replace(lead, make=None), Level.HIGH) is None


def test_rep_dealership_and_level_conditions() -> None:
    rules = _routed_rules(
        Route(
            "critical here",
            Condition(
                levels=frozenset({Level.CRITICAL}), dealerships=frozenset({"riverside motors"})
            ),
            "store",
        ),
        Route("ann's leads", Condition(reps=frozenset({"ann rep"})), "rep"),
    )
    critical = assess(rules, LEAD, 0.05, thresholds=Thresholds()).plan
    assert critical is not None
    assert critical.policy.name == "store"
    assert "(level critical, dealership Riverside Motors)" in critical.why
    high = assess(rules, LEAD, 0.15, thresholds=Thresholds()).plan
    assert high is not None
    assert high.policy.name == "rep"
    assert 'route "ann\'s leads" (rep Ann Rep)' in high.why
    unassigned = assess(rules, replace(LEAD, rep=None), 0.15, thresholds=Thresholds()).plan
    assert unassigned is not None
    assert unassigned.policy.name == "high"


def test_empty_condition_always_matches() -> None:
    assert Condition().explain_match(LEAD, Level.MEDIUM) == "always"


def test_rules_refuse_unknown_policy_names() -> None:
    with pytest.raises(ValueError, match="route 'x' names unknown policy 'nope'"):
        Rules(routes=(Route("x", Condition(), "nope"),))
    with pytest.raises(ValueError, match="level high names unknown policy 'gone'"):
        Rules(level_policies={**Rules().level_policies, Level.HIGH: "gone"})
    with pytest.raises(ValueError, match="claim_timeout_minutes"):
        Rules(claim_timeout_minutes=0)


# --- policy values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("rep", RecipientRef("rep")),
        (" assigned_rep ", RecipientRef("rep")),
        ("sales_manager", RecipientRef("role", "sales_manager")),
        ("role:general_manager", RecipientRef("role", "general_manager")),
        ("bdc", RecipientRef("role", "bdc")),
        ("person:ann", RecipientRef("person", "ann")),
    ],
)
def test_recipient_refs_parse(text: str, ref: RecipientRef) -> None:
    assert RecipientRef.parse(text) == ref


@pytest.mark.parametrize("text", ["manager", "role:owner", "person:", "person: ", ""])
def test_unknown_recipient_refs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unknown recipient"):
        RecipientRef.parse(text)


def test_steps_and_policies_validate() -> None:
    with pytest.raises(ValueError, match="delay must be >= 0"):
        Step(-1, (REP,), (Channel.SMS,))
    with pytest.raises(ValueError, match="delay must be >= 0"):
        Step(float("nan"), (REP,), (Channel.SMS,))
    with pytest.raises(ValueError, match="at least one recipient"):
        Step(0, (), (Channel.SMS,))
    with pytest.raises(ValueError, match="at least one channel"):
        Step(0, (REP,), ())
    with pytest.raises(ValueError, match="has no steps"):
        Policy("empty", ())
    with pytest.raises(ValueError, match="repeat must be >= 0"):
        Policy("p", (step(0),), repeat=-1)


# --- begin / decide: the chain -----------------------------------------------------------------


def test_begin_schedules_the_first_step_after_its_delay() -> None:
    plan = plan_for(Policy("p", (step(5), step(10))))
    state = begin(plan, WED_10AM)
    assert state == State(Status.ACTIVE, 0, 0, WED_10AM + minutes(5), WED_10AM)
    immediate = begin(plan_for(Policy("now", (step(0),))), WED_10AM)
    assert immediate.due_at == WED_10AM


@pytest.mark.parametrize("early", [timedelta(seconds=1), minutes(4), minutes(5)])
def test_decide_before_due_waits_and_leaves_the_state_alone(early: timedelta) -> None:
    plan = plan_for(Policy("p", (step(5),)))
    state = begin(plan, WED_10AM)
    decision = run(state, plan, now=WED_10AM + minutes(5) - early)
    assert decision.action is Action.WAIT
    assert decision.state is state
    assert decision.deliveries == ()
    assert decision.reason == f"nothing due before {(WED_10AM + minutes(5)).isoformat()}"


def test_a_due_step_notifies_and_schedules_the_next_from_now() -> None:
    plan = plan_for(Policy("p", (step(5), step(15, MANAGER, channels=(Channel.EMAIL,)))))
    state = begin(plan, WED_10AM)
    late = WED_10AM + minutes(7)  # the sweep ran two minutes late
    first = run(state, plan, now=late)
    assert first.action is Action.NOTIFY
    assert first.step == 0
    assert first.deliveries == (Delivery("ann", "Ann Rep", Channel.SMS, "+15550101"),)
    assert first.recipients == ["Ann Rep"]
    assert first.channels == ["sms"]
    assert first.reason == "step 1/2 of 'p': notifies rep"
    assert first.after_hours is False
    assert first.fallback is False
    assert first.state == state._replace(step=1, due_at=late + minutes(15), depth=1)

    second = run(first.state, plan, now=late + minutes(15))
    assert second.action is Action.NOTIFY
    assert second.deliveries == (
        Delivery("sam", "Sam Manager", Channel.EMAIL, "sam@riverside.example"),
    )
    assert second.reason == "step 2/2 of 'p': notifies role:sales_manager; last step of the chain"
    assert second.state.status is Status.EXHAUSTED
    assert second.state.due_at is None
    assert second.state.depth == 2

    after = run(second.state, plan, now=late + minutes(600))
    assert after.action is Action.STOP
    assert after.reason == "escalation already exhausted"
    assert after.state is second.state


def test_repeat_runs_the_chain_again_after_the_pause() -> None:
    policy = Policy("loop", (step(2), step(3, MANAGER)), repeat=1, repeat_after_minutes=20)
    plan = plan_for(policy)
    decisions = preview(plan, LEAD, calendar=ALWAYS, directory=DIRECTORY, start=WED_10AM)
    assert [d.at - WED_10AM for d in decisions] == [minutes(m) for m in (2, 5, 27, 30)]
    assert [(d.state.step, d.state.cycle) for d in decisions[:-1]] == [(1, 0), (0, 1), (1, 1)]
    assert decisions[2].reason == "step 1/2 of 'loop' (repeat 1): notifies rep"
    assert decisions[-1].state.status is Status.EXHAUSTED
    assert decisions[-1].reason.endswith("; last step of the chain")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"contacted": True}, "lead contacted: chain stopped"),
        ({"status": "sold"}, "lead sold: chain stopped"),
        ({"status": "delivered"}, "lead delivered: chain stopped"),
        ({"status": "lost"}, "lead lost: chain stopped"),
    ],
)
def test_a_delayed_step_rechecks_the_lead_when_it_falls_due(
    changes: dict[str, object], reason: str
) -> None:
    plan = plan_for(Policy("p", (step(0), step(30, MANAGER))))
    first = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    assert first.action is Action.NOTIFY
    lead_now = replace(LEAD, **changes)  # type: ignore[arg-type]
    decision = run(first.state, plan, lead_now, now=WED_10AM + minutes(30))
    assert decision.action is Action.STOP
    assert decision.reason == reason
    assert decision.deliveries == ()
    assert decision.state.status is Status.STOPPED
    assert decision.state.due_at is None
    assert decision.state.depth == 1
    again = run(decision.state, plan, lead_now, now=WED_10AM + minutes(90))
    assert again.action is Action.STOP
    assert again.reason == "escalation already stopped"


def test_the_rep_is_resolved_when_the_step_falls_due_not_at_the_start() -> None:
    plan = plan_for(Policy("p", (step(10),)))
    state = begin(plan, WED_10AM)
    reassigned = replace(LEAD, rep="Sam Manager")
    decision = run(state, plan, reassigned, now=WED_10AM + minutes(10))
    assert decision.recipients == ["Sam Manager"]


def test_depth_counts_only_steps_that_notified_somebody() -> None:
    lonely = replace(LEAD, dealership="Nowhere Cars", rep=None)
    policy = Policy(
        "p",
        (step(0, GM), step(5, BDC, channels=(Channel.EMAIL,)), step(5, GM)),
    )
    plan = plan_for(policy)  # no fallback recipients: an unreachable step reaches nobody
    decisions = preview(plan, lonely, calendar=ALWAYS, directory=DIRECTORY, start=WED_10AM)
    assert [d.action for d in decisions] == [Action.NOTIFY, Action.UNROUTABLE, Action.NOTIFY]
    assert [d.state.depth for d in decisions] == [1, 1, 2]
    assert decisions[1].reason == (
        "step 2/3 of 'p': notifies role:bdc; nobody reachable (nobody holds role bdc at "
        "Nowhere Cars): fallback to nobody; fallback unreachable too ()"
    )


def test_holding_does_not_count_towards_depth() -> None:
    plan = plan_for(Policy("p", (step(5),)))
    held = decide(
        begin(plan, FRI_7PM),
        plan,
        LEAD,
        calendar=HOURS,
        directory=DIRECTORY,
        now=FRI_7PM + minutes(5),
    )
    assert held.action is Action.HOLD
    assert held.state.depth == 0


# --- recipients: merging, addresses, inactive people, dealerships --------------------------------


def test_same_person_via_rep_and_role_gets_one_delivery_per_channel() -> None:
    lead = replace(LEAD, rep="Sam Manager")  # the sales manager is also this lead's rep
    plan = plan_for(Policy("p", (step(0, REP, MANAGER, channels=(Channel.SMS, Channel.EMAIL)),)))
    decision = run(begin(plan, WED_10AM), plan, lead, now=WED_10AM)
    assert decision.deliveries == (
        Delivery("sam", "Sam Manager", Channel.SMS, "+15550102"),
        Delivery("sam", "Sam Manager", Channel.EMAIL, "sam@riverside.example"),
    )
    assert decision.recipients == ["Sam Manager"]


def test_named_person_also_reached_by_role_is_merged() -> None:
    plan = plan_for(Policy("p", (step(0, RecipientRef("person", "sam"), MANAGER, REP),)))
    decision = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    assert [(d.person, d.channel) for d in decision.deliveries] == [
        ("sam", Channel.SMS),
        ("ann", Channel.SMS),
    ]


def test_a_person_with_no_address_on_the_channels_is_reported() -> None:
    nora = Person("nora", "Nora NoPhone", dealership=DEALER, addresses={Channel.SMS: ""})
    directory = Directory((*PEOPLE, nora))
    lead = replace(LEAD, rep="Nora NoPhone")
    plan = plan_for(Policy("p", (step(0, REP, BDC, channels=(Channel.EMAIL, Channel.SMS)),)))
    decision = run(begin(plan, WED_10AM), plan, lead, directory=directory, now=WED_10AM)
    assert decision.action is Action.NOTIFY
    assert decision.recipients == ["Bob BDC"]
    assert decision.reason == (
        "step 1/1 of 'p': notifies rep, role:bdc "
        "(not reached: Nora NoPhone has no address for email/sms); last step of the chain"
    )


def test_an_unreachable_person_met_twice_is_reported_once() -> None:
    nora = Person("nora", "Nora NoPhone", roles=frozenset({"bdc"}), dealership=DEALER)
    directory = Directory((nora, GINA))
    lead = replace(LEAD, rep="Nora NoPhone")  # the rep is also the only BDC agent
    plan = plan_for(
        Policy("p", (step(0, REP, BDC, GM, channels=(Channel.EMAIL,)),)),
    )
    decision = run(begin(plan, WED_10AM), plan, lead, directory=directory, now=WED_10AM)
    assert decision.recipients == ["Gina GM"]
    assert decision.reason.count("Nora NoPhone has no address for email") == 1


def test_in_app_needs_no_address() -> None:
    nora = Person("nora", "Nora NoPhone", dealership=DEALER)
    directory = Directory((nora,))
    plan = plan_for(Policy("p", (step(0, channels=(Channel.SMS, Channel.IN_APP)),)))
    decision = run(
        begin(plan, WED_10AM),
        plan,
        replace(LEAD, rep="nora nophone"),
        directory=directory,
        now=WED_10AM,
    )
    assert decision.deliveries == (Delivery("nora", "Nora NoPhone", Channel.IN_APP, "nora"),)


def test_inactive_people_are_skipped() -> None:
    plan = plan_for(Policy("p", (step(0, MANAGER),)))
    decision = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    assert decision.recipients == ["Sam Manager"]  # not Ivy, who is inactive
    assert all(d.person != "ivy" for d in decision.deliveries)

    named = plan_for(
        Policy("p", (step(0, RecipientRef("person", "ivy")),)),
        fallback_recipients=(GM,),
        fallback_channels=(Channel.EMAIL,),
    )
    decision = run(begin(named, WED_10AM), named, now=WED_10AM)
    assert decision.fallback is True
    assert decision.recipients == ["Gina GM"]
    assert "nobody reachable (no active person 'ivy')" in decision.reason

    only_inactive_rep = replace(LEAD, rep="Ivy Inactive")
    rep_plan = plan_for(Policy("p", (step(0),)))
    decision = run(begin(rep_plan, WED_10AM), rep_plan, only_inactive_rep, now=WED_10AM)
    assert decision.action is Action.UNROUTABLE
    assert "rep 'Ivy Inactive' is not in the directory" in decision.reason


def test_role_recipients_come_from_the_lead_dealership_or_serve_all() -> None:
    plan = plan_for(Policy("p", (step(0, MANAGER, GM),)))
    decision = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    assert {d.person for d in decision.deliveries} == {"sam", "gina"}  # not Omar (Lakeside)

    lakeside = replace(LEAD, dealership="lakeside auto", rep=None)  # case does not matter
    decision = run(begin(plan, WED_10AM), plan, lakeside, now=WED_10AM)
    assert {d.person for d in decision.deliveries} == {"omar", "gina"}  # Gina serves all


def test_a_rep_of_another_dealership_is_not_used() -> None:
    plan = plan_for(Policy("p", (step(0),)))
    lead = replace(LEAD, dealership=OTHER_DEALER)  # Ann works at Riverside only
    decision = run(begin(plan, WED_10AM), plan, lead, now=WED_10AM)
    assert decision.action is Action.UNROUTABLE
    assert "rep 'Ann Rep' is not in the directory" in decision.reason


# --- fallback -----------------------------------------------------------------------------------


def test_nobody_reachable_goes_to_the_fallback_recipients() -> None:
    plan = plan_for(
        Policy("p", (step(0, BDC, channels=(Channel.SMS,)), step(10))),
        fallback_recipients=(GM,),
        fallback_channels=(Channel.EMAIL,),
    )
    decision = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    assert decision.action is Action.NOTIFY
    assert decision.fallback is True
    assert decision.deliveries == (
        Delivery("gina", "Gina GM", Channel.EMAIL, "gina@group.example"),
    )
    assert decision.reason == (
        "step 1/2 of 'p': notifies role:bdc; nobody reachable (Bob BDC has no address for sms): "
        "fallback to role:general_manager"
    )
    assert decision.state.depth == 1
    assert decision.state.step == 1


def test_fallback_uses_the_step_channels_when_it_has_none_of_its_own() -> None:
    plan = plan_for(
        Policy("p", (step(0, RecipientRef("person", "ghost"), channels=(Channel.SMS,)),)),
        fallback_recipients=(GM,),
    )
    decision = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    assert decision.deliveries == (Delivery("gina", "Gina GM", Channel.SMS, "+15550103"),)


def test_unreachable_fallback_is_unroutable_and_the_chain_goes_on() -> None:
    plan = plan_for(
        Policy("p", (step(0, BDC, channels=(Channel.SMS,)), step(10))),
        fallback_recipients=(RecipientRef("person", "ghost"),),
        fallback_channels=(Channel.EMAIL,),
    )
    decision = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    assert decision.action is Action.UNROUTABLE
    assert decision.fallback is True
    assert decision.deliveries == ()
    assert decision.reason.endswith("; fallback unreachable too (no active person 'ghost')")
    assert decision.state == begin(plan, WED_10AM)._replace(step=1, due_at=WED_10AM + minutes(10))


def test_fallback_after_every_delivery_of_a_step_failed() -> None:
    plan = plan_for(
        Policy("p", (step(0), step(10, MANAGER, channels=(Channel.EMAIL,)))),
        fallback_recipients=(GM, RecipientRef("person", "ghost")),
        fallback_channels=(),
    )
    first = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    second = run(first.state, plan, now=WED_10AM + minutes(10))
    failed = fallback(
        second.state, plan, LEAD, directory=DIRECTORY, now=WED_10AM + minutes(12), failed_step=1
    )
    assert failed.action is Action.NOTIFY
    assert failed.fallback is True
    assert failed.step == 1
    assert failed.deliveries == (  # the failed step's channels: email
        Delivery("gina", "Gina GM", Channel.EMAIL, "gina@group.example"),
    )
    assert failed.reason == (
        "every delivery of step 2 failed permanently: fallback to "
        "role:general_manager, person:ghost (no active person 'ghost')"
    )
    assert failed.state is second.state  # the chain carries on as scheduled


def test_fallback_with_nobody_reachable_is_unroutable() -> None:
    plan = plan_for(
        Policy("p", (step(0),)), fallback_recipients=(BDC,), fallback_channels=(Channel.SMS,)
    )
    state = begin(plan, WED_10AM)
    failed = fallback(state, plan, LEAD, directory=DIRECTORY, now=WED_10AM, failed_step=0)
    assert failed.action is Action.UNROUTABLE
    assert failed.deliveries == ()
    assert "Bob BDC has no address for sms" in failed.reason


def test_fallback_still_runs_after_the_last_step_of_the_chain() -> None:
    plan = plan_for(Policy("p", (step(0),)), fallback_recipients=(GM,))
    done = run(begin(plan, WED_10AM), plan, now=WED_10AM).state
    assert done.status is Status.EXHAUSTED
    failed = fallback(done, plan, LEAD, directory=DIRECTORY, now=WED_10AM, failed_step=0)
    assert failed.action is Action.NOTIFY
    assert failed.recipients == ["Gina GM"]
    assert failed.state is done


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"contacted": True}, "lead contacted: chain stopped"),
        ({"status": "sold"}, "lead sold: chain stopped"),
    ],
)
def test_no_fallback_for_a_lead_contacted_or_closed_meanwhile(
    changes: dict[str, object], reason: str
) -> None:
    plan = plan_for(Policy("p", (step(0), step(30))), fallback_recipients=(GM,))
    state = run(begin(plan, WED_10AM), plan, now=WED_10AM).state
    lead = replace(LEAD, **changes)  # type: ignore[arg-type]
    failed = fallback(state, plan, lead, directory=DIRECTORY, now=WED_10AM, failed_step=0)
    assert failed.action is Action.STOP
    assert failed.deliveries == ()
    assert failed.reason == reason
    assert failed.state == state._replace(status=Status.STOPPED, due_at=None)


def test_no_fallback_for_a_stopped_escalation() -> None:
    plan = plan_for(Policy("p", (step(0), step(30))), fallback_recipients=(GM,))
    stopped = begin(plan, WED_10AM)._replace(status=Status.STOPPED, due_at=None)
    failed = fallback(stopped, plan, LEAD, directory=DIRECTORY, now=WED_10AM, failed_step=0)
    assert failed.action is Action.STOP
    assert failed.reason == "escalation already stopped"
    assert failed.state is stopped


# --- working hours ------------------------------------------------------------------------------


def test_calendar_fixture_is_what_the_tests_assume() -> None:
    assert HOURS.is_open(WED_10AM)
    assert HOURS.is_open(FRI_5_50PM)
    assert not HOURS.is_open(FRI_7PM)
    assert HOURS.next_opening(FRI_7PM) == SAT_9AM


def test_friday_evening_high_lead_is_held_until_saturday_opening() -> None:
    plan = assess(Rules(), LEAD, 0.15, thresholds=Thresholds()).plan
    assert plan is not None
    assert plan.after_hours == "hold"
    state = begin(plan, FRI_7PM)
    assert state.due_at == FRI_7PM + minutes(5)
    held = decide(state, plan, LEAD, calendar=HOURS, directory=DIRECTORY, now=state.due_at)
    assert held.action is Action.HOLD
    assert held.after_hours is True
    assert held.deliveries == ()
    assert held.step == 0
    assert held.state == state._replace(due_at=SAT_9AM)
    assert held.reason == (
        "step 1/2 of 'high': after hours at Riverside Motors (Fri 06 Jun 19:05 CDT); "
        "high holds until the next opening (Sat 07 Jun 09:00 CDT)"
    )
    waiting = decide(
        held.state, plan, LEAD, calendar=HOURS, directory=DIRECTORY, now=SAT_9AM - minutes(1)
    )
    assert waiting.action is Action.WAIT
    assert waiting.state is held.state
    opened = decide(held.state, plan, LEAD, calendar=HOURS, directory=DIRECTORY, now=SAT_9AM)
    assert opened.action is Action.NOTIFY
    assert opened.after_hours is False
    assert opened.recipients == ["Ann Rep"]
    assert opened.state.due_at == SAT_9AM + minutes(15)


def test_friday_evening_critical_lead_routes_to_the_after_hours_recipients() -> None:
    plan = assess(Rules(), LEAD, 0.05, thresholds=Thresholds()).plan
    assert plan is not None
    decision = decide(
        begin(plan, FRI_7PM), plan, LEAD, calendar=HOURS, directory=DIRECTORY, now=FRI_7PM
    )
    assert decision.action is Action.NOTIFY
    assert decision.after_hours is True
    assert decision.deliveries == (Delivery("sam", "Sam Manager", Channel.SMS, "+15550102"),)
    assert decision.reason == (
        "step 1/2 of 'critical': after hours at Riverside Motors (Fri 06 Jun 19:00 CDT); "
        "critical routes to role:sales_manager"
    )
    assert decision.state.due_at == FRI_7PM + minutes(10)


def test_the_same_critical_lead_in_hours_follows_its_own_step() -> None:
    plan = assess(Rules(), LEAD, 0.05, thresholds=Thresholds()).plan
    assert plan is not None
    decision = decide(
        begin(plan, WED_10AM), plan, LEAD, calendar=HOURS, directory=DIRECTORY, now=WED_10AM
    )
    assert decision.after_hours is False
    assert decision.recipients == ["Ann Rep", "Sam Manager"]
    assert decision.channels == ["sms", "email", "in_app"]
    assert decision.reason == "step 1/2 of 'critical': notifies rep, role:sales_manager"


def test_working_hours_are_judged_when_each_step_falls_due() -> None:
    # Started at 17:50 while open: the second step falls due after closing and is held.
    plan = plan_for(Policy("p", (step(0), step(15, MANAGER))))
    decisions = preview(plan, LEAD, calendar=HOURS, directory=DIRECTORY, start=FRI_5_50PM)
    assert [d.action for d in decisions] == [Action.NOTIFY, Action.HOLD, Action.NOTIFY]
    assert [d.at for d in decisions] == [FRI_5_50PM, FRI_5_50PM + minutes(15), SAT_9AM]
    assert decisions[2].recipients == ["Sam Manager"]

    # Started while closed but due after the opening: never held.
    early = SAT_9AM - minutes(30)
    plan = plan_for(Policy("p", (step(45),)))
    decisions = preview(plan, LEAD, calendar=HOURS, directory=DIRECTORY, start=early)
    assert [d.action for d in decisions] == [Action.NOTIFY]
    assert decisions[0].after_hours is False


def test_a_holiday_holds_until_the_next_working_day() -> None:
    hours = WorkingHours.from_spec(
        ZONE,
        weekly={day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat")},
        holidays=[date(2025, 6, 7)],
    )
    plan = plan_for(Policy("p", (step(5),)))
    held = decide(
        begin(plan, FRI_7PM),
        plan,
        LEAD,
        calendar=hours,
        directory=DIRECTORY,
        now=FRI_7PM + minutes(5),
    )
    assert held.action is Action.HOLD
    assert held.state.due_at == MON_9AM
    assert held.reason.endswith("holds until the next opening (Mon 09 Jun 09:00 CDT)")


def test_after_hours_mode_is_per_level_and_configurable() -> None:
    rules = Rules(
        after_hours={**Rules().after_hours, Level.HIGH: "route", Level.CRITICAL: "hold"},
        after_hours_recipients=(GM,),
        after_hours_channels=(Channel.EMAIL,),
    )
    high = assess(rules, LEAD, 0.15, thresholds=Thresholds()).plan
    critical = assess(rules, LEAD, 0.05, thresholds=Thresholds()).plan
    assert high is not None and critical is not None
    routed = decide(
        begin(high, FRI_7PM),
        high,
        LEAD,
        calendar=HOURS,
        directory=DIRECTORY,
        now=FRI_7PM + minutes(5),
    )
    assert routed.action is Action.NOTIFY
    assert routed.deliveries == (Delivery("gina", "Gina GM", Channel.EMAIL, "gina@group.example"),)
    assert "high routes to role:general_manager" in routed.reason
    held = decide(
        begin(critical, FRI_7PM), critical, LEAD, calendar=HOURS, directory=DIRECTORY, now=FRI_7PM
    )
    assert held.action is Action.HOLD
    assert "critical holds until the next opening" in held.reason


def test_routing_without_after_hours_recipients_uses_the_step_own() -> None:
    plan = plan_for(
        Policy("p", (step(0, MANAGER, channels=(Channel.EMAIL,)),)),
        level=Level.CRITICAL,
        after_hours="route",
    )
    decision = decide(
        begin(plan, FRI_7PM), plan, LEAD, calendar=HOURS, directory=DIRECTORY, now=FRI_7PM
    )
    assert decision.after_hours is True
    assert decision.deliveries == (
        Delivery("sam", "Sam Manager", Channel.EMAIL, "sam@riverside.example"),
    )


def test_a_calendar_that_never_opens_does_not_hold_forever() -> None:
    closed = WorkingHours.from_spec(ZONE, weekly={})
    plan = plan_for(Policy("p", (step(0),)), after_hours_recipients=(MANAGER,))
    decision = decide(
        begin(plan, WED_10AM), plan, LEAD, calendar=closed, directory=DIRECTORY, now=WED_10AM
    )
    assert decision.action is Action.NOTIFY
    assert decision.after_hours is True
    assert decision.recipients == ["Sam Manager"]


# --- claims -------------------------------------------------------------------------------------


def test_claim_pauses_the_chain_for_the_timeout() -> None:
    plan = plan_for(Policy("p", (step(0), step(10, MANAGER))), claim_timeout_minutes=30)
    first = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    claimed_at = WED_10AM + minutes(2)
    claimed = claim(first.state, plan, now=claimed_at, by="Ann Rep")
    assert claimed.action is Action.CLAIM
    assert claimed.reason == (
        "claimed by Ann Rep; escalation resumes unless contact is logged within 30 min"
    )
    assert claimed.state == first.state._replace(
        status=Status.CLAIMED, claimed_at=claimed_at, due_at=claimed_at + minutes(30)
    )
    # The manager's step (due at +10) does not run while the claim holds.
    paused = run(claimed.state, plan, now=WED_10AM + minutes(10))
    assert paused.action is Action.WAIT
    assert paused.state is claimed.state


def test_contact_logged_within_the_claim_stops_the_chain() -> None:
    plan = plan_for(Policy("p", (step(0), step(10, MANAGER))), claim_timeout_minutes=30)
    first = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    claimed = claim(first.state, plan, now=WED_10AM + minutes(2), by="Ann Rep")
    decision = run(claimed.state, plan, replace(LEAD, contacted=True), now=WED_10AM + minutes(32))
    assert decision.action is Action.STOP
    assert decision.reason == "lead contacted: chain stopped"
    assert decision.state.status is Status.STOPPED


def test_a_lapsed_claim_resumes_the_escalation() -> None:
    plan = plan_for(Policy("p", (step(0), step(10, MANAGER))), claim_timeout_minutes=30)
    first = run(begin(plan, WED_10AM), plan, now=WED_10AM)
    claimed = claim(first.state, plan, now=WED_10AM + minutes(2), by="Ann Rep")
    lapsed = run(claimed.state, plan, now=WED_10AM + minutes(32))
    assert lapsed.action is Action.NOTIFY
    assert lapsed.recipients == ["Sam Manager"]
    assert lapsed.reason == (
        "claim lapsed: no contact logged within 30 min; escalation resumes; "
        "step 2/2 of 'p': notifies role:sales_manager; last step of the chain"
    )
    assert lapsed.state.claimed_at is None
    assert lapsed.state.status is Status.EXHAUSTED


def test_a_claim_never_brings_the_next_step_forward() -> None:
    # The step is due in an hour; a 30-minute claim that lapses must not page anyone sooner.
    plan = plan_for(Policy("p", (step(60),)), claim_timeout_minutes=30)
    state = begin(plan, WED_10AM)
    claimed = claim(state, plan, now=WED_10AM + minutes(1), by="Ann Rep")
    assert claimed.state.status is Status.CLAIMED
    assert claimed.state.due_at == WED_10AM + minutes(60)
    assert run(claimed.state, plan, now=WED_10AM + minutes(31)).action is Action.WAIT
    resumed = run(claimed.state, plan, now=WED_10AM + minutes(60))
    assert resumed.action is Action.NOTIFY
    assert resumed.reason.startswith("claim lapsed: no contact logged within 30 min")


def test_a_claim_lapsing_after_hours_is_held_like_any_step() -> None:
    plan = plan_for(Policy("p", (step(0), step(10, MANAGER))), claim_timeout_minutes=30)
    started = FRI_5_50PM
    first = decide(
        begin(plan, started), plan, LEAD, calendar=HOURS, directory=DIRECTORY, now=started
    )
    claimed = claim(first.state, plan, now=started + minutes(1), by="Ann Rep")
    lapsed = decide(
        claimed.state, plan, LEAD, calendar=HOURS, directory=DIRECTORY, now=started + minutes(31)
    )
    assert lapsed.action is Action.HOLD
    assert lapsed.reason.startswith("claim lapsed: no contact logged within 30 min; ")
    assert "holds until the next opening (Sat 07 Jun 09:00 CDT)" in lapsed.reason
    assert lapsed.state.status is Status.ACTIVE
    assert lapsed.state.due_at == SAT_9AM


def test_claiming_an_ended_escalation_changes_nothing() -> None:
    plan = plan_for(Policy("p", (step(0),)))
    done = run(begin(plan, WED_10AM), plan, now=WED_10AM).state
    assert done.status is Status.EXHAUSTED
    decision = claim(done, plan, now=WED_10AM + minutes(1), by="Ann Rep")
    assert decision.action is Action.STOP
    assert decision.state is done


# --- upgrade ------------------------------------------------------------------------------------


def _plans() -> dict[Level, Plan]:
    rules = Rules()
    out = {}
    for level, p in ((Level.CRITICAL, 0.05), (Level.HIGH, 0.15), (Level.MEDIUM, 0.25)):
        plan = assess(rules, LEAD, p, thresholds=Thresholds()).plan
        assert plan is not None
        out[level] = plan
    return out


def test_a_worse_level_moves_the_escalation_to_that_chain() -> None:
    plans = _plans()
    medium = plans[Level.MEDIUM]
    first = run(begin(medium, WED_10AM), medium, now=WED_10AM + minutes(15))
    assert first.state.step == 1 and first.state.depth == 1
    now = WED_10AM + minutes(20)
    moved = upgrade(first.state, medium, plans[Level.CRITICAL], now=now)
    assert moved is not None
    assert moved.action is Action.UPGRADE
    assert moved.state == State(Status.ACTIVE, 0, 0, now, WED_10AM, depth=1)
    assert moved.reason.startswith("level worsened from medium to critical: P(sale in 30 d) 0.05")
    follow = run(moved.state, plans[Level.CRITICAL], now=now)
    assert follow.reason == "step 1/2 of 'critical': notifies rep, role:sales_manager"
    assert follow.state.depth == 2


@pytest.mark.parametrize(
    ("old", "new"),
    [(Level.HIGH, Level.HIGH), (Level.HIGH, Level.MEDIUM), (Level.CRITICAL, Level.HIGH)],
)
def test_an_equal_or_better_level_changes_nothing(old: Level, new: Level) -> None:
    plans = _plans()
    state = begin(plans[old], WED_10AM)
    assert upgrade(state, plans[old], plans[new], now=WED_10AM + minutes(1)) is None


def test_an_ended_escalation_is_not_upgraded() -> None:
    plans = _plans()
    stopped = begin(plans[Level.MEDIUM], WED_10AM)._replace(status=Status.STOPPED, due_at=None)
    assert upgrade(stopped, plans[Level.MEDIUM], plans[Level.CRITICAL], now=WED_10AM) is None


# --- preview ------------------------------------------------------------------------------------


def test_preview_of_a_repeating_policy_terminates_in_order() -> None:
    plan = assess(Rules(), LEAD, 0.05, thresholds=Thresholds()).plan
    assert plan is not None
    decisions = preview(plan, LEAD, calendar=HOURS, directory=DIRECTORY, start=FRI_5_50PM)
    assert len(decisions) == 4  # two steps, one repeat
    assert decisions[-1].state.status is Status.EXHAUSTED
    times = [d.at for d in decisions]
    assert times == sorted(times)
    assert [d.after_hours for d in decisions] == [False, True, True, True]


def test_preview_stops_at_the_limit_for_a_long_repeating_chain() -> None:
    plan = plan_for(Policy("forever", (step(0), step(0)), repeat=10_000, repeat_after_minutes=0))
    decisions = preview(plan, LEAD, calendar=ALWAYS, directory=DIRECTORY, start=WED_10AM, limit=25)
    assert len(decisions) == 25
    assert all(d.at == WED_10AM for d in decisions)


def test_preview_of_a_contacted_lead_stops_at_once() -> None:
    plan = plan_for(Policy("p", (step(5), step(5))))
    decisions = preview(
        plan, replace(LEAD, contacted=True), calendar=ALWAYS, directory=DIRECTORY, start=WED_10AM
    )
    assert [(d.action, d.reason) for d in decisions] == [
        (Action.STOP, "lead contacted: chain stopped")
    ]


_delays = st.sampled_from([0.0, 1.0, 5.0, 15.0, 45.0, 180.0, 600.0, 1440.0])
_steps = st.lists(
    st.builds(
        Step,
        delay_minutes=_delays,
        recipients=st.sampled_from([(REP,), (MANAGER,), (GM, REP), (BDC,)]),
        channels=st.sampled_from([(Channel.SMS,), (Channel.EMAIL, Channel.IN_APP)]),
    ),
    min_size=1,
    max_size=4,
)
_starts = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
).map(lambda at: at.replace(second=0, microsecond=0))


@settings(max_examples=150, deadline=None)
@given(
    steps=_steps,
    repeat=st.integers(min_value=0, max_value=5),
    repeat_after=_delays,
    level=st.sampled_from([Level.CRITICAL, Level.HIGH, Level.MEDIUM]),
    mode=st.sampled_from(["hold", "route"]),
    start=_starts,
)
def test_preview_terminates_with_non_decreasing_times(
    steps: list[Step], repeat: int, repeat_after: float, level: Level, mode: str, start: datetime
) -> None:
    policy = Policy("gen", tuple(steps), repeat=repeat, repeat_after_minutes=repeat_after)
    plan = plan_for(
        policy,
        level=level,
        after_hours=mode,
        after_hours_recipients=(MANAGER,),
        fallback_recipients=(GM,),
    )
    runs = len(steps) * (repeat + 1)
    decisions = preview(
        plan, LEAD, calendar=HOURS, directory=DIRECTORY, start=start, limit=10 * runs
    )
    # Each step runs once, after at most one hold: the chain ends well within the limit.
    assert runs <= len(decisions) <= 2 * runs
    assert decisions[-1].state.status is Status.EXHAUSTED
    assert sum(d.action is not Action.HOLD for d in decisions) == runs
    times = [d.at for d in decisions]
    assert times[0] >= start
    assert all(earlier <= later for earlier, later in zip(times, times[1:], strict=False))
    for decision in decisions:
        assert decision.reason
        if decision.action is Action.HOLD:
            assert mode == "hold"
            assert "holds until the next opening" in decision.reason
            assert HOURS.is_open(decision.state.due_at)  # type: ignore[arg-type]
        else:
            assert HOURS.is_open(decision.at) is not decision.after_hours
    assert decisions[-1].state.depth == sum(bool(d.deliveries) for d in decisions)
