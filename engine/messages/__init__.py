"""Building messages: templates rendered in a sandbox (``render``), tracked and unsubscribe
links (``links``), per-send coupon codes (``coupons``) and SMS segment counting (``sms``)."""
