"""The campaign form's parsing and the placing of problems by field (pure, no Flask)."""
from __future__ import annotations

from types import SimpleNamespace

from werkzeug.datastructures import MultiDict

from engine.core.errors import ValidationFailed
from engine.web.campaign_form import form_values, parse_campaign_form, place_problems, problems_by_field


def _form(**kw):
    base = {"name": " Spring ", "kind": "win_back", "channels": ["sms", "email"], "tpl_email_subject": "S",
            "tpl_email_text": "T", "tpl_email_html": "", "tpl_sms_text": "X", "schedule": '{"local_hour": 9}',
            "audience": "", "holdout_pct": "12.5", "daily_send_limit": "", "daily_spend_limit": "19.99"}
    base.update(kw)
    md = MultiDict()
    for k, v in base.items():
        for item in (v if isinstance(v, list) else [v]):
            md.add(k, item)
    return md


def test_a_good_form_becomes_the_services_arguments():
    parsed = parse_campaign_form(_form(), "USD")
    assert parsed.problems == {}
    v = parsed.values
    assert v["name"] == "Spring" and v["channels"] == ["email", "sms"]          # canonical order
    assert v["templates"] == {"email": {"subject": "S", "text": "T", "html": ""}, "sms": {"text": "X"}}
    assert v["schedule"] == {"local_hour": 9} and v["audience"] == {}
    assert v["holdout_bp"] == 1250 and v["daily_send_limit"] is None and v["daily_spend_limit"] == 1999
    assert v["offers_coupon"] is False


def test_every_problem_is_reported_at_once():
    parsed = parse_campaign_form(_form(name="", kind="spam", channels=[], schedule="[1]", holdout_pct="10.001",
                                       daily_send_limit="-3", daily_spend_limit="1.999"), "USD")
    assert set(parsed.problems) == {"name", "kind", "channels", "schedule", "holdout_pct", "daily_send_limit",
                                    "daily_spend_limit"}


def test_money_follows_the_currencys_minor_unit():
    assert parse_campaign_form(_form(daily_spend_limit="1200"), "JPY").values["daily_spend_limit"] == 1200
    assert "daily_spend_limit" in parse_campaign_form(_form(daily_spend_limit="12.5"), "JPY").problems


def test_service_problems_land_beside_their_fields():
    exc = ValidationFailed([("name", "required"), ("holdout_bp", "0 to 10000"), ("schedule.local_hour", "0 to 23"),
                            ("templates.email.text", "unknown variable customr"), ("status", "pause it first"),
                            ("", "something general")])
    placed = place_problems(problems_by_field(exc))
    assert placed["name"] == ["required"] and placed["holdout_pct"] == ["0 to 10000"]
    assert placed["schedule"] == ["local_hour: 0 to 23"]
    assert placed["templates.email.text"] == ["unknown variable customr"]
    assert placed[""] == ["status: pause it first", "something general"]


def test_a_stored_campaign_fills_the_edit_form():
    c = SimpleNamespace(name="N", kind="win_back", channels=["email"], schedule={"local_hour": 9}, audience={},
                        holdout_bp=1250, offers_coupon=True, daily_send_limit=None, daily_spend_limit=1999,
                        templates={"email": {"subject": "S", "text": "T"}})
    v = form_values(c, 2)
    assert v["holdout_pct"] == "12.50" and v["daily_spend_limit"] == "19.99" and v["daily_send_limit"] == ""
    assert v["tpl_email_subject"] == "S" and v["tpl_email_html"] == "" and v["tpl_sms_text"] == ""
    # what the form shows parses back to the same values
    back = parse_campaign_form(_form(holdout_pct=v["holdout_pct"], daily_spend_limit=v["daily_spend_limit"]), "USD")
    assert back.values["holdout_bp"] == 1250 and back.values["daily_spend_limit"] == 1999
