"""Settings, read from the environment in exactly one place.

Everything the engine can be told lives in :class:`Settings`. ``Settings.from_env()`` is called
once by the composition root (``app.py``); everything below it receives the values it needs as
arguments. Tests build a ``Settings`` directly or pass overrides to the app factory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"


class ConfigError(ValueError):
    """A setting is present but unusable; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    # Database. SQLite in var/ is the embedded default for a newcomer; production is PostgreSQL
    # (postgresql+psycopg://user@host:5432/dbname).
    database_url: str = field(default_factory=lambda: f"sqlite:///{DEFAULT_VAR_DIR / 'engine.db'}")
    # Flask session signing; the default is only good for a laptop and is refused in production.
    secret_key: str = "dev-only-not-secret"
    environment: str = "development"  # development | test | production
    # Ingestion API limits: a batch larger than either is refused with 413 before it is parsed.
    api_max_body_bytes: int = 16 * 1024 * 1024
    api_max_records: int = 5_000
    api_max_order_lines: int = 50_000
    # Bulk import: records validated and written per transaction (memory stays bounded by this).
    import_chunk_rows: int = 5_000
    # Where trained models are written (LightGBM text files + metadata JSON).
    model_dir: str = str(DEFAULT_VAR_DIR / "models")
    # Messages: the host of tracked links and unsubscribe links, and the secret that signs them
    # (and derives coupon codes). The default secret is refused in production.
    tracking_host: str = "127.0.0.1:8000"
    signing_secret: str = "dev-only-signing-secret-change-me"
    # Channels: SMTP for email, an HTTP gateway for SMS and MMS (unset: that channel is off).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    sms_gateway_url: str = ""
    sms_gateway_key: str = ""
    # Webhooks (engine/webhooks): the secret the HTTP gateway signs its webhooks with (empty: its
    # webhooks are refused; the default is refused in production), Twilio's auth token (empty:
    # Twilio webhooks are refused), and the public base URL providers call, e.g.
    # https://hooks.example.com (Twilio signs the full URL it called; empty: the URL of the request
    # as this server received it, right only without a rewriting proxy in front).
    sms_gateway_webhook_secret: str = "dev-only-gateway-webhook-secret"
    twilio_auth_token: str = ""
    public_base_url: str = ""
    # The commission rate planning uses in its expected-value test until per-merchant contracts
    # exist (issue #6); never above the platform cap of 8.00%.
    default_commission_rate_bp: int = 800
    # Billing: the platform cap every contract rate must stay under (never above 8.00%), and
    # Stripe (key, API base - a local Stripe-speaking server in tests and the demo - and the
    # webhook endpoint's signing secret). No key: invoices are made but not pushed.
    platform_cap_bp: int = 800
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""
    # Connections the billing job posts and closes with at once (PostgreSQL; SQLite writes one
    # at a time, so always 1 there). Each works on its own merchants.
    billing_workers: int = 2
    # Reverse proxies in front of the web app that set X-Forwarded-For/-Proto/-Host (0: none,
    # the headers are ignored, so a client cannot forge its address). Behind a proxy it must be
    # set: the login throttle counts failures per client address, and without it every client
    # shares the proxy's address (one password sprayer would lock everyone out).
    trusted_proxy_hops: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        base = cls()
        settings = replace(
            base,
            database_url=env.get("DATABASE_URL") or base.database_url,
            secret_key=env.get("SECRET_KEY") or base.secret_key,
            environment=env.get("ENGINE_ENV") or base.environment,
            api_max_body_bytes=_int(env, "API_MAX_BODY_BYTES", base.api_max_body_bytes, minimum=1024),
            api_max_records=_int(env, "API_MAX_RECORDS", base.api_max_records, minimum=1),
            api_max_order_lines=_int(env, "API_MAX_ORDER_LINES", base.api_max_order_lines, minimum=1),
            import_chunk_rows=_int(env, "IMPORT_CHUNK_ROWS", base.import_chunk_rows, minimum=1),
            model_dir=env.get("MODEL_DIR") or base.model_dir,
            tracking_host=env.get("TRACKING_HOST") or base.tracking_host,
            signing_secret=env.get("SIGNING_SECRET") or base.signing_secret,
            smtp_host=env.get("SMTP_HOST") or base.smtp_host,
            smtp_port=_int(env, "SMTP_PORT", base.smtp_port, minimum=1),
            sms_gateway_url=env.get("SMS_GATEWAY_URL") or base.sms_gateway_url,
            sms_gateway_key=env.get("SMS_GATEWAY_KEY") or base.sms_gateway_key,
            # set but empty turns the gateway's webhooks off, hence get() with a default, not "or"
            sms_gateway_webhook_secret=env.get("SMS_GATEWAY_WEBHOOK_SECRET", base.sms_gateway_webhook_secret),
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or base.twilio_auth_token,
            public_base_url=env.get("PUBLIC_BASE_URL") or base.public_base_url,
            default_commission_rate_bp=_int(env, "DEFAULT_COMMISSION_RATE_BP", base.default_commission_rate_bp),
            platform_cap_bp=_int(env, "PLATFORM_CAP_BP", base.platform_cap_bp),
            stripe_api_key=env.get("STRIPE_API_KEY") or base.stripe_api_key,
            stripe_api_base=env.get("STRIPE_API_BASE") or base.stripe_api_base,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or base.stripe_webhook_secret,
            billing_workers=_int(env, "BILLING_WORKERS", base.billing_workers, minimum=1),
            trusted_proxy_hops=_int(env, "TRUSTED_PROXY_HOPS", base.trusted_proxy_hops, minimum=0),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.environment not in {"development", "test", "production"}:
            raise ConfigError(f"ENGINE_ENV must be development, test or production, got {self.environment!r}")
        if self.environment == "production" and self.secret_key == Settings.secret_key:
            raise ConfigError("SECRET_KEY must be set in production")
        if self.environment == "production" and self.signing_secret == Settings.signing_secret:
            raise ConfigError("SIGNING_SECRET must be set in production")
        if not 0 <= self.platform_cap_bp <= 800:
            raise ConfigError("PLATFORM_CAP_BP must be between 0 and 800 (commission is capped at 8.00%)")
        if self.stripe_api_key and not self.stripe_webhook_secret:
            raise ConfigError("STRIPE_WEBHOOK_SECRET must be set with STRIPE_API_KEY (webhooks are verified)")
        if not 0 <= self.default_commission_rate_bp <= 800:
            raise ConfigError("DEFAULT_COMMISSION_RATE_BP must be between 0 and 800 (the 8.00% platform cap)")
        if self.environment == "production" and self.sms_gateway_webhook_secret == Settings.sms_gateway_webhook_secret:
            raise ConfigError("SMS_GATEWAY_WEBHOOK_SECRET must be set in production (empty turns the gateway's webhooks off)")
        if self.public_base_url and not self.public_base_url.startswith(("https://", "http://")):
            raise ConfigError(f"PUBLIC_BASE_URL must be an http(s) URL, got {self.public_base_url!r}")
        if len(self.signing_secret.encode()) < 16:
            raise ConfigError("SIGNING_SECRET must be at least 16 bytes")
        if not 0 <= self.trusted_proxy_hops <= 5:
            raise ConfigError(f"TRUSTED_PROXY_HOPS must be between 0 and 5, got {self.trusted_proxy_hops}")
        if not (self.database_url.startswith("sqlite") or self.database_url.startswith("postgresql")):
            raise ConfigError(f"DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL, got {self.database_url!r}")

    def with_overrides(self, **overrides) -> "Settings":
        settings = replace(self, **overrides)
        settings.check()
        return settings
