"""A local HTTP server that speaks the part of Stripe's API this project uses, for tests and the demo.

See docs/stripe.md for what it covers and what it does not. Objects take the shapes of Stripe's
own example objects (fixtures.json, MIT licence in LICENSE).
"""
from billing.stripe_local.local import DEFAULT_API_KEY, LocalStripe
from billing.stripe_local.webhooks import sign

__all__ = ["DEFAULT_API_KEY", "LocalStripe", "sign"]
