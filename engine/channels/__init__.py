"""Message channels: one small interface (``Channel.send``) and its adapters.

- ``smtp.SmtpChannel``: email over real SMTP.
- ``http_gateway.HttpSmsGateway``: SMS/MMS through a generic JSON gateway with idempotency keys.
- ``twilio_channel.TwilioChannel``: SMS/MMS through Twilio's Messages API (the ``twilio`` library).
- ``testing``: local servers that speak those protocols, for tests and the demo.

``base.send_with_retries`` retries transient failures only; what the dispatcher must do with an
"unknown" outcome depends on the channel (see ``base.SAFE_TO_RETRY_UNKNOWN``).
"""
from engine.channels.base import (
    ACCEPTED,
    FAILED_PERMANENT,
    FAILED_TRANSIENT,
    UNKNOWN,
    Channel,
    DeliveryReceipt,
    OutboundMessage,
    SendResult,
    send_with_retries,
)

__all__ = [
    "ACCEPTED", "FAILED_PERMANENT", "FAILED_TRANSIENT", "UNKNOWN",
    "Channel", "DeliveryReceipt", "OutboundMessage", "SendResult", "send_with_retries",
]
