"""An SMS STOP that arrives through the webhook after planning stops the planned send at
dispatch: nothing reaches the gateway. On SQLite and PostgreSQL."""
from __future__ import annotations

from engine.channels.testing import LocalSmsGateway
from engine.core.config import Settings
from tests.integration.test_dispatch import (  # noqa: F401 (fixtures)
    planned_campaign,
    run,
    servers,
    shop,
    statuses,
)
from tests.integration.test_planning import AFTERNOON


def test_a_stop_reply_suppresses_the_planned_sms_at_dispatch(client, sessions, shop, servers, clock):  # noqa: F811
    smtp, gw = servers
    planned_campaign(sessions, shop, "sms")
    assert statuses(sessions) == ["planned"] * 3
    # The shop's three customers share one phone (+14155550123); it replies 退订 to the shop's number.
    clock.set(AFTERNOON)
    raw, headers = LocalSmsGateway(webhook_secret=Settings.sms_gateway_webhook_secret).signed_webhook(
        {"type": "message.inbound", "from": "+14155550123", "to": "+14155550100", "text": "退订"}, at=AFTERNOON)
    assert client.post("/webhooks/gateway", data=raw, headers=headers).status_code == 200
    stats = run(sessions, smtp, gw)
    assert stats.outcomes == {"suppressed:opted_out": 3}
    assert statuses(sessions) == ["suppressed"] * 3 and gw.messages == []
