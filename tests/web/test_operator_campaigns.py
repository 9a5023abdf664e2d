"""The operator's campaign pages against the real campaign service: create, refuse with the
problems by field, edit, preview, activate, pause; scoped by merchant; on both databases."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.campaigns.models import Campaign
from tests.factories import make_merchant
from tests.web.web_helpers import csrf_token, login, make_user

EMAIL_SUBJECT = "Back at {{ merchant.name }}"
EMAIL_TEXT = "{% for p in products %}{{ p.title }} {{ p.price }} {{ p.url }}\n{% endfor %}"


@pytest.fixture
def operator(client, sessions, clock):
    mid, mpub, _ = make_merchant(sessions, clock, slug="alpha")
    _, other_pub, _ = make_merchant(sessions, clock, slug="beta")
    make_user(sessions, clock, "op@example.test", "operator")
    assert login(client, "op@example.test").status_code == 302
    return {"client": client, "merchant": mpub, "other": other_pub, "token": csrf_token(client, "/operator/merchants")}


def _form(token, **kw):
    data = {"csrf_token": token, "name": "Win them back", "kind": "win_back", "channels": ["email"],
            "tpl_email_subject": EMAIL_SUBJECT, "tpl_email_text": EMAIL_TEXT, "tpl_email_html": "",
            "schedule": '{"local_hour": 11}', "audience": '{"days": 30}', "holdout_pct": "12.5",
            "daily_send_limit": "500", "daily_spend_limit": "25.00"}
    data.update(kw)
    return data


def _create(op, **kw):
    r = op["client"].post(f"/operator/merchants/{op['merchant']}/campaigns/new", data=_form(op["token"], **kw))
    assert r.status_code == 302, r.get_data(as_text=True)
    return r.location.rsplit("/", 1)[1]


def test_create_edit_preview_activate_pause(operator, sessions):
    op, client, base = operator, operator["client"], f"/operator/merchants/{operator['merchant']}/campaigns"
    assert client.get(f"{base}/new").status_code == 200
    cid = _create(op)
    with sessions() as s:
        c = s.scalar(select(Campaign).where(Campaign.public_id == cid))
        assert (c.status, c.holdout_bp, c.daily_spend_limit, c.daily_send_limit) == ("draft", 1250, 2500, 500)
        assert c.schedule["local_hour"] == 11 and c.audience["days"] == 30
    page = client.get(f"{base}/{cid}").get_data(as_text=True)
    assert "Win them back" in page and "Campaign created as a draft" in page and "12.50%" in page

    edit = client.get(f"{base}/{cid}/edit").get_data(as_text=True)
    assert 'value="Win them back"' in edit and "12.5" in edit
    r = client.post(f"{base}/{cid}/edit", data=_form(op["token"], name="Win them back, v2"))
    assert r.status_code == 302

    preview = client.get(f"{base}/{cid}/preview")
    assert preview.status_code == 200
    text = preview.get_data(as_text=True)
    assert "Audience preview" in text and "Expected commission" in text and "Message cost (ours)" in text

    r = client.post(f"{base}/{cid}/status", data={"csrf_token": op["token"], "to": "active"}, follow_redirects=True)
    assert "Campaign is now active." in r.get_data(as_text=True)
    # an active campaign is not edited: the service's refusal is shown, nothing changes
    r = client.post(f"{base}/{cid}/edit", data=_form(op["token"], name="changed while active"))
    assert r.status_code == 422 and "pause it first" in r.get_data(as_text=True)
    r = client.post(f"{base}/{cid}/status", data={"csrf_token": op["token"], "to": "paused"}, follow_redirects=True)
    assert "Campaign is now paused." in r.get_data(as_text=True)
    with sessions() as s:
        c = s.scalar(select(Campaign).where(Campaign.public_id == cid))
        assert (c.name, c.status) == ("Win them back, v2", "paused")


def test_problems_are_shown_beside_their_fields_and_nothing_is_saved(operator, sessions):
    op = operator
    r = op["client"].post(f"/operator/merchants/{op['merchant']}/campaigns/new",
                          data=_form(op["token"], name="", holdout_pct="101", daily_spend_limit="2.505",
                                     tpl_email_text="{{ customr.first_name }}"))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert "A name is required." in page and "A percentage between 0 and 100" in page and "An amount in USD" in page
    assert 'class="field has-error"' in page
    # the form's own checks passed, the service's did not: its problem is shown by its field
    r = op["client"].post(f"/operator/merchants/{op['merchant']}/campaigns/new",
                          data=_form(op["token"], tpl_email_text="{{ customr.first_name }}"))
    assert r.status_code == 422 and re.search(r"customr", r.get_data(as_text=True))
    with sessions() as s:
        assert s.scalar(select(Campaign.id)) is None


def test_an_illegal_transition_is_explained_not_applied(operator, sessions):
    op = operator
    cid = _create(op)
    r = op["client"].post(f"/operator/merchants/{op['merchant']}/campaigns/{cid}/status",
                          data={"csrf_token": op["token"], "to": "paused"}, follow_redirects=True)
    assert 'class="flash error"' in r.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(select(Campaign.status).where(Campaign.public_id == cid)) == "draft"


def test_status_change_without_csrf_token_is_refused(operator, sessions):
    op = operator
    cid = _create(op)
    r = op["client"].post(f"/operator/merchants/{op['merchant']}/campaigns/{cid}/status", data={"to": "active"})
    assert r.status_code == 400
    with sessions() as s:
        assert s.scalar(select(Campaign.status).where(Campaign.public_id == cid)) == "draft"


def test_another_merchants_url_never_reaches_the_campaign(operator, sessions):
    op = operator
    cid = _create(op)
    base = f"/operator/merchants/{op['other']}/campaigns/{cid}"
    client = op["client"]
    assert client.get(base).status_code == 404
    assert client.get(f"{base}/edit").status_code == 404
    assert client.get(f"{base}/preview").status_code == 404
    assert client.post(f"{base}/status", data={"csrf_token": op["token"], "to": "active"}).status_code == 404
    assert client.post(f"{base}/edit", data=_form(op["token"])).status_code == 404
    with sessions() as s:
        assert s.scalar(select(Campaign.status).where(Campaign.public_id == cid)) == "draft"
