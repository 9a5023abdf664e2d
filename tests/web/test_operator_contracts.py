"""The operator's contract page: versions listed, a new one added, the cap enforced on the form."""
from __future__ import annotations

from sqlalchemy import select

from billing.models import Contract
from engine.core.db import unit_of_work
from tests.factories import make_merchant
from tests.web.web_helpers import csrf_token, login, make_user

FORM = {"rate_repurchase_bp": "500", "rate_recovery_bp": "800", "rate_first_purchase_bp": "300", "period_cap": "",
        "lock_days": "15", "days_until_due": "14", "effective_from": "", "billing_email": "ap@acme.test"}


def test_operator_adds_a_contract_version_and_the_cap_is_enforced(app, sessions, clock):
    _, mpub, _ = make_merchant(sessions, clock)
    make_user(sessions, clock, "op@example.test", "operator")
    client = app.test_client()
    assert login(client, "op@example.test").status_code == 302
    url = f"/operator/merchants/{mpub}/contracts"
    page = client.get(url)
    assert page.status_code == 200 and "No contract yet" in page.get_data(as_text=True)
    token = csrf_token(client, url)
    too_high = client.post(url, data={**FORM, "rate_repurchase_bp": "900", "csrf_token": token})
    assert too_high.status_code == 422 and "platform cap" in too_high.get_data(as_text=True)
    ok = client.post(url, data={**FORM, "csrf_token": token})
    assert ok.status_code == 302
    with unit_of_work(sessions) as s:
        c = s.scalars(select(Contract)).one()
        assert (c.version, c.rate_repurchase_bp, c.billing_email) == (1, 500, "ap@acme.test")
    assert "500" in client.get(url).get_data(as_text=True)
    assert client.get("/operator/merchants/mer_nope/contracts").status_code == 404
