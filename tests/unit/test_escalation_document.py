"""The Lead Escalation settings document: defaults equal the core's, conversions round-trip,
and every refusal names the path of the offending entry."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from leadwatch.core.calendar import CalendarError
from leadwatch.core.directory import Person
from leadwatch.core.policy import (
    Channel,
    Condition,
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
from leadwatch.escalations.document import (
    EscalationSettings,
    PolicyDoc,
    plan_from_json,
    plan_to_json,
    settings_changes,
)

WEEKDAY = ["09:00-20:00"]
DOCUMENT: dict[str, Any] = {
    "thresholds": {"critical": 0.12, "high": 0.2, "medium": 0.35},
    "horizon_days": 14,
    "escalate_low": True,
    "policies": {
        "critical": {
            "steps": [
                {
                    "delay_minutes": 0,
                    "recipients": ["rep", "sales_manager"],
                    "channels": ["sms", "email", "in_app"],
                },
                {"delay_minutes": 10, "recipients": ["person:jane"], "channels": ["slack"]},
            ],
            "repeat": 1,
            "repeat_after_minutes": 30,
        },
        "standard": {
            "steps": [{"delay_minutes": 15, "recipients": ["rep"], "channels": ["email"]}]
        },
        "vip": {
            "steps": [
                {"delay_minutes": 0, "recipients": ["role:bdc", "person:bob"], "channels": ["sms"]}
            ]
        },
    },
    "level_policies": {
        "critical": "critical",
        "high": "standard",
        "medium": "standard",
        "low": "standard",
    },
    "routes": [
        {
            "name": "high-value",
            "when": {"min_price": 50000, "levels": ["critical", "high"], "makes": ["bmw"]},
            "policy": "vip",
        }
    ],
    "after_hours": {"critical": "route", "high": "route", "medium": "hold", "low": "hold"},
    "after_hours_recipients": ["person:jane"],
    "after_hours_channels": ["sms"],
    "fallback_recipients": ["general_manager"],
    "fallback_channels": ["email", "sms"],
    "claim_timeout_minutes": 20,
    "watch_hours": 48,
    "working_hours": {
        "default": {"weekly": {"mon": WEEKDAY, "sat": ["10:00-16:00"]}, "holidays": ["2026-12-25"]},
        "dealerships": {"North Store": {"weekly": {"sun": ["12:00-17:00"]}, "holidays": []}},
    },
    "people": [
        {
            "key": "jane",
            "name": "Jane Smith",
            "roles": ["sales_manager"],
            "dealership": "Main Store",
            "email": "jane@example.com",
            "phone": "+15551230000",
            "slack": "U012AB3CD",
            "webhook": "https://hooks.example.com/x",
        },
        {"key": "bob", "name": "Bob Jones", "roles": ["bdc", "general_manager"], "active": False},
    ],
}


def document(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DOCUMENT)
    data.update(changes)
    return data


def refusal(data: dict[str, Any]) -> tuple[set[str], str]:
    with pytest.raises(ValidationError) as caught:
        EscalationSettings.model_validate(data)
    paths = {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}
    return paths, str(caught.value)


# Defaults


def test_empty_document_is_the_core_defaults() -> None:
    settings = EscalationSettings.model_validate({})
    assert settings == EscalationSettings()
    assert settings.rules() == Rules()
    assert EscalationSettings.from_rules(Rules()) == settings
    assert settings.people == []
    assert settings.directory().people == ()


def test_default_working_hours() -> None:
    spec = EscalationSettings().working_hours("Main Store", "America/Chicago").to_spec()
    assert spec == {
        "timezone": "America/Chicago",
        "weekly": {
            **dict.fromkeys(("mon", "tue", "wed", "thu", "fri"), WEEKDAY),
            "sat": ["09:00-18:00"],
            "sun": [],
        },
        "holidays": [],
    }


def test_defaults_are_not_shared_between_documents() -> None:
    one, two = EscalationSettings(), EscalationSettings()
    assert one.after_hours_recipients is not two.after_hours_recipients
    assert one.policies["critical"] is not two.policies["critical"]


# Round trips


def test_json_round_trip() -> None:
    settings = EscalationSettings.model_validate(DOCUMENT)
    dumped = settings.model_dump_json()
    assert EscalationSettings.model_validate_json(dumped) == settings
    assert "working_hours" in json.loads(dumped)
    null = EscalationSettings.model_validate(document(thresholds=None))
    assert EscalationSettings.model_validate_json(null.model_dump_json()) == null
    assert null.rules().thresholds is None


def test_rules_round_trip() -> None:
    settings = EscalationSettings.model_validate(DOCUMENT)
    rules = settings.rules()
    people = [person.core() for person in settings.people]
    again = EscalationSettings.from_rules(rules, people=people, working_hours=settings.hours)
    assert again.rules() == rules
    assert again == settings  # the document above is already in canonical form


def test_rules_from_document() -> None:
    rules = EscalationSettings.model_validate(DOCUMENT).rules()
    assert rules.thresholds == Thresholds(0.12, 0.2, 0.35)
    assert rules.horizon_days == 14
    assert rules.policies["vip"] == Policy(
        "vip",
        (Step(0, (RecipientRef("role", "bdc"), RecipientRef("person", "bob")), (Channel.SMS,)),),
    )
    assert rules.level_policies[Level.HIGH] == "standard"
    assert rules.routes == (
        Route(
            "high-value",
            Condition(frozenset({Level.CRITICAL, Level.HIGH}), 50000, makes=frozenset({"BMW"})),
            "vip",
        ),
    )
    assert rules.after_hours[Level.HIGH] == "route"
    assert rules.after_hours_recipients == (RecipientRef("person", "jane"),)
    assert rules.claim_timeout_minutes == 20
    assert rules.watch_hours == 48


def test_policy_defaults_are_the_core_policy_defaults() -> None:
    step = {"recipients": ["rep"], "channels": ["email"]}
    assert PolicyDoc.model_validate({"steps": [step]}).core("p") == Policy(
        "p", (Step(0, (RecipientRef("rep"),), (Channel.EMAIL,)),)
    )


def test_recipients_are_stored_in_short_form() -> None:
    step = {"recipients": ["role:bdc", "assigned_rep", " general_manager "], "channels": ["sms"]}
    policy = PolicyDoc.model_validate({"steps": [step]})
    assert policy.steps[0].recipients == ["bdc", "rep", "general_manager"]


def test_directory() -> None:
    people = EscalationSettings.model_validate(DOCUMENT).directory().people
    assert people == (
        Person(
            "jane",
            "Jane Smith",
            frozenset({"sales_manager"}),
            "Main Store",
            {
                Channel.EMAIL: "jane@example.com",
                Channel.SMS: "+15551230000",
                Channel.SLACK: "U012AB3CD",
                Channel.WEBHOOK: "https://hooks.example.com/x",
            },
        ),
    )  # bob is inactive


def test_blank_contact_fields_mean_none() -> None:
    data = document(people=[{"key": "a", "name": "A", "email": "", "phone": " ", "dealership": ""}])
    data["after_hours_recipients"] = ["sales_manager"]
    data["policies"]["critical"]["steps"].pop()
    data["policies"]["vip"]["steps"][0]["recipients"] = ["bdc"]
    person = EscalationSettings.model_validate(data).directory().people[0]
    assert person.addresses == {}
    assert person.dealership is None


def test_working_hours_per_dealership() -> None:
    settings = EscalationSettings.model_validate(DOCUMENT)
    north = settings.working_hours("north store", "America/Denver")  # names ignore case
    assert north.timezone == "America/Denver"
    assert north.to_spec()["weekly"] == {
        "mon": [],
        "tue": [],
        "wed": [],
        "thu": [],
        "fri": [],
        "sat": [],
        "sun": ["12:00-17:00"],
    }
    main = settings.working_hours("Main Store", "UTC")
    assert main.holidays == frozenset({date(2026, 12, 25)})
    assert main.to_spec()["weekly"] == settings.hours.default.weekly
    with pytest.raises(CalendarError):
        settings.working_hours("Main Store", "Mars/Olympus")


def test_working_hours_are_stored_in_canonical_form() -> None:
    hours = {"default": {"weekly": {"tue": ["13:00-17:00", "9:00-12:00"]}, "holidays": []}}
    weekly = EscalationSettings.model_validate({"working_hours": hours}).hours.default.weekly
    assert weekly["tue"] == ["09:00-12:00", "13:00-17:00"]
    assert weekly["mon"] == weekly["sun"] == []


# Plans

_key = st.text(min_size=1, max_size=12).filter(lambda key: key == key.strip())
_refs = st.one_of(
    st.just(RecipientRef("rep")),
    st.sampled_from(Role).map(lambda role: RecipientRef("role", role.value)),
    _key.map(lambda key: RecipientRef("person", key)),
)
_minutes = st.floats(min_value=0, max_value=1e7, allow_nan=False)
_steps = st.builds(
    Step,
    _minutes,
    st.lists(_refs, min_size=1, max_size=3).map(tuple),
    st.lists(st.sampled_from(Channel), min_size=1, max_size=5).map(tuple),
)
_plans = st.builds(
    Plan,
    level=st.sampled_from(Level),
    policy=st.builds(
        Policy,
        st.text(max_size=12),
        st.lists(_steps, min_size=1, max_size=4).map(tuple),
        st.integers(0, 5),
        _minutes,
    ),
    why=st.text(),
    after_hours=st.sampled_from(["hold", "route"]),
    after_hours_recipients=st.lists(_refs, max_size=3).map(tuple),
    after_hours_channels=st.lists(st.sampled_from(Channel), max_size=3).map(tuple),
    fallback_recipients=st.lists(_refs, max_size=3).map(tuple),
    fallback_channels=st.lists(st.sampled_from(Channel), max_size=3).map(tuple),
    claim_timeout_minutes=_minutes,
    settings_version=st.integers(0, 2**40),
)


@given(_plans)
def test_plan_round_trip(plan: Plan) -> None:
    stored = json.loads(json.dumps(plan_to_json(plan)))
    assert plan_from_json(stored) == plan


def test_plan_json_shape() -> None:
    plan = Plan(Level.HIGH, Rules().policies["high"], "level high", settings_version=3)
    data = plan_to_json(plan)
    assert data["level"] == "high"
    assert data["policy"]["name"] == "high"
    assert data["policy"]["steps"][1] == {
        "delay_minutes": 15.0,
        "recipients": ["sales_manager"],
        "channels": ["email", "sms"],
    }
    with pytest.raises(ValidationError, match="surprise"):
        plan_from_json(data | {"surprise": 1})


# Refusals, each at its path


def _with_policy(path: str, value: Any) -> dict[str, Any]:
    data = document()
    data["policies"]["vip"]["steps"][0][path] = value
    return data


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (document(thresholds={"critical": 0.3, "high": 0.2, "medium": 0.1}), "thresholds"),
        (document(thresholds={"critical": 0.1, "high": 0.2, "medium": 1.5}), "thresholds"),
        (_with_policy("channels", []), "policies.vip.steps.0.channels"),
        (_with_policy("channels", ["sms", "fax"]), "policies.vip.steps.0.channels.1"),
        (_with_policy("recipients", []), "policies.vip.steps.0.recipients"),
        (_with_policy("recipients", ["rep", "boss"]), "policies.vip.steps.0.recipients.1"),
        (_with_policy("delay_minutes", -1), "policies.vip.steps.0.delay_minutes"),
        (_with_policy("delay_minutes", float("nan")), "policies.vip.steps.0.delay_minutes"),
        (_with_policy("delay", 5), "policies.vip.steps.0.delay"),
        (document(policies={"vip": {"steps": []}}), "policies.vip.steps"),
        (document(polices={}), "polices"),
        (document(horizon_days=21), "horizon_days"),
        (document(claim_timeout_minutes=0), "claim_timeout_minutes"),
        (document(after_hours={"critical": "page"}), "after_hours.critical"),
        (document(fallback_channels=["pager"]), "fallback_channels.0"),
        (
            document(
                routes=[{"name": "r", "when": {"min_price": 9, "max_price": 1}, "policy": "vip"}]
            ),
            "routes.0.when",
        ),
        (
            document(working_hours={"default": {"weekly": {"mon": ["9-5"]}}}),
            "working_hours.default.weekly",
        ),
        (
            document(working_hours={"default": {"weekly": {"monday": WEEKDAY}}}),
            "working_hours.default.weekly",
        ),
        (
            document(
                working_hours={"dealerships": {"North": {"weekly": {"mon": ["20:00-09:00"]}}}}
            ),
            "working_hours.dealerships.North.weekly",
        ),
        (
            document(working_hours={"default": {"holidays": ["2026-02-30"]}}),
            "working_hours.default.holidays.0",
        ),
        (
            document(working_hours={"dealerships": {"North": {}, "NORTH": {}}}),
            "working_hours",
        ),
        (document(people=[{"key": "x", "name": "X", "email": "nope"}]), "people.0.email"),
        (
            document(people=[{"key": "x", "name": "X", "webhook": "http://hooks.example.com"}]),
            "people.0.webhook",
        ),
        (document(people=[{"key": "x", "name": "X", "roles": ["ceo"]}]), "people.0.roles.0"),
        (document(people=[{"key": "x", "name": "X", "pager": "1"}]), "people.0.pager"),
    ],
)
def test_refusal_names_the_path(data: dict[str, Any], path: str) -> None:
    paths, message = refusal(data)
    assert path in paths
    assert path in message


def test_unknown_person_key() -> None:
    data = document()
    data["people"] = [p for p in data["people"] if p["key"] != "jane"]
    paths, message = refusal(data)
    assert paths == {
        "policies.critical.steps.1.recipients.0",
        "after_hours_recipients.0",
    }
    assert "no person with key 'jane' in people" in message


def test_duplicate_person_key() -> None:
    data = document()
    data["people"].append({"key": "bob", "name": "Another Bob"})
    assert refusal(data)[0] == {"people.2.key"}


def test_routes_and_levels_must_name_existing_policies() -> None:
    data = document()
    data["level_policies"]["low"] = "gone"
    data["routes"].append({"name": "x", "policy": "missing"})
    data["routes"].append({"name": "x", "policy": "vip"})
    paths, message = refusal(data)
    assert paths == {"level_policies.low", "routes.1.policy", "routes.2.name"}
    assert "no policy 'missing'" in message


def test_documents_are_frozen() -> None:
    settings = EscalationSettings()
    with pytest.raises(ValidationError):
        settings.watch_hours = 1  # type: ignore[misc]


# Change lists


def test_no_changes() -> None:
    settings = EscalationSettings.model_validate(DOCUMENT)
    assert settings_changes(settings, EscalationSettings.model_validate(DOCUMENT)) == []


def test_changes_name_paths_with_old_and_new_values() -> None:
    old = EscalationSettings.model_validate(DOCUMENT)
    data = document(thresholds={"critical": 0.1, "high": 0.2, "medium": 0.35}, horizon_days=30)
    data["policies"]["gold"] = data["policies"].pop("vip")
    data["routes"] = []
    data["policies"]["critical"]["steps"][0]["channels"] = ["sms"]
    data["policies"]["critical"]["steps"].append(
        {"delay_minutes": 30, "recipients": ["general_manager"], "channels": ["email"]}
    )
    data["working_hours"]["default"]["weekly"]["sat"] = []
    jane = data["people"][0]
    jane |= {"phone": "+15559999999", "email": None, "webhook": "https://hooks.example.com/y"}
    jane["name"] = "Jane Doe"
    data["people"].append({"key": "carl", "name": "Carl", "email": "carl@example.com"})
    changes = settings_changes(old, EscalationSettings.model_validate(data))
    assert changes == [
        "thresholds.critical: 0.12 -> 0.1",
        "horizon_days: 14 -> 30",
        'policies.critical.steps.0.channels: ["sms", "email", "in_app"] -> ["sms"]',
        "policies.critical.steps.2: added",
        "policies.vip: removed",
        "policies.gold: added",
        "routes[high-value]: removed",
        'working_hours.default.weekly.sat: ["10:00-16:00"] -> []',
        "people[jane].name: Jane Smith -> Jane Doe",
        "people[jane].email: changed",
        "people[jane].phone: changed",
        "people[jane].webhook: changed",
        "people[carl]: added",
    ]
    text = "\n".join(changes)
    for secret in ("555", "example.com", "hooks"):
        assert secret not in text


def test_thresholds_switched_to_the_model() -> None:
    old = EscalationSettings()
    changes = settings_changes(old, EscalationSettings(thresholds=None))
    assert changes == ['thresholds: {"critical": 0.1, "high": 0.2, "medium": 0.3} -> null']
