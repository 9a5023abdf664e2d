"""``python -m billing.stripe_local --port 12111 --webhook-url URL --webhook-secret whsec_...``"""
from __future__ import annotations

import argparse

from billing.stripe_local.local import DEFAULT_API_KEY, LocalStripe


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m billing.stripe_local",
                                     description="A local Stripe-speaking HTTP server (test mode only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY,
                        help="the only key accepted (default %(default)s); '' accepts any sk_test_ key")
    parser.add_argument("--webhook-url", help="POST signed events here")
    parser.add_argument("--webhook-secret", help="signing secret for --webhook-url (whsec_...)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    server = LocalStripe(host=args.host, port=args.port, api_key=args.api_key or None,
                         webhook_url=args.webhook_url, webhook_secret=args.webhook_secret,
                         verbose=args.verbose)
    print(f"local Stripe on {server.url} (api key {server.api_key})", flush=True)
    if server.webhook_secret:
        print(f"webhooks to {args.webhook_url}, signing secret {server.webhook_secret}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
