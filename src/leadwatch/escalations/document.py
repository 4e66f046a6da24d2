"""The Lead Escalation settings document: what a manager edits, versions, exports and imports.

The core holds the rules as frozen values (`core.policy`); this module is the JSON shape
around them. Every key is optional so ``{}`` means the core defaults (read from the core, so
the two cannot drift), and unknown keys are errors so a typo in an imported file fails with its
path instead of silently changing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Annotated, Any, Literal, Self, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from leadwatch.core.calendar import WEEKDAYS, WorkingHours
from leadwatch.core.directory import Directory, Person
from leadwatch.core.policy import (
    AfterHoursMode,
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
from leadwatch.notifications.templates import CUSTOM_NAME, TemplateSet

_CORE, _THRESHOLDS = Rules(), Thresholds()
_OPEN = dict.fromkeys(WEEKDAYS[:5], "09:00-20:00") | {"sat": "09:00-18:00"}
_ADDRESSES = {
    "email": Channel.EMAIL,
    "phone": Channel.SMS,
    "slack": Channel.SLACK,
    "webhook": Channel.WEBHOOK,
}
_PRIVATE = frozenset(_ADDRESSES)  # personal data and secrets: never shown in a change list


def _str(max_length: int, pattern: str | None = None) -> StringConstraints:
    return StringConstraints(
        strip_whitespace=True, min_length=1, max_length=max_length, pattern=pattern
    )


Name = Annotated[str, _str(100)]
Text = Annotated[str, _str(200)]
Phone = Annotated[str, _str(50, r"^\+?[0-9 ().-]{4,}$")]
Slack = Annotated[str, _str(100, r"^\S+$")]
Webhook = Annotated[str, _str(2000, r"^https://\S+$")]  # https only: it carries lead details


def _recipient_text(ref: RecipientRef) -> str:
    """The short form a manager writes ('rep', 'sales_manager', 'person:jane'), so that a
    document converted from core values reads like one typed by hand."""
    return str(ref.name) if ref.kind == "role" else str(ref)


Recipient = Annotated[str, AfterValidator(lambda text: _recipient_text(RecipientRef.parse(text)))]


def _to_core(doc: object, names: Iterable[str]) -> dict[str, Any]:
    """Document and core values share field names; only recipients and channels change form
    (text to RecipientRef, lists to tuples)."""
    out = {name: getattr(doc, name) for name in names}
    for name, value in out.items():
        if name.endswith("recipients"):
            out[name] = tuple(RecipientRef.parse(text) for text in value)
        elif name.endswith("channels"):
            out[name] = tuple(value)
    return out


def _to_doc(value: object, names: Iterable[str]) -> dict[str, Any]:
    out = {name: getattr(value, name) for name in names}
    for name, field in out.items():
        if name.endswith("recipients"):
            out[name] = [_recipient_text(ref) for ref in field]
        elif name.endswith("channels"):
            out[name] = list(field)
    return out


class _Doc(BaseModel):
    # Frozen: a validated document cannot be edited into an invalid one behind the validators.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ThresholdsDoc(_Doc):
    critical: float = _THRESHOLDS.critical
    high: float = _THRESHOLDS.high
    medium: float = _THRESHOLDS.medium

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        self.core()  # the core's ValueError becomes a ValidationError at "thresholds"
        return self

    def core(self) -> Thresholds:
        return Thresholds(**_to_core(self, type(self).model_fields))


class StepDoc(_Doc):
    delay_minutes: float = Field(default=0.0, ge=0)
    recipients: list[Recipient] = Field(min_length=1, max_length=50)
    channels: list[Channel] = Field(min_length=1, max_length=len(Channel))

    def core(self) -> Step:
        return Step(**_to_core(self, type(self).model_fields))


class PolicyDoc(_Doc):
    steps: list[StepDoc] = Field(min_length=1, max_length=50)
    repeat: int = Field(default=0, ge=0)  # the defaults of core Policy
    repeat_after_minutes: float = Field(default=60.0, ge=0)

    def core(self, name: str) -> Policy:
        steps = tuple(step.core() for step in self.steps)
        return Policy(name, steps, self.repeat, self.repeat_after_minutes)

    @classmethod
    def of(cls, policy: Policy) -> PolicyDoc:
        steps = [_to_doc(step, StepDoc.model_fields) for step in policy.steps]
        return cls.model_validate(
            _to_doc(policy, ("repeat", "repeat_after_minutes")) | {"steps": steps}
        )


class ConditionDoc(_Doc):
    levels: list[Level] = Field(default_factory=list)
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    sources: list[Text] = Field(default_factory=list)
    makes: list[Text] = Field(default_factory=list)
    models: list[Text] = Field(default_factory=list)
    reps: list[Text] = Field(default_factory=list)
    dealerships: list[Text] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self.core()
        return self

    def core(self) -> Condition:
        values = _to_core(self, type(self).model_fields)
        sets = {name: frozenset(value) for name, value in values.items() if isinstance(value, list)}
        return Condition(**(values | sets))

    @classmethod
    def of(cls, when: Condition) -> ConditionDoc:
        values = _to_doc(when, cls.model_fields)
        lists = {
            name: sorted(value) for name, value in values.items() if isinstance(value, frozenset)
        }
        return cls.model_validate(
            values | lists | {"levels": [lv for lv in Level if lv in when.levels]}
        )


class RouteDoc(_Doc):
    name: Name
    when: ConditionDoc = Field(default_factory=ConditionDoc)
    policy: Name


class LevelPolicies(_Doc):
    critical: Name = _CORE.level_policies[Level.CRITICAL]
    high: Name = _CORE.level_policies[Level.HIGH]
    medium: Name = _CORE.level_policies[Level.MEDIUM]
    low: Name = _CORE.level_policies[Level.LOW]


class AfterHours(_Doc):
    critical: AfterHoursMode = _CORE.after_hours[Level.CRITICAL]
    high: AfterHoursMode = _CORE.after_hours[Level.HIGH]
    medium: AfterHoursMode = _CORE.after_hours[Level.MEDIUM]
    low: AfterHoursMode = _CORE.after_hours[Level.LOW]


class HoursDoc(_Doc):
    weekly: dict[str, list[str]] = Field(
        default_factory=lambda: {day: [_OPEN[day]] if day in _OPEN else [] for day in WEEKDAYS}
    )
    holidays: list[date] = Field(default_factory=list)

    @field_validator("weekly")
    @classmethod
    def _canonical(cls, weekly: dict[str, list[str]]) -> dict[str, list[str]]:
        """Checked in UTC (the zone comes from the dealership record, not the document) and
        kept as the calendar writes it, all seven days listed, so exports compare cleanly."""
        return cast(dict[str, list[str]], WorkingHours.from_spec("UTC", weekly).to_spec()["weekly"])

    @field_validator("holidays")
    @classmethod
    def _sorted(cls, holidays: list[date]) -> list[date]:
        return sorted(set(holidays))


class WorkingHoursConfig(_Doc):
    default: HoursDoc = Field(default_factory=HoursDoc)
    dealerships: dict[Name, HoursDoc] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        folded = [name.casefold() for name in self.dealerships]
        twice = sorted({name for name in self.dealerships if folded.count(name.casefold()) > 1})
        if twice:  # looked up regardless of case, so one would hide the other
            raise ValueError(f"dealerships listed twice (names ignore case): {', '.join(twice)}")
        return self

    def hours(self, dealership: str, timezone: str) -> WorkingHours:
        wanted = dealership.casefold()
        found = (doc for name, doc in self.dealerships.items() if name.casefold() == wanted)
        doc = next(found, self.default)
        return WorkingHours.from_spec(timezone, doc.weekly, doc.holidays)


class PersonDoc(_Doc):
    key: Name
    name: Text
    roles: list[Role] = Field(default_factory=list)
    dealership: Text | None = None  # None: serves every store
    email: EmailStr | None = None
    phone: Phone | None = None
    slack: Slack | None = None
    webhook: Webhook | None = None
    active: bool = True

    @field_validator("dealership", *_ADDRESSES, mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        """Forms send an emptied field as ''; that means "no address", not a bad one."""
        return None if isinstance(value, str) and not value.strip() else value

    def core(self) -> Person:
        addresses = {channel: getattr(self, name) for name, channel in _ADDRESSES.items()}
        return Person(
            **_to_core(self, ("key", "name", "dealership", "active")),
            roles=frozenset(role.value for role in self.roles),
            addresses={channel: value for channel, value in addresses.items() if value},
        )

    @classmethod
    def of(cls, person: Person) -> PersonDoc:
        addresses = {name: person.addresses.get(channel) for name, channel in _ADDRESSES.items()}
        values = _to_doc(person, ("key", "name", "dealership", "active"))
        return cls.model_validate(values | addresses | {"roles": sorted(person.roles)})


# Rules fields the document holds as they are (recipients and channels aside, see _to_core).
_SIMPLE = (
    *("horizon_days", "escalate_low", "claim_timeout_minutes", "watch_hours"),
    *("after_hours_recipients", "after_hours_channels", "fallback_recipients", "fallback_channels"),
)
_DEFAULT = _to_doc(_CORE, _SIMPLE)  # pydantic copies list defaults, so sharing them is safe


class EscalationSettings(_Doc):
    """One version of the Lead Escalation settings (Notification Settings > Lead Escalation)."""

    # "working_hours" is also a method, hence the alias; dumps still write the JSON key.
    model_config = ConfigDict(serialize_by_alias=True)

    thresholds: ThresholdsDoc | None = Field(default_factory=ThresholdsDoc)  # None: the model's
    horizon_days: Literal[14, 30] = _DEFAULT["horizon_days"]
    escalate_low: bool = _DEFAULT["escalate_low"]
    policies: dict[Name, PolicyDoc] = Field(
        default_factory=lambda: {name: PolicyDoc.of(p) for name, p in _CORE.policies.items()}
    )
    level_policies: LevelPolicies = Field(default_factory=LevelPolicies)
    routes: list[RouteDoc] = Field(default_factory=list, max_length=200)
    after_hours: AfterHours = Field(default_factory=AfterHours)
    after_hours_recipients: list[Recipient] = _DEFAULT["after_hours_recipients"]
    after_hours_channels: list[Channel] = _DEFAULT["after_hours_channels"]
    fallback_recipients: list[Recipient] = _DEFAULT["fallback_recipients"]
    fallback_channels: list[Channel] = _DEFAULT["fallback_channels"]
    claim_timeout_minutes: float = Field(default=_DEFAULT["claim_timeout_minutes"], gt=0)
    watch_hours: float = Field(default=_DEFAULT["watch_hours"], gt=0)
    hours: WorkingHoursConfig = Field(default_factory=WorkingHoursConfig, alias="working_hours")
    people: list[PersonDoc] = Field(default_factory=list, max_length=5000)
    # Custom message templates by file name (see notifications.templates), versioned here so
    # every process sends the same words and each change is in the history.
    templates: dict[str, Annotated[str, StringConstraints(max_length=20_000)]] = Field(
        default_factory=dict, max_length=100
    )

    @field_validator("templates")
    @classmethod
    def _templates_work(cls, templates: dict[str, str]) -> dict[str, str]:
        """A template is refused when it would not render for a sample lead: checked here,
        it never reaches the fallback to the default at send time."""
        problems: list[str] = []
        checker = TemplateSet()
        for name, source in templates.items():
            if not CUSTOM_NAME.fullmatch(name) or (
                name.endswith(".html.j2") and not name.startswith("email.")
            ):
                problems.append(
                    f"{name!r} is not a template name (use CHANNEL[.LEVEL].PART.j2 with PART "
                    "subject, text or html; html only for email)"
                )
                continue
            problems += [f"{name}: {problem}" for problem in checker.check(source)]
        if problems:
            raise ValueError("; ".join(problems))
        return dict(sorted(templates.items()))

    @model_validator(mode="after")
    def _references(self) -> Self:
        """Cross-references, each reported at the path that names it, all in one error."""
        errors: list[InitErrorDetails] = []

        def bad(loc: tuple[str | int, ...], kind: str, message: str, value: str) -> None:
            error = PydanticCustomError(kind, message, {"value": value})
            errors.append({"type": error, "loc": loc, "input": value})

        keys: set[str] = set()
        for i, person in enumerate(self.people):
            if person.key in keys:
                bad(
                    ("people", i, "key"), "duplicate_key", "key '{value}' is used twice", person.key
                )
            keys.add(person.key)
        for loc, text in self._recipients():
            ref = RecipientRef.parse(text)
            if ref.kind == "person" and ref.name not in keys:
                bad(loc, "unknown_person", "no person with key '{value}' in people", ref.name)
        for level in Level:
            name = getattr(self.level_policies, level.value)
            if name not in self.policies:
                bad(("level_policies", level.value), "unknown_policy", "no policy '{value}'", name)
        names: set[str] = set()
        for i, route in enumerate(self.routes):
            if route.policy not in self.policies:
                bad(("routes", i, "policy"), "unknown_policy", "no policy '{value}'", route.policy)
            if route.name in names:
                bad(("routes", i, "name"), "duplicate_name", "route '{value}' twice", route.name)
            names.add(route.name)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        self.rules()  # anything else the core refuses still comes out as a ValidationError
        return self

    def _recipients(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for name, policy in self.policies.items():
            for s, step in enumerate(policy.steps):
                for r, text in enumerate(step.recipients):
                    yield ("policies", name, "steps", s, "recipients", r), text
        for field in ("after_hours_recipients", "fallback_recipients"):
            for r, text in enumerate(getattr(self, field)):
                yield (field, r), text

    def rules(self) -> Rules:
        return Rules(
            **_to_core(self, _SIMPLE),
            thresholds=self.thresholds.core() if self.thresholds else None,
            policies={name: doc.core(name) for name, doc in self.policies.items()},
            level_policies={level: getattr(self.level_policies, level) for level in Level},
            routes=tuple(Route(r.name, r.when.core(), r.policy) for r in self.routes),
            after_hours={level: getattr(self.after_hours, level) for level in Level},
        )

    def directory(self) -> Directory:
        return Directory(person.core() for person in self.people)

    def working_hours(self, dealership: str, timezone: str) -> WorkingHours:
        """Raises CalendarError for an unknown ``timezone``: a fault of the dealership record,
        which holds it, not of this document."""
        return self.hours.hours(dealership, timezone)

    @classmethod
    def from_rules(
        cls,
        rules: Rules,
        *,
        people: Iterable[Person] = (),
        working_hours: WorkingHoursConfig | None = None,
    ) -> EscalationSettings:
        """Validated like an imported file, so ``person:KEY`` recipients must be in ``people``."""
        t = rules.thresholds
        routes = [
            {"name": route.name, "when": ConditionDoc.of(route.when), "policy": route.policy}
            for route in rules.routes
        ]
        return cls.model_validate(
            _to_doc(rules, _SIMPLE)
            | {
                "thresholds": None if t is None else _to_doc(t, ThresholdsDoc.model_fields),
                "policies": {name: PolicyDoc.of(p) for name, p in rules.policies.items()},
                "level_policies": {level.value: p for level, p in rules.level_policies.items()},
                "routes": routes,
                "after_hours": {level.value: mode for level, mode in rules.after_hours.items()},
                "working_hours": working_hours or WorkingHoursConfig(),
                "people": [PersonDoc.of(person) for person in people],
            }
        )


class _PlanPolicy(PolicyDoc):
    name: str


class _PlanDoc(_Doc):
    """A Plan as stored with its escalation. No defaults: a stored plan must not come to mean
    something else when a later release changes one."""

    level: Level
    policy: _PlanPolicy
    why: str
    after_hours: AfterHoursMode
    after_hours_recipients: list[Recipient]
    after_hours_channels: list[Channel]
    fallback_recipients: list[Recipient]
    fallback_channels: list[Channel]
    claim_timeout_minutes: float
    settings_version: int


_PLAN_SIMPLE = tuple(name for name in _PlanDoc.model_fields if name != "policy")


def plan_to_json(plan: Plan) -> dict[str, Any]:
    policy = {"name": plan.policy.name} | PolicyDoc.of(plan.policy).model_dump()
    doc = _PlanDoc.model_validate(_to_doc(plan, _PLAN_SIMPLE) | {"policy": policy})
    return doc.model_dump(mode="json")


def plan_from_json(data: Mapping[str, Any]) -> Plan:
    doc = _PlanDoc.model_validate(data)
    return Plan(**_to_core(doc, _PLAN_SIMPLE), policy=doc.policy.core(doc.policy.name))


class _Keyed(dict[str, Any]):
    """List items addressed by their key (``people[jane]``), not by position, so removing one
    entry does not read as every later entry changing."""


def _tree(settings: EscalationSettings) -> dict[str, Any]:
    data = settings.model_dump(mode="json")
    data["people"] = _Keyed({person["key"]: person for person in data["people"]})
    data["routes"] = _Keyed({route["name"]: route for route in data["routes"]})
    data["templates"] = _Keyed(data["templates"])
    return data


def settings_changes(old: EscalationSettings, new: EscalationSettings) -> list[str]:
    """What a save changed, for the version history. Contact details are personal data (and
    webhook URLs secrets) that the history must not copy: those only say "changed"."""
    out: list[str] = []
    _diff("", _tree(old), _tree(new), out)
    return out


def _diff(path: str, old: Any, new: Any, out: list[str]) -> None:
    if old == new:
        return
    lists = isinstance(old, list) and isinstance(new, list)
    if lists and any(isinstance(item, dict) for item in old + new):  # steps: diff by position
        old, new = ({str(i): x for i, x in enumerate(items)} for items in (old, new))
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(key for key in new if key not in old)]:
            where = (
                f"{path}[{key}]" if isinstance(old, _Keyed) else f"{path}.{key}" if path else key
            )
            if key not in new:
                out.append(f"{where}: removed")
            elif key not in old:
                out.append(f"{where}: added")
            else:
                _diff(where, old[key], new[key], out)
    elif path.startswith("people[") and path.rpartition(".")[2] in _PRIVATE:
        out.append(f"{path}: changed")
    elif path.startswith("templates["):  # whole texts would swamp the history
        out.append(f"{path}: changed")
    else:
        out.append(f"{path}: {_show(old)} -> {_show(new)}")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
