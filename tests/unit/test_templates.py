"""Escalation message templates: defaults, overrides, fallbacks and the context they see."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadwatch.core.policy import Channel, Level
from leadwatch.escalations.messages import LeadCard
from leadwatch.notifications import templates
from leadwatch.notifications.templates import (
    SMS_MAX,
    TemplateSet,
    message_context,
    sample_context,
)

URL = "https://leadwatch.example.com/claim/sample-token"
CREATED = datetime(2025, 6, 3, 14, 12, tzinfo=UTC)  # 09:12 in Chicago, a Tuesday
CARD = LeadCard(
    lead_id=7,
    dealership="Riverside Motors",
    timezone="America/Chicago",
    created_at=CREATED,
    customer="Maria Gonzalez",
    vehicle="2024 Toyota RAV4 XLE",
    source="AutoTrader",
    rep="Dana Reyes",
    probability=0.083,
    horizon_days=14,
    factors=("one", "two", "three", "four"),
)


def context(**changes: object) -> dict[str, object]:
    ctx = message_context(
        CARD, level="critical", claim_url=URL, now=CREATED, recipient_name="Sam Patel"
    )
    ctx.update(changes)
    return ctx


def write(folder: Path, name: str, source: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(source, encoding="utf-8")


@pytest.mark.parametrize("channel", [c.value for c in Channel])
@pytest.mark.parametrize("level", [lv.value for lv in Level])
def test_every_default_renders_the_key_facts_and_the_claim_link(channel: str, level: str) -> None:
    rendered = TemplateSet().render(channel=channel, level=level, context=sample_context(level))
    assert rendered.fallbacks == ()
    assert rendered.subject == (
        f"[{level.upper()}] Maria Gonzalez waiting 47 min for first contact (2024 Toyota RAV4 XLE)"
    )
    for fact in ("Riverside Motors", "AutoTrader", "Tue 09:12", "Dana Reyes", URL):
        assert fact in rendered.text
    assert "%" in rendered.text  # the chance of a sale
    factor_shown = "not contacted yet after 47 min" in rendered.text
    assert factor_shown is (channel != "sms")  # factors everywhere but SMS
    assert (rendered.html is not None) is (channel == "email")
    assert "{{" not in rendered.text and "{%" not in rendered.text


@pytest.mark.parametrize(
    ("probability", "chance"), [(0.083, "8% chance of a sale in 14 days"), (None, "not scored")]
)
def test_the_plain_default_says_who_where_how_long_and_why(
    probability: float | None, chance: str
) -> None:
    card = replace(CARD, probability=probability)
    now = CREATED + timedelta(hours=3)
    ctx = message_context(card, level="high", claim_url=URL, now=now, recipient_name="Sam")
    rendered = TemplateSet().render(channel="webhook", level="high", context=ctx)
    assert rendered.subject == (
        "[HIGH] Maria Gonzalez waiting 3.0 h for first contact (2024 Toyota RAV4 XLE)"
    )
    assert rendered.text == (
        "Maria Gonzalez at Riverside Motors, from AutoTrader at Tue 09:12.\n"
        f"Nobody has contacted them yet: {chance}.\n"
        "Assigned rep: Dana Reyes.\n"
        "Why: one; two; three.\n"
        f"Claim it: {URL}"
    )


def test_the_html_email_has_a_claim_button_and_every_fact() -> None:
    html = TemplateSet().render(channel="email", level="critical", context=sample_context()).html
    assert html is not None
    assert f'<a href="{URL}"' in html and "Claim this lead" in html
    for fact in ("Maria Gonzalez", "Riverside Motors", "AutoTrader", "8%", "Dana Reyes"):
        assert fact in html
    assert "style=" in html  # inline styles: mail clients drop <style> blocks


def test_a_hostile_name_is_escaped_in_html_and_left_alone_in_text() -> None:
    name = "<script>alert('x')</script> & Co"
    rendered = TemplateSet().render(channel="email", level="high", context=context(customer=name))
    assert rendered.html is not None
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in rendered.html
    assert name in rendered.text and name in rendered.subject


def test_slack_text_escapes_markup_in_lead_values() -> None:
    rendered = TemplateSet().render(
        channel="slack", level="high", context=context(customer="<!channel> Bob & Sons")
    )
    assert "&lt;!channel&gt; Bob &amp; Sons" in rendered.text
    assert f"<{URL}|Claim this lead>" in rendered.text


def test_level_override_beats_channel_override_beats_default(tmp_path: Path) -> None:
    write(tmp_path, "email.subject.j2", "channel {{ customer }}")
    write(tmp_path, "email.critical.subject.j2", "level {{ customer }}")
    write(tmp_path, "email.text.j2", "custom body {{ claim_url }}")
    t = TemplateSet(tmp_path)
    critical = t.render(channel="email", level="critical", context=context())
    high = t.render(channel="email", level="high", context=context())
    sms = t.render(channel="sms", level="critical", context=context())
    assert critical.subject == "level Maria Gonzalez"
    assert high.subject == "channel Maria Gonzalez"
    assert critical.text == high.text == f"custom body {URL}"
    assert critical.html is not None and "Claim this lead" in critical.html  # still the default
    assert sms.subject.startswith("[CRITICAL] Maria Gonzalez")  # other channels untouched
    assert critical.fallbacks == high.fallbacks == ()
    names = t.names()
    assert names["email.critical.subject.j2"] == "custom" and names["email.text.j2"] == "custom"
    assert names["sms.text.j2"] == "default" and names["email.html.j2"] == "default"


def test_a_custom_file_added_or_removed_while_running_applies_to_the_next_message(
    tmp_path: Path,
) -> None:
    tmp_path.mkdir(exist_ok=True)
    t = TemplateSet(tmp_path)
    assert t.render(channel="email", level="high", context=context()).subject.startswith(
        "[CRITICAL]"
    )
    write(tmp_path, "email.subject.j2", "added {{ customer }}")
    assert t.render(channel="email", level="high", context=context()).subject == (
        "added Maria Gonzalez"
    )
    write(tmp_path, "email.subject.j2", "edited {{ customer }}")  # same name, new text
    assert t.render(channel="email", level="high", context=context()).subject == (
        "edited Maria Gonzalez"
    )
    (tmp_path / "email.subject.j2").unlink()
    assert t.render(channel="email", level="high", context=context()).subject.startswith(
        "[CRITICAL]"
    )


def test_a_level_specific_default_wins_over_the_channel_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = tmp_path / "defaults"
    shutil.copytree(templates.DEFAULT_DIR, defaults)
    write(defaults, "sms.critical.text.j2", "urgent {{ claim_url }}")
    monkeypatch.setattr(templates, "DEFAULT_DIR", defaults)
    t = TemplateSet(tmp_path / "custom-does-not-exist")
    assert t.render(channel="sms", level="critical", context=context()).text == f"urgent {URL}"
    assert t.render(channel="sms", level="high", context=context()).text.startswith("[CRITICAL]")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("{% if customer %}unclosed", "TemplateSyntaxError"),
        ("Hello {{ custmer }}", "UndefinedError"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "SecurityError"),
        ("{{ factors.append('x') }}", "SecurityError"),  # the immutable sandbox
        ("{{ {}[customer] }}", "UndefinedError"),  # its message would quote the name
        ("{{ {}[customer.split()[1].upper()] }}", "UndefinedError"),
        ("{{ customer + 1 }}", "TypeError"),
        ("{% include 'missing.j2' %}", "TemplateNotFound"),
        ("   {# nothing #}  ", "empty"),
    ],
)
def test_a_broken_custom_template_falls_back_to_the_default_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, source: str, error: str
) -> None:
    write(tmp_path, "email.subject.j2", source)
    with caplog.at_level(logging.WARNING, logger=templates.__name__):
        rendered = TemplateSet(tmp_path).render(
            channel="email", level="critical", context=context()
        )
    assert rendered.subject.startswith("[CRITICAL] Maria Gonzalez waiting")
    assert rendered.fallbacks == ("email.subject.j2",)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "email.subject.j2" in message and error in message
    assert "Maria" not in message and "Gonzalez" not in message


def test_a_broken_level_template_goes_to_the_default_not_the_channel_override(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "email.critical.subject.j2", "{{ nope }}")
    write(tmp_path, "email.subject.j2", "channel override")
    with caplog.at_level(logging.WARNING, logger=templates.__name__):
        rendered = TemplateSet(tmp_path).render(
            channel="email", level="critical", context=context()
        )
    assert rendered.subject.startswith("[CRITICAL]")
    assert rendered.fallbacks == ("email.critical.subject.j2",)


def test_a_broken_default_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = tmp_path / "defaults"
    shutil.copytree(templates.DEFAULT_DIR, defaults)
    write(defaults, "email.subject.j2", "{{ nope }}")
    monkeypatch.setattr(templates, "DEFAULT_DIR", defaults)
    with pytest.raises(Exception, match="nope"):
        TemplateSet().render(channel="email", level="critical", context=context())


def test_endless_output_is_refused_and_falls_back(tmp_path: Path) -> None:
    write(tmp_path, "sms.text.j2", "{% for i in range(99999) %}{{ factors }}{% endfor %}")
    rendered = TemplateSet(tmp_path).render(channel="sms", level="low", context=context())
    assert rendered.fallbacks == ("sms.text.j2",) and URL in rendered.text


def test_check_reports_problems_and_passes_a_good_template() -> None:
    t = TemplateSet()
    assert t.check("[{{ level_upper }}] {{ customer }} - {{ claim_url }}") == []
    [syntax] = t.check("line one\n{% if customer %}\nunclosed")
    assert syntax.startswith("line ") and "endif" in syntax
    assert t.check("{{ custmer }}") == ["UndefinedError: 'custmer' is undefined"]
    [escape] = t.check("{{ ''.__class__.__mro__ }}")
    assert escape.startswith("SecurityError")
    assert t.check("{# nothing #}") == ["the template renders an empty message"]


def test_the_default_sms_fits_two_segments_and_keeps_the_link() -> None:
    text = TemplateSet().render(channel="sms", level="critical", context=sample_context()).text
    assert 160 <= len(text) <= SMS_MAX
    assert URL in text and "…" not in text


def test_a_long_custom_sms_is_trimmed_and_a_missing_link_added(tmp_path: Path) -> None:
    write(tmp_path, "sms.text.j2", "{{ customer }} " + "very long words " * 40)
    text = TemplateSet(tmp_path).render(channel="sms", level="high", context=context()).text
    assert len(text) <= SMS_MAX and text.endswith(f"…\n{URL}")
    assert text.startswith("Maria Gonzalez very long")


def test_the_subject_is_one_short_line_even_for_a_huge_vehicle(tmp_path: Path) -> None:
    huge = "2024 Ford F-150\nLariat SuperCrew " + "with every option " * 40
    rendered = TemplateSet().render(
        channel="email", level="critical", context=context(vehicle=huge)
    )
    assert "\n" not in rendered.subject and len(rendered.subject) <= 300
    assert rendered.subject.endswith("…")
    write(tmp_path, "sms.subject.j2", "a\n\n  b\t c")
    custom = TemplateSet(tmp_path).render(channel="sms", level="low", context=context())
    assert custom.subject == "a b c"


def test_the_context_words_waits_and_chances() -> None:
    ctx = context()
    assert ctx["probability_pct"] == "8%" and ctx["probability"] == 0.083
    assert ctx["chance"] == "8% chance of a sale in 14 days"
    assert ctx["created_local"] == "Tue 09:12"
    assert ctx["level_upper"] == "CRITICAL" and ctx["lead_id"] == 7
    assert ctx["factors"] == ["one", "two", "three", "four"]

    def waited(delta: timedelta) -> object:
        return message_context(
            CARD, level="low", claim_url=None, now=CREATED + delta, recipient_name="x"
        )["waited"]

    assert waited(timedelta(minutes=5)) == "5 min"
    assert waited(timedelta(hours=2, minutes=30)) == "2.5 h"
    assert waited(timedelta(days=3)) == "3.0 days"
    assert waited(-timedelta(minutes=5)) == "0 min"  # clock skew never shows a negative wait

    blank = replace(CARD, probability=None, customer=None, vehicle=None, source=None, rep=None)
    unscored = message_context(blank, level="low", claim_url=None, now=CREATED, recipient_name="x")
    assert unscored["probability_pct"] == "not scored" and unscored["probability"] is None
    assert unscored["customer"] == "lead #7" and unscored["source"] == "unknown source"
    assert unscored["chance"] == "not scored"
    hopeless = message_context(
        replace(CARD, probability=0.0),
        level="critical",
        claim_url=None,
        now=CREATED,
        recipient_name="x",
    )
    assert hopeless["chance"] == "0% chance of a sale in 14 days"


def test_a_bare_lead_renders_without_holes_or_a_link() -> None:
    blank = replace(CARD, probability=None, vehicle=None, rep=None, factors=())
    ctx = message_context(blank, level="low", claim_url=None, now=CREATED, recipient_name="x")
    for channel in Channel:
        rendered = TemplateSet().render(channel=channel.value, level="low", context=ctx)
        assert "not scored" in rendered.text.lower() and "None" not in rendered.text
        assert "\n\n\n" not in rendered.text  # optional lines leave no holes
        assert "()" not in rendered.subject and "claim" not in rendered.text.lower()


def test_channel_and_level_names_cannot_reach_other_files() -> None:
    with pytest.raises(ValueError, match="not a channel"):
        TemplateSet().render(channel="../etc", level="low", context=context())


def test_settings_templates_come_before_files_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "email.subject.j2").write_text("file: {{ customer }}")
    (tmp_path / "sms.text.j2").write_text("file sms {{ claim_url }}")
    overrides = {"email.subject.j2": "settings: {{ customer }} waits {{ waited }}"}
    chosen = TemplateSet(tmp_path).with_overrides(overrides)
    assert chosen.render(channel="email", level="high", context=context()).subject == (
        "settings: Maria Gonzalez waits 0 min"
    )
    assert chosen.render(channel="sms", level="high", context=context()).text.startswith("file sms")
    assert chosen.names()["email.subject.j2"] == "settings"
    assert chosen.source("email.subject.j2") == overrides["email.subject.j2"]
    assert chosen.source("sms.text.j2") == "file sms {{ claim_url }}"
    assert "{{" in (chosen.source("in_app.text.j2") or "")  # the shipped default's text


def test_a_broken_settings_template_still_falls_back_to_the_default() -> None:
    chosen = TemplateSet(None, {"sms.text.j2": "{{ customer.nope() }}"})
    rendered = chosen.render(channel="sms", level="critical", context=context())
    assert rendered.fallbacks == ("sms.text.j2",) and URL in rendered.text
