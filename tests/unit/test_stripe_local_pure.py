"""Pure pieces of the local Stripe server: form decoding, search queries, webhook signatures."""
from __future__ import annotations

import json
import time

import pytest
import stripe

from billing.stripe_local.errors import StripeApiError
from billing.stripe_local.formdata import metadata, parse_form
from billing.stripe_local.resources import _parse_query
from billing.stripe_local.webhooks import sign


def test_parse_form_nests_dicts_and_indexed_lists():
    raw = ("customer=cus_1&metadata[invoice_public_id]=inv_1&metadata[note]=a%26b"
           "&lines[1][amount]=20&lines[0][amount]=10&lines[0][type]=custom_line_item&auto_advance=false")
    assert parse_form(raw) == {
        "customer": "cus_1", "metadata": {"invoice_public_id": "inv_1", "note": "a&b"},
        "lines": [{"amount": "10", "type": "custom_line_item"}, {"amount": "20"}], "auto_advance": "false"}


def test_parse_form_matches_what_the_stripe_library_sends():
    from urllib.parse import urlencode
    from stripe._encode import _api_encode
    params = {"metadata": {"k": "v"}, "lines": [{"type": "x", "amount": -5}], "flag": True}
    assert parse_form(urlencode(list(_api_encode(params)))) == {
        "metadata": {"k": "v"}, "lines": [{"type": "x", "amount": "-5"}], "flag": "true"}


def test_metadata_merges_and_unsets_like_stripe():
    assert metadata({"metadata": {"a": "1", "b": ""}}, {"b": "2", "c": "3"}) == {"a": "1", "c": "3"}
    assert metadata({"metadata": ""}, {"b": "2"}) == {}
    with pytest.raises(StripeApiError) as exc:
        metadata({"metadata": {"k" * 41: "v"}})
    assert exc.value.status == 400 and exc.value.param.startswith("metadata[")


def test_search_query_subset():
    predicates, joiner = _parse_query("metadata['merchant_public_id']:'mer_1' AND email:'a@b.c'")
    obj = {"metadata": {"merchant_public_id": "mer_1"}, "email": "a@b.c"}
    assert joiner == "AND" and all(p(obj) for p in predicates)
    assert not predicates[0]({"metadata": {"merchant_public_id": "mer_2"}})
    with pytest.raises(StripeApiError):
        _parse_query("metadata['x'] = 1")


def test_signature_is_accepted_by_the_stripe_library_and_bound_to_the_payload():
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid",
                          "data": {"object": {"id": "in_1", "object": "invoice"}}}).encode()
    header = sign(payload, "whsec_abc", int(time.time()))
    assert stripe.Webhook.construct_event(payload, header, "whsec_abc").type == "invoice.paid"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload + b" ", header, "whsec_abc")
    stale = sign(payload, "whsec_abc", int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError):  # older than the 300 s tolerance: a replay
        stripe.Webhook.construct_event(payload, stale, "whsec_abc")
