"""The demo's billing stage: a contract for the demo merchant, its monthly invoices from the
ledger, pushed through the real ``stripe`` library to a local Stripe-speaking server started for
the occasion (nothing leaves the machine)."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import select

from billing import contracts
from billing.contracts import Terms
from billing.jobs import run_billing
from billing.models import Invoice, InvoiceLine
from billing.stripe_gateway import StripeApiGateway
from billing.stripe_local import LocalStripe
from engine.core.clock import FrozenClock
from engine.core.db import unit_of_work
from engine.core.money import Money
from engine.core.runtime import Runtime

DEMO_TERMS = Terms(rate_repurchase_bp=500, rate_recovery_bp=800, rate_first_purchase_bp=300, period_cap=None,
                   billing_email="finance@demo-cj.example.test")


def ensure_contract(rt: Runtime, merchant_id: int, *, since: datetime) -> None:
    with unit_of_work(rt.sessions) as s:
        if not contracts.versions(s, merchant_id):
            contracts.save_contract(s, merchant_id, DEMO_TERMS, effective_from=since, now=since,
                                    platform_cap_bp=rt.settings.platform_cap_bp)


def invoice_and_push(rt: Runtime, merchant_id: int, *, now: datetime, echo: Callable[[str], None]) -> None:
    billing_rt = Runtime(settings=rt.settings, engine=rt.engine, sessions=rt.sessions, clock=FrozenClock(now))
    with LocalStripe() as local:
        gateway = StripeApiGateway(api_key=local.api_key, webhook_secret="whsec_demo_local_only", api_base=local.url)
        run = run_billing(billing_rt, gateway, merchant_ids=[merchant_id])
        echo(f"  {run.summary()} (local Stripe at {local.url})")
        with unit_of_work(rt.sessions) as s:
            for inv in s.scalars(select(Invoice).where(Invoice.merchant_id == merchant_id).order_by(Invoice.number)):
                echo(f"  {inv.number} {inv.period}: {Money(inv.total, inv.currency).format():>14} "
                     f"{inv.payment_status:<9} Stripe {inv.stripe_invoice_id or inv.stripe_credit_note_id or '-'}")
                for line in s.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == inv.id)
                                      .order_by(InvoiceLine.line_no)):
                    echo(f"      {line.description:<44} {line.order_count:>5} order(s) "
                         f"GMV {Money(line.gmv, inv.currency).format():>14}  {Money(line.amount, inv.currency).format():>12}")
        stripe_invoices = local.objects("invoice")
        echo(f"  local Stripe now holds {len(stripe_invoices)} invoice(s), "
             f"{len(local.objects('invoiceitem'))} item(s), statuses "
             f"{', '.join(sorted({i['status'] for i in stripe_invoices})) or '-'}")
