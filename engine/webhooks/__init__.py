"""Public endpoints that providers call: SMS delivery receipts and inbound replies (our HTTP
gateway and Twilio), verified by signature, recorded once, then applied. Also the consent writes
shared with the one-click unsubscribe page (``engine.messages.web``)."""
