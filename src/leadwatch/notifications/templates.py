"""Escalation messages as Jinja2 templates: shipped defaults, custom overrides, previews.

Managers reword alerts without a release: on the settings page (the templates are then part of
the versioned escalation settings, shared by every process) or by dropping files in
LEADWATCH_HOME/templates. Either kind is untrusted and may be wrong, which shapes everything
here:

* Every template runs in an immutable sandbox with StrictUndefined, so a typo fails loudly
  instead of sending "waiting  for first contact". Defaults are strict too: the tests render
  every one, so strictness only catches our own bugs, and a broken default raises.
* A custom template that fails in any way (syntax, undefined name, sandbox refusal, empty
  output) is replaced by the shipped default and logged: a bad word must never stop an alert
  about a customer who is waiting. The log redacts the lead, since error text can quote it.

Lookup for (channel, level, part): custom ``{channel}.{level}.{part}.j2``, custom
``{channel}.{part}.j2`` (custom: from the settings first, then the folder), default
``{channel}.{level}.{part}.j2``, default ``{channel}.{part}.j2``, default ``default.{part}.j2``.
There is no ``default.html.j2``: only email gets HTML.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import BaseLoader, ChoiceLoader, DictLoader, FileSystemLoader, StrictUndefined, Template
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from leadwatch.escalations.messages import LeadCard

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).parent / "templates"
PARTS = ("subject", "text", "html")
CHANNELS = ("email", "sms", "slack", "webhook", "in_app")
LEVELS = ("critical", "high", "medium", "low")
# The names a custom template may have (``email.critical.subject.j2``, ``sms.text.j2``...).
CUSTOM_NAME = re.compile(
    rf"^({'|'.join(CHANNELS)})(\.({'|'.join(LEVELS)}))?\.(subject|text|html)\.j2$"
)
SUBJECT_MAX = 300
SMS_MAX = 320  # two SMS segments: the link has to survive, the rest is trimmed to fit
OUTPUT_MAX = 100_000  # the sandbox stops escapes, not a loop that prints forever
_WORD = re.compile(r"[a-z][a-z0-9_]*")
_PERSONAL = ("customer", "rep", "recipient_name", "vehicle", "dealership", "claim_url")


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    fallbacks: tuple[str, ...]  # custom templates that failed and were replaced by defaults


class TemplateSet:
    """The defaults shipped in this package, overlaid by a folder of custom templates.

    Environments are built once and cache compiled templates; Jinja's auto_reload notices a
    custom file edited on disk, so a manager's change applies to the next message."""

    def __init__(
        self, custom_dir: Path | None = None, overrides: Mapping[str, str] | None = None
    ) -> None:
        """``overrides``: custom templates by name, from the settings in force; they come
        before the files of ``custom_dir``."""
        self.custom_dir = custom_dir
        self.overrides = dict(overrides or {})
        self._default_dir = DEFAULT_DIR
        # Custom templates may include or extend the shipped ones (a copied default does).
        defaults = FileSystemLoader(self._default_dir)
        # The shipped files never change while running: looked up once, never re-checked.
        self._default = _environment(defaults, auto_reload=False)
        self._default_names = frozenset(path.name for path in self._default_dir.glob("*.j2"))
        self._custom = (
            _environment(ChoiceLoader([FileSystemLoader(custom_dir), defaults]))
            if custom_dir
            else None
        )
        self._settings = (
            _environment(ChoiceLoader([DictLoader(self.overrides), defaults]))
            if self.overrides
            else None
        )
        self._listing: tuple[int, frozenset[str]] = (-1, frozenset())

    def with_overrides(self, overrides: Mapping[str, str]) -> TemplateSet:
        return TemplateSet(self.custom_dir, overrides)

    def source(self, name: str) -> str | None:
        """The text a name resolves to now: the settings', a custom file's or the default."""
        if name in self.overrides:
            return self.overrides[name]
        for folder in (self.custom_dir, self._default_dir):
            if folder is not None and (folder / name).is_file():
                return (folder / name).read_text(encoding="utf-8")
        return None

    def render(self, *, channel: str, level: str, context: Mapping[str, Any]) -> Rendered:
        for word in (channel, level):
            if not _WORD.fullmatch(word):  # names become file names: keep them plain
                raise ValueError(f"not a channel or level name: {word!r}")
        fallbacks: list[str] = []
        files = self._custom_files()
        parts = {
            part: self._part(channel, level, part, context, fallbacks, files) for part in PARTS
        }
        subject = " ".join((parts["subject"] or "").split())
        if len(subject) > SUBJECT_MAX:
            subject = subject[: SUBJECT_MAX - 1].rstrip() + "…"
        text = parts["text"] or ""
        if channel == "sms":
            text = _fit_sms(text, context.get("claim_url"))
        return Rendered(subject, text, parts["html"], tuple(fallbacks))

    def names(self) -> dict[str, str]:
        """Every template name a message can use, and whether a custom file overrides it."""
        found = {path.name: "default" for path in self._default_dir.glob("*.j2")}
        if self.custom_dir is not None and self.custom_dir.is_dir():
            found.update({path.name: "custom" for path in self.custom_dir.glob("*.j2")})
        found.update(dict.fromkeys(self.overrides, "settings"))
        return dict(sorted(found.items()))

    def check(self, source: str) -> list[str]:
        """What a manager should fix before saving a template; empty when it is fine.

        Syntax first, then a trial render with the sample lead, which is what surfaces
        undefined names and sandbox refusals (those only happen when a template runs)."""
        env = self._custom or self._default
        try:
            template = env.from_string(source)
        except TemplateSyntaxError as exc:
            return [f"line {exc.lineno}: {exc.message}"]
        try:
            output = _run(template, sample_context())
        except Exception as exc:  # any failure is the answer the settings page needs
            return [_describe(exc)]
        return [] if output else ["the template renders an empty message"]

    def _part(
        self,
        channel: str,
        level: str,
        part: str,
        context: Mapping[str, Any],
        fallbacks: list[str],
        files: frozenset[str],
    ) -> str | None:
        """Custom first. A broken custom template goes straight to the defaults, not to the next
        custom name: the manager made them differ on purpose, and the default is the only text
        known to work."""
        names = [f"{channel}.{level}.{part}.j2", f"{channel}.{part}.j2"]
        for name in names:
            custom = self._custom_for(name, files)
            if custom is None:
                continue
            try:
                output = _run(custom.get_template(name), context)
            except Exception as exc:  # whatever went wrong, the message must still go out
                problem = _describe(exc)
            else:
                if output:
                    return output
                problem = "rendered an empty message"
            log.warning(
                "custom template %s failed, using the default instead: %s",
                name,
                _redact(problem, context),
            )
            fallbacks.append(name)
            break
        for name in [*names, f"default.{part}.j2"]:
            if name in self._default_names:  # a broken default is our bug: it raises
                return _run(self._default.get_template(name), context)
        if part == "html":
            return None
        raise LookupError(f"no default template for {channel} {part}")

    def _custom_for(self, name: str, files: frozenset[str]) -> ImmutableSandboxedEnvironment | None:
        if self._settings is not None and name in self.overrides:
            return self._settings
        if self._custom is not None and name in files:
            return self._custom
        return None

    def _custom_files(self) -> frozenset[str]:
        """The custom folder's file names, listed again only when the folder changes (a file
        added or removed changes its modification time): one stat per message, not one
        per template name tried. An edited file is Jinja's auto_reload's business."""
        folder = self.custom_dir
        if self._custom is None or folder is None:
            return frozenset()
        try:
            stamp = folder.stat().st_mtime_ns
        except OSError:
            return frozenset()
        listed_at, names = self._listing
        if stamp != listed_at:
            names = frozenset(path.name for path in folder.iterdir() if path.is_file())
            self._listing = (stamp, names)
        return names


def message_context(
    card: LeadCard, *, level: str, claim_url: str | None, now: datetime, recipient_name: str
) -> dict[str, Any]:
    """Everything a template may use, already worded, so templates hold layout, not logic,
    and no custom template can get a percentage or a time zone wrong."""
    probability = card.probability
    pct = f"{probability:.0%}" if probability is not None else "not scored"
    chance = (
        f"{pct} chance of a sale in {card.horizon_days} days" if probability is not None else pct
    )
    hours = max(0.0, (now - card.created_at).total_seconds() / 3600)
    return {
        "lead_id": card.lead_id,
        "customer": card.customer or f"lead #{card.lead_id}",
        "vehicle": card.vehicle,
        "dealership": card.dealership,
        "source": card.source or "unknown source",
        "rep": card.rep,
        "created_local": card.created_at.astimezone(ZoneInfo(card.timezone)).strftime("%a %H:%M"),
        "waited": _waited(hours),
        "probability": probability,
        "probability_pct": pct,
        "chance": chance,
        "horizon_days": card.horizon_days,
        "factors": list(card.factors),
        "level": level,
        "level_upper": level.upper(),
        "claim_url": claim_url,
        "recipient_name": recipient_name,
    }


_SAMPLE_PROBABILITY = {"critical": 0.083, "high": 0.16, "medium": 0.27, "low": 0.42}


def sample_context(level: str = "critical") -> dict[str, Any]:
    """A believable lead with every field filled, so a preview shows every line a real
    message can have. Fixed times keep previews and tests stable."""
    created = datetime(2025, 6, 3, 14, 12, tzinfo=UTC)
    card = LeadCard(
        lead_id=10482,
        dealership="Riverside Motors",
        timezone="America/Chicago",
        created_at=created,
        customer="Maria Gonzalez",
        vehicle="2024 Toyota RAV4 XLE",
        source="AutoTrader",
        rep="Dana Reyes",
        probability=_SAMPLE_PROBABILITY.get(level, 0.083),
        horizon_days=14,
        factors=(
            "not contacted yet after 47 min: -9.5 pts",
            "lead source AutoTrader: -3 pts",
            "created at 09:00: +1.5 pts",
        ),
    )
    return message_context(
        card,
        level=level,
        claim_url="https://leadwatch.example.com/claim/sample-token",
        now=created + timedelta(minutes=47),
        recipient_name="Sam Patel",
    )


def mrkdwn(value: object) -> str:
    """Slack treats &, < and > as markup: a customer called "<!channel>" must stay text."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _environment(loader: BaseLoader, *, auto_reload: bool = True) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=auto_reload,
    )
    env.filters["mrkdwn"] = mrkdwn
    return env


def _run(template: Template, context: Mapping[str, Any]) -> str:
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(dict(context)):
        size += len(chunk)
        if size > OUTPUT_MAX:
            raise SecurityError(f"output longer than {OUTPUT_MAX} characters")
        chunks.append(chunk)
    return "".join(chunks).strip()


def _fit_sms(text: str, claim_url: object) -> str:
    """SMS is billed per segment and the link is the point: keep it, trim the rest."""
    link = claim_url if isinstance(claim_url, str) else ""
    if link and link not in text:
        text = f"{text}\n{link}".strip()
    if len(text) <= SMS_MAX:
        return text
    if not link:
        return text[: SMS_MAX - 1].rstrip() + "…"
    body = " ".join(text.replace(link, " ").split())
    room = SMS_MAX - len(link) - 2
    return f"{body[:room].rstrip()}…\n{link}" if room > 0 else link


def _describe(exc: Exception) -> str:
    where = f"line {exc.lineno}: " if isinstance(exc, TemplateSyntaxError) else ""
    return f"{type(exc).__name__}: {where}{exc}"


def _redact(message: str, context: Mapping[str, Any]) -> str:
    """Error text can quote values (``dict object has no element 'Maria'``): the log gets the
    shape of the error, never the person. Whole words only, so "Al" leaves "line 1" alone."""
    words: set[str] = set()
    for key in _PERSONAL:
        value = context.get(key)
        if isinstance(value, str):
            words.update(w for w in (value, *value.split()) if len(w) >= 2)
    for word in sorted(words, key=len, reverse=True):
        pattern = rf"(?<!\w){re.escape(word)}(?!\w)"
        message = re.sub(pattern, "[redacted]", message, flags=re.IGNORECASE)
    return message[:500]


def _waited(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"
