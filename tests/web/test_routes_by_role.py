"""Walks every route of the app (read from ``app.url_map``, so new routes are covered by
themselves) for anonymous visitors and each role, and checks the answer against the design:

* routes on role blueprints (made by ``role_blueprint``): anonymous → 302 to the login page,
  another role → 403, the role itself → the answer listed in ALLOWED_ANSWER (200 for a GET
  unless listed). Every non-GET route of a role blueprint must be listed.
* every other route must be listed in OPEN_ROUTES with its answer, the same for everybody: a
  browser session neither opens nor closes the API or the public endpoints.

A route in neither place fails the test: classify it when you add it.
"""
from __future__ import annotations


import pytest

from engine.campaigns.models import Campaign
from engine.core.db import unit_of_work
from engine.core.web import role_blueprints
from tests.factories import make_merchant
from tests.web.web_helpers import csrf_token, login, make_user

ROLES = ("operator", "merchant", "finance")
WHO = ("anonymous",) + ROLES
EMAIL = {r: f"{r}@example.test" for r in ROLES}

# (endpoint, method) → expected status for everybody, anonymous and every role alike.
# A set means any of these (the public endpoints answer a bad token by their own rules).
OPEN_ROUTES = {
    ("assets.static", "GET"): 200,
    ("static", "GET"): 404,                      # Flask's default folder; we serve /assets
    ("healthz", "GET"): 200,
    ("auth.login", "POST"): 401,                 # empty form: wrong email or password
    ("auth.logout", "POST"): 302,
    ("auth.set_language", "POST"): 302,
    ("api_v1.openapi", "GET"): 200,
    ("api_v1.post_batch", "POST"): 401,          # API key only; a session is no key
    ("api_v1.batches", "GET"): 401,
    ("api_v1.post_resource", "POST"): 401,
    ("tracking.follow", "GET"): {302, 400, 404},
    ("unsubscribe.confirm", "GET"): {400, 404},
    ("unsubscribe.unsubscribe", "POST"): {400, 404},
    ("webhooks.gateway", "POST"): {400, 401, 403},
    ("webhooks.twilio_status", "POST"): {400, 401, 403},
    ("webhooks.twilio_inbound", "POST"): {400, 401, 403},
    ("stripe_webhooks.stripe_webhook", "POST"): {400, 503},  # unsigned, or no secret configured
}
# Open routes whose answer depends on being logged in (by design).
SESSION_AWARE = {
    ("auth.index", "GET"): {"anonymous": 302, "operator": 302, "merchant": 302, "finance": 302},
    ("auth.login", "GET"): {"anonymous": 200, "operator": 302, "merchant": 302, "finance": 302},
}
# Role routes whose answer for their own role is not a plain 200 (redirects, empty forms).
ALLOWED_ANSWER = {
    ("operator.index", "GET"): 302,
    ("campaigns.new", "POST"): 422,              # empty form: refused with its problems
    ("campaigns.edit", "POST"): 422,
    ("campaigns.transition", "POST"): 400,       # no target status
    # money pages: the sample ids name nothing (tests/web/test_merchant_portal.py and
    # test_finance_pages.py open real ones)
    ("attributed.evidence", "GET"): 404,
    ("money.invoice", "GET"): 404,
    ("money.invoice_print", "GET"): 404,
    ("money.invoice_csv", "GET"): 404,
    ("finance.adjustment_create", "POST"): 422,  # empty form: refused with its problems
    ("contracts.add", "POST"): 422,              # empty form: refused with its problems
    ("finance.adjustment_approve", "POST"): 404,
    ("finance.adjustment_reject", "POST"): 404,
}
# Values for URL arguments; an argument missing here fails the test so it gets a sample.
def _args(world):
    return {"merchant_id": world["merchant"], "campaign_id": world["campaign"], "filename": "app.css",
            "token": "not-a-valid-token", "resource": "customers", "ref": "att_doesnotexist",
            "invoice_id": "inv_doesnotexist", "adjustment_id": "adj_doesnotexist", "period": "2026-10"}


@pytest.fixture
def world(sessions, clock):
    mid, mpub, _ = make_merchant(sessions, clock, slug="alpha")
    other_id, other_pub, _ = make_merchant(sessions, clock, slug="beta")
    ids = {}
    with unit_of_work(sessions) as s:
        for merchant_id, key in ((mid, "campaign"), (other_id, "other_campaign")):
            c = Campaign(public_id=f"cmp_{key}", merchant_id=merchant_id, name=f"Reminder {key}", kind="unpaid_order",
                         status="draft", channels=["email"], templates={"email": {"subject": "Hi", "text": "Pay"}},
                         schedule={"delay_minutes": 15}, audience={}, holdout_bp=1000, created_at=clock.now(),
                         updated_at=clock.now())
            s.add(c)
            ids[key] = c.public_id
    make_user(sessions, clock, EMAIL["operator"], "operator")
    make_user(sessions, clock, EMAIL["merchant"], "merchant", mid)
    make_user(sessions, clock, EMAIL["finance"], "finance")
    return {"merchant": mpub, "other_merchant": other_pub, **ids}


def _clients(app):
    clients = {"anonymous": app.test_client()}
    for role in ROLES:
        clients[role] = app.test_client()
        assert login(clients[role], EMAIL[role]).status_code == 302
    return clients


def _token(client, who):
    return csrf_token(client, "/login" if who == "anonymous" else "/")


def test_every_route_answers_every_role_as_designed(app, world):
    clients = _clients(app)
    tokens = {}
    factory = role_blueprints()
    adapter = app.url_map.bind("localhost")
    args = _args(world)
    unclassified, wrong = [], []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            key = (rule.endpoint, method)
            missing = [a for a in rule.arguments if a not in args]
            if missing:
                unclassified.append(f"{rule.rule}: no sample value for {missing}")
                continue
            url = adapter.build(rule.endpoint, {a: args[a] for a in rule.arguments}, method=method)
            blueprint = rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else None
            if blueprint in factory:
                if method != "GET" and key not in ALLOWED_ANSWER:
                    unclassified.append(f"{method} {rule.rule} ({rule.endpoint}): list its answer in ALLOWED_ANSWER")
                    continue
                expected = {who: (ALLOWED_ANSWER.get(key, 200) if who in factory[blueprint]
                                  else 302 if who == "anonymous" else 403) for who in WHO}
            elif key in SESSION_AWARE:
                expected = SESSION_AWARE[key]
            elif key in OPEN_ROUTES:
                expected = {who: OPEN_ROUTES[key] for who in WHO}
            else:
                unclassified.append(f"{method} {rule.rule} ({rule.endpoint}): add it to OPEN_ROUTES or make it a role blueprint")
                continue
            for who in WHO:
                client = clients[who]
                if method == "GET":
                    resp = client.get(url)
                else:
                    if who not in tokens:
                        tokens[who] = _token(client, who)
                    resp = client.open(url, method=method, data={"csrf_token": tokens[who]})
                want = expected[who]
                ok = resp.status_code in want if isinstance(want, set) else resp.status_code == want
                if blueprint in factory and who == "anonymous" and ok:
                    ok = resp.location.startswith("/login")
                if not ok:
                    wrong.append(f"{who:9} {method} {url} ({rule.endpoint}): {resp.status_code}, expected {want}")
                if rule.endpoint == "auth.logout":  # the session (and its CSRF token) is gone
                    tokens.pop(who, None)
                    if who != "anonymous":
                        assert login(client, EMAIL[who]).status_code == 302  # log back in for the rest
    assert not unclassified, "unclassified routes:\n" + "\n".join(unclassified)
    assert not wrong, "unexpected answers:\n" + "\n".join(wrong)


def test_the_walk_covers_each_role_blueprint(app):
    blueprints = {r.endpoint.rsplit(".", 1)[0] for r in app.url_map.iter_rules() if "." in r.endpoint}
    assert {"operator", "campaigns", "models", "merchant", "finance", "money", "attributed"} <= blueprints & set(role_blueprints())


def test_merchant_pages_with_another_merchants_ids_are_not_found(app, world):
    clients = _clients(app)
    merchant = clients["merchant"]
    assert merchant.get(f"/merchant/campaigns/{world['campaign']}").status_code == 200
    assert merchant.get(f"/merchant/campaigns/{world['other_campaign']}").status_code == 404
    # the operator sees every merchant, but one merchant's id never opens another's campaign
    operator = clients["operator"]
    assert operator.get(f"/operator/merchants/{world['merchant']}/campaigns/{world['other_campaign']}").status_code == 404
    assert operator.get(f"/operator/merchants/{world['other_merchant']}/campaigns/{world['campaign']}").status_code == 404
    assert operator.get("/operator/merchants/mer_doesnotexist").status_code == 404


def test_merchant_scope_comes_from_the_login_not_the_url(app, world):
    merchant = _clients(app)["merchant"]
    # a merchant id smuggled into the query string changes nothing: the page is the login's merchant
    page = merchant.get(f"/merchant/?merchant_id={world['other_merchant']}").get_data(as_text=True)
    assert "Alpha" in page and "Reminder campaign" in page and "Reminder other_campaign" not in page
