import pytest
from hypothesis import given, strategies as st

from engine.messages.sms import GSM7, GSM7_BASIC, GSM7_EXTENSION, UCS2, SmsCount, count, encoding_for, segments, sms_cost

basic = st.sampled_from(sorted(GSM7_BASIC))
extension = st.sampled_from(sorted(GSM7_EXTENSION))
gsm_text = st.text(alphabet=st.one_of(basic, extension), max_size=700)
any_text = st.text(max_size=500)
EMOJI = "\U0001F600"


def test_tables_have_the_standard_sizes():
    assert len(GSM7_BASIC) == 127           # 128 codes minus ESC
    assert GSM7_EXTENSION == set("\f^{}\\[~]|€")
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize("text, encoding", [
    ("Hello, world! @£$¥ èéùìò Ç Øø Åå ΔΦΓΛΩΠΨΣΘΞ ÆæßÉ ¤ ¡¿ ÄÖÑÜ§ äöñüà", GSM7),
    ("{brace} [square] ~tilde \\ | ^ €", GSM7),
    ("回复TD退订", UCS2),
    ("退订", UCS2),
    ("Reply STOP to opt out", GSM7),
    ("Smart quote ’", UCS2),
    ("ç lower cedilla is not GSM", UCS2),
    ("emoji " + EMOJI, UCS2),
    ("", GSM7),
])
def test_encoding(text, encoding):
    assert encoding_for(text) == encoding


@pytest.mark.parametrize("n, expected", [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (153 * 3, 3), (153 * 3 + 1, 4)])
def test_gsm7_boundaries(n, expected):
    assert segments("a" * n) == expected


@pytest.mark.parametrize("n, expected", [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (67 * 5, 5), (67 * 5 + 1, 6)])
def test_ucs2_boundaries(n, expected):
    assert segments("订" * n) == expected


def test_extension_characters_take_two_septets():
    assert count("€" * 80) == SmsCount(GSM7, 160, 1)
    assert segments("€" * 80 + "a") == 2
    assert segments("a" * 159 + "{") == 2   # 161 septets


def test_an_escape_pair_is_not_split_across_parts():
    # 152 septets, then "€" (2): it does not fit in the first part's last septet.
    text = "a" * 152 + "€" + "a" * 152
    assert count(text).units == 306
    # 306 septets would fit in 2 × 153 if split anywhere; unsplit, the first part holds 152.
    assert segments(text) == 3


def test_a_surrogate_pair_is_not_split_across_parts():
    assert count(EMOJI).units == 2
    assert segments(EMOJI * 35) == 1        # 70 units
    assert segments(EMOJI * 35 + "a") == 2
    text = "订" * 66 + EMOJI + "订" * 66    # 134 units, but the emoji cannot straddle parts
    assert count(text).units == 134
    assert segments(text) == 3


def test_one_chinese_character_turns_the_whole_message_into_ucs2():
    text = "a" * 100
    assert segments(text) == 1
    assert segments(text + "订") == 2  # 101 UCS-2 units > 70


@given(any_text, any_text)
def test_segments_never_decrease_when_text_is_appended(a, b):
    assert segments(a + b) >= segments(a)


@given(gsm_text)
def test_gsm7_segments_match_the_arithmetic_when_no_escape_is_near_a_boundary(text):
    plain = text.translate({ord(c): "a" for c in GSM7_EXTENSION})
    n = len(plain)
    expected = 1 if n <= 160 else -(-n // 153)
    assert count(plain) == SmsCount(GSM7, n, expected)


@given(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=400))
def test_chinese_text_is_ucs2_with_70_and_67(text):
    n = len(text)
    assert encoding_for(text) == UCS2
    assert segments(text) == (1 if n <= 70 else -(-n // 67))


@given(gsm_text)
def test_gsm7_is_never_dearer_than_the_same_text_in_ucs2(text):
    # Sanity of the tables and capacities: forcing UCS-2 (one Chinese char) can only add cost.
    assert segments(text) <= segments(text + "订")


@given(st.text(max_size=300), st.integers(0, 10_000))
def test_cost_is_segments_times_the_segment_price(text, price):
    assert sms_cost(text, price) == segments(text) * price


def test_cost_refuses_anything_but_int_minor_units():
    for bad in (1.5, -1, True, "3"):
        with pytest.raises(ValueError):
            sms_cost("hi", bad)


def test_empty_text_is_one_segment():
    assert segments("") == 1
