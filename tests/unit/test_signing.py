from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from engine.core.signing import BadSignature, Expired, sign, verify

SECRET = b"s" * 32
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_round_trip_any_json_payload_and_token_is_url_safe(payload):
    token = sign(payload, SECRET, purpose="click", now=T0)
    assert verify(token, SECRET, purpose="click") == payload
    assert all(c.isalnum() or c in "-_." for c in token)


def test_same_payload_same_second_gives_the_same_token():
    a = sign({"s": "snd_1", "i": 0}, SECRET, purpose="click", now=T0)
    assert a == sign({"i": 0, "s": "snd_1"}, SECRET, purpose="click", now=T0)


def test_purpose_is_bound_into_the_mac():
    token = sign({"s": "snd_1", "c": "cust-9"}, SECRET, purpose="unsubscribe", now=T0)
    with pytest.raises(BadSignature):
        verify(token, SECRET, purpose="click")
    assert verify(token, SECRET, purpose="unsubscribe") == {"s": "snd_1", "c": "cust-9"}


def test_wrong_secret_is_refused():
    token = sign({"a": 1}, SECRET, purpose="click", now=T0)
    with pytest.raises(BadSignature):
        verify(token, b"t" * 32, purpose="click")


@given(st.data())
def test_any_single_character_change_is_refused(data):
    token = sign({"s": "snd_1", "u": "https://shop.example/p/1"}, SECRET, purpose="click", now=T0)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from("AQgw09-_.x"))
    tampered = token[:i] + c + token[i + 1:]
    if tampered != token:
        with pytest.raises(BadSignature):
            verify(tampered, SECRET, purpose="click")


@pytest.mark.parametrize("junk", ["", "abc", "a.b", "a.b.c.d", "..", "é.é.é", "x" * 10_000, None, 12])
def test_malformed_tokens_are_refused(junk):
    with pytest.raises(BadSignature):
        verify(junk, SECRET, purpose="click")


def test_a_forged_payload_with_a_reused_mac_is_refused():
    body, issued, mac = sign({"u": "https://shop.example/"}, SECRET, purpose="click", now=T0).split(".")
    evil, _, _ = sign({"u": "https://evil.example/"}, SECRET, purpose="click", now=T0).split(".")
    with pytest.raises(BadSignature):
        verify(f"{evil}.{issued}.{mac}", SECRET, purpose="click")


def test_max_age():
    token = sign({"a": 1}, SECRET, purpose="click", now=T0)
    assert verify(token, SECRET, purpose="click", max_age=60, now=T0 + timedelta(seconds=60)) == {"a": 1}
    with pytest.raises(Expired):
        verify(token, SECRET, purpose="click", max_age=timedelta(minutes=1), now=T0 + timedelta(seconds=61))
    # Expired is a BadSignature: "can I trust this?" is one except clause.
    with pytest.raises(BadSignature):
        verify(token, SECRET, purpose="click", max_age=0, now=T0 + timedelta(seconds=1))


def test_an_edited_issue_time_is_refused_rather_than_accepted_as_fresh():
    body, issued, mac = sign({"a": 1}, SECRET, purpose="click", now=T0).split(".")
    fresh = sign({"a": 1}, SECRET, purpose="click", now=T0 + timedelta(days=30)).split(".")[1]
    with pytest.raises(BadSignature) as exc:
        verify(f"{body}.{fresh}.{mac}", SECRET, purpose="click", max_age=60, now=T0 + timedelta(days=30))
    assert not isinstance(exc.value, Expired)


def test_configuration_slips_are_refused():
    with pytest.raises(ValueError):
        sign({}, b"short", purpose="click")
    with pytest.raises(ValueError):
        sign({}, "s" * 32, purpose="click")  # text, not bytes
    with pytest.raises(ValueError):
        sign({}, SECRET, purpose="Click|x")
    with pytest.raises(TypeError):
        sign(["not", "a", "dict"], SECRET, purpose="click")
    with pytest.raises(ValueError):
        sign({}, SECRET, purpose="click", now=datetime(2026, 1, 1))  # naive
