import re
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings, strategies as st

from engine.core.money import Money
from engine.core.signing import BadSignature, sign
from engine.messages import sms
from engine.messages.coupons import ALPHABET, check_coupon_format, coupon_code, normalize_coupon
from engine.messages.links import (
    LinkRewriter, list_unsubscribe_headers, read_click, read_unsubscribe, resolve_click, unsubscribe_url,
)
from engine.messages.render import (
    MessageContext, MessageTemplate, ProductView, TemplateError, format_money, render_message, with_opt_out,
)

SECRET = b"k" * 32
HOST = "t.shop-mail.example"
T0 = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
# A token is <payload>.<issued>.<mac>; the MAC is 16 bytes, 22 base64url characters.
TRACKED = re.compile(r"https://t\.shop-mail\.example/c/([A-Za-z0-9_\-]+\.[0-9a-z]+\.[A-Za-z0-9_\-]{22})")

EN = MessageContext("cust-1", "Acme & Sons", [
    ProductView("Green <Tea> & Honey", Money(1250, "USD"), "https://acme.example/p/tea?ref=1&utm=x", "https://cdn.acme.example/tea.jpg"),
    ProductView("Mug", Money(123456, "USD"), "https://acme.example/p/mug"),
], first_name="Ann", coupon="ACME7K2Q9")
ZH = MessageContext("客户-2", "茶叶铺", [
    ProductView("西湖龙井", Money(1200, "JPY"), "https://cha.example/商品/龙井", "https://cdn.cha.example/lj.jpg"),
], first_name=None, coupon=None)

EMAIL = MessageTemplate("welcome-back", "email",
    subject="{{ customer.first_name or 'Hi' }}, {{ merchant.name }} picked these",
    text="Hello {{ customer.first_name or 'there' }}\n{% for p in products %}- {{ p.title }}: {{ p.price }} {{ p.url }}\n{% endfor %}"
         "{% if coupon %}Code {{ coupon }}{% endif %}\nHelp: mailto:help@acme.example",
    html="<html><body><h1>{{ merchant.name }}</h1>{% for p in products %}"
         "<p><a href=\"{{ p.url }}\"><img src=\"{{ p.image_url or '' }}\">{{ p.title }}</a> {{ p.price }}</p>{% endfor %}"
         "<a href='tel:+15551234'>call</a> <a href=\"mailto:help@acme.example\">mail</a>"
         "<p><a href=\"{{ unsubscribe_url }}\">Stop these emails</a></p></body></html>")
SMS = MessageTemplate("sms-zh", "sms", text="【{{ merchant.name }}】{{ products[0].title }} 仅{{ products[0].price }}，点击{{ products[0].url }}查看")


def render(template, context, channel=None, **kw):
    return render_message(template, context, channel=channel or template.channel, send_id="snd_abc", tracking_host=HOST,
                          secret=SECRET, opt_out_text=kw.pop("opt_out_text", "Reply STOP to opt out"), now=T0, **kw)


class _Hrefs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        if tag == "a":
            self.hrefs.append(d.get("href"))
        if tag == "img":
            self.imgs.append(d.get("src"))


def hrefs(html):
    p = _Hrefs()
    p.feed(html)
    return p


# --- prices ----------------------------------------------------------------------------------

@pytest.mark.parametrize("money, text", [
    (Money(1250, "USD"), "$12.50"), (Money(123456, "USD"), "$1,234.56"), (Money(1200, "JPY"), "¥1,200"),
    (Money(5, "JPY"), "¥5"), (Money(990, "CNY"), "¥9.90"), (Money(-100, "EUR"), "-€1.00"),
    (Money(1250, "KWD"), "KWD 1.250"), (Money(100000000, "CHF"), "CHF 1,000,000.00"),
])
def test_prices_are_formatted_from_minor_units(money, text):
    assert format_money(money) == text


# --- email -----------------------------------------------------------------------------------

def test_email_renders_with_every_web_link_tracked_and_resolvable():
    msg = render(EMAIL, EN)
    assert msg.subject == "Ann, Acme & Sons picked these"
    page = hrefs(msg.html)
    # autoescaped in HTML, not in text
    assert "Green &lt;Tea&gt; &amp; Honey" in msg.html and "Green <Tea> & Honey: $12.50" in msg.text
    assert "Acme &amp; Sons" in msg.html
    assert "$1,234.56" in msg.text and "Code ACME7K2Q9" in msg.text
    targets = []
    for href in page.hrefs:
        if href.startswith(("tel:", "mailto:")) or href == msg.unsubscribe_url:
            continue
        m = TRACKED.fullmatch(href)
        assert m, href
        send_id, url = resolve_click(m.group(1), SECRET)
        assert send_id == "snd_abc"
        targets.append(url)
    assert targets == ["https://acme.example/p/tea?ref=1&utm=x", "https://acme.example/p/mug"]
    assert "tel:+15551234" in page.hrefs and "mailto:help@acme.example" in page.hrefs
    # images load from the shop, they are not clicks
    assert page.imgs == ["https://cdn.acme.example/tea.jpg", ""]
    text_targets = [resolve_click(t, SECRET)[1] for t in TRACKED.findall(msg.text)]
    assert text_targets == targets
    assert "mailto:help@acme.example" in msg.text
    # every tracked link has its own position
    positions = [read_click(t, SECRET).position for t in TRACKED.findall(msg.html + msg.text)]
    assert positions == list(range(4))
    assert msg.links == targets + targets


def test_no_untracked_web_link_is_left_in_the_email():
    msg = render(EMAIL, EN)
    for body in (msg.html, msg.text):
        for url in re.findall(r"https?://[^\s\"'<>]+", body):
            assert url.startswith(f"https://{HOST}/c/") or url == msg.unsubscribe_url or "cdn." in url


def test_email_has_one_click_unsubscribe_link_and_headers():
    msg = render(EMAIL, EN, unsubscribe_mailto="unsub@shop-mail.example")
    assert msg.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.headers["List-Unsubscribe"] == f"<{msg.unsubscribe_url}>, <mailto:unsub@shop-mail.example>"
    assert msg.unsubscribe_url.startswith(f"https://{HOST}/u/")
    assert msg.unsubscribe_url in hrefs(msg.html).hrefs   # the template placed it: kept, not tracked
    assert msg.html.count("/u/") == 1
    token = msg.unsubscribe_url.rsplit("/", 1)[1]
    assert read_unsubscribe(token, SECRET) == ("snd_abc", "cust-1")
    # the text part did not mention it: a line was added
    assert msg.text.endswith(f"Unsubscribe: {msg.unsubscribe_url}")


def test_an_email_template_that_forgets_the_unsubscribe_link_still_gets_one():
    t = MessageTemplate("bare", "email", subject="Hi", html="<html><body><p>Hello</p></body></html>")
    msg = render(t, EN, unsubscribe_label="Se désabonner")
    assert msg.html.endswith(f'<p><a href="{msg.unsubscribe_url}">Se désabonner</a></p></body></html>')
    assert msg.text is None and "List-Unsubscribe" in msg.headers


def test_unsubscribe_token_cannot_pass_as_a_click_token_and_vice_versa():
    unsub = unsubscribe_url(HOST, "snd_abc", "cust-1", SECRET).rsplit("/", 1)[1]
    with pytest.raises(BadSignature):
        resolve_click(unsub, SECRET)
    click = TRACKED.search(render(EMAIL, EN).html).group(1)
    with pytest.raises(BadSignature):
        read_unsubscribe(click, SECRET)


def test_tampered_click_token_is_refused():
    token = TRACKED.search(render(EMAIL, EN).html).group(1)
    body, issued, mac = token.split(".")
    forged = sign({"s": "snd_abc", "i": 0, "u": "https://evil.example/"}, b"x" * 32, purpose="click").split(".")
    for bad in (f"{forged[0]}.{issued}.{mac}", f"{body}.{issued}.{forged[2]}", token[:-1],
                token[:5] + ("B" if token[5] != "B" else "C") + token[6:]):
        with pytest.raises(BadSignature):
            resolve_click(bad, SECRET)
    with pytest.raises(BadSignature):
        resolve_click(token, b"other-secret-000000000000")


def test_a_signed_token_whose_target_is_not_a_web_url_is_not_followed():
    token = sign({"s": "snd_abc", "i": 0, "u": "javascript:alert(1)"}, SECRET, purpose="click")
    with pytest.raises(BadSignature):
        resolve_click(token, SECRET)


def test_list_unsubscribe_needs_https():
    with pytest.raises(ValueError):
        list_unsubscribe_headers("http://x.example/u/1")
    assert list_unsubscribe_headers("https://x.example/u/1") == {
        "List-Unsubscribe": "<https://x.example/u/1>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def test_subject_cannot_inject_a_header():
    t = MessageTemplate("inj", "email", subject="Hi {{ customer.external_id }}", text="x")
    msg = render(t, MessageContext("a\r\nBcc: victim@example.com", "M"))
    assert "\n" not in msg.subject and "\r" not in msg.subject


# --- link rewriting details -------------------------------------------------------------------

def rewriter():
    return LinkRewriter(send_id="snd_abc", tracking_host=HOST, secret=SECRET, now=T0)


@pytest.mark.parametrize("text, target, after", [
    ("See https://a.example/x.", "https://a.example/x", "."),
    ("(https://a.example/x)", "https://a.example/x", ")"),
    ("https://en.example/wiki/Tea_(drink), nice", "https://en.example/wiki/Tea_(drink)", ", nice"),
    ("点击https://cha.example/p/1查看", "https://cha.example/p/1", "查看"),
    ("去https://cha.example/p/1，谢谢", "https://cha.example/p/1", "，谢谢"),
    ("<https://a.example/?q=1&r=2>", "https://a.example/?q=1&r=2", ">"),
    ("HTTP://A.example/Path!", "HTTP://A.example/Path", "!"),
])
def test_text_links_end_where_the_url_ends(text, target, after):
    out = rewriter().text(text)
    m = TRACKED.search(out)
    assert resolve_click(m.group(1), SECRET)[1] == target
    assert out[m.end():].startswith(after)


def test_text_leaves_other_schemes_and_the_tracking_host_alone():
    r = rewriter()
    text = f"mailto:a@b.example tel:+8613800000000 ftp://x.example/ https://{HOST}/u/abc https:// done"
    assert r.text(text) == text
    assert r.position == 0


def test_html_rewriting_keeps_everything_but_the_hrefs():
    src = ("<!doctype html>\n<!-- https://comment.example/ -->\n<style>a{background:url(https://css.example/)}</style>"
           "<script>var u='<a href=\"https://js.example/\">'</script>\n"
           "<p title=\"https://attr.example/\">Text https://plain.example/ &amp; more</p>\n"
           "<A\n  HREF='https://a.example/?x=1&amp;y=2' Class=btn data-x>Go</A><area href=https://b.example/map />"
           "<a name=top>anchor</a><a href=\"#top\">top</a>")
    r = rewriter()
    out = r.html(src)
    assert r.targets == ["https://a.example/?x=1&y=2", "https://b.example/map"]
    for untouched in ("<!-- https://comment.example/ -->", "url(https://css.example/)", "href=\"https://js.example/\"",
                      "title=\"https://attr.example/\"", "Text https://plain.example/ &amp; more",
                      "<a name=top>anchor</a>", "<a href=\"#top\">top</a>", "<!doctype html>"):
        assert untouched in out
    assert 'class="btn" data-x>Go</A>' in out and out.count(f"https://{HOST}/c/") == 2
    assert re.search(rf'<area href="https://{re.escape(HOST)}/c/[^"]+" />', out)


def test_rewriting_twice_changes_nothing_more():
    r = rewriter()
    once = r.html('<a href="https://a.example/">a</a>')
    assert r.html(once) == once
    text = r.text("Go https://a.example/ now")
    assert r.text(text) == text
    assert r.position == 2


@pytest.mark.parametrize("tail", [".", "查看", "%E6%9F%A5", ")", "!!"])
def test_a_click_survives_text_that_a_phone_glued_to_the_link(tail):
    token = TRACKED.search(rewriter().text("https://a.example/p")).group(1)
    assert resolve_click(token + tail, SECRET) == ("snd_abc", "https://a.example/p")
    with pytest.raises(BadSignature):
        resolve_click(token[:-1] + tail, SECRET)


# --- SMS / MMS --------------------------------------------------------------------------------

def test_chinese_sms_with_jpy_price_gets_opt_out_and_counts_ucs2():
    msg = render(SMS, ZH, opt_out_text="回复TD退订")
    assert msg.text.startswith("【茶叶铺】西湖龙井 仅¥1,200，点击https://")
    assert msg.text.endswith("查看\n回复TD退订")
    assert msg.encoding == "UCS-2"
    assert msg.segments == sms.segments(msg.text) and msg.segments >= 2
    (token,) = TRACKED.findall(msg.text)
    assert resolve_click(token, SECRET) == ("snd_abc", "https://cha.example/%E5%95%86%E5%93%81/%E9%BE%99%E4%BA%95")
    assert msg.headers == {} and msg.unsubscribe_url is None


def test_english_sms_is_gsm7_and_the_wording_is_not_doubled():
    t = MessageTemplate("sms-en", "sms", text="{{ merchant.name }}: {{ products[1].title }} now {{ products[1].price }}. Reply stop to opt out")
    msg = render(t, EN)
    assert msg.text == "Acme & Sons: Mug now $1,234.56. Reply stop to opt out"
    assert (msg.encoding, msg.segments) == ("GSM-7", 1)


def test_sms_needs_opt_out_wording():
    with pytest.raises(ValueError):
        render(SMS, ZH, opt_out_text="  ")


def test_opt_out_is_appended_when_absent():
    assert with_opt_out("Hi", "Reply STOP to opt out") == "Hi\nReply STOP to opt out"
    assert with_opt_out("Hi. Reply STOP to opt out.", "Reply STOP to opt out") == "Hi. Reply STOP to opt out."
    assert with_opt_out("优惠 回复 TD 退订", "回复TD退订") == "优惠 回复 TD 退订"


def test_mms_carries_the_first_product_image():
    t = MessageTemplate("mms", "mms", subject="{{ merchant.name }}", text="{{ products[0].title }} {{ products[0].url }}")
    msg = render(t, ZH, opt_out_text="回复TD退订")
    assert msg.media == ["https://cdn.cha.example/lj.jpg"]
    assert msg.subject == "茶叶铺" and msg.text.endswith("回复TD退订")
    assert msg.segments is None


def test_template_must_match_the_channel():
    with pytest.raises(ValueError):
        render(SMS, ZH, channel="email")


# --- template errors --------------------------------------------------------------------------

def test_strict_undefined_names_the_variable_template_and_line():
    t = MessageTemplate("typo", "sms", text="Hi\n{{ customer.frist_name }}")
    with pytest.raises(TemplateError) as exc:
        render(t, EN)
    assert "frist_name" in str(exc.value) and "typo" in str(exc.value)
    assert exc.value.line == 2 and exc.value.part == "text"


def test_unknown_top_level_variable_is_an_error():
    t = MessageTemplate("typo2", "email", subject="{{ custmer.first_name }}", text="x")
    with pytest.raises(TemplateError, match="custmer"):
        render(t, EN)


def test_syntax_error_names_the_line():
    t = MessageTemplate("broken", "email", subject="ok", html="<p>\n\n{% for p in products %}{{ p.title }}</p>")
    with pytest.raises(TemplateError) as exc:
        render(t, EN)
    assert exc.value.template == "broken" and exc.value.part == "html" and exc.value.line == 3


@pytest.mark.parametrize("expr", [
    "''.__class__", "''.__class__.__mro__[1].__subclasses__()", "products.__class__", "customer.__init__",
    "(products|first).items.__globals__", "range.__self__",
])
def test_sandbox_blocks_dunder_access(expr):
    t = MessageTemplate("evil", "sms", text="{{ " + expr + " }}")
    with pytest.raises(TemplateError) as exc:
        render(t, EN)
    assert "evil" in str(exc.value)


@pytest.mark.parametrize("expr", ["products.append(1)", "customer.update({'a': 1})", "range(10**9)|list",
                                  "'x' * 100000000", "2 ** 64 ** 64 ** 64 ** 64",
                                  "1/0"])
def test_sandbox_blocks_mutation_and_runaway_work(expr):
    t = MessageTemplate("greedy", "sms", text="{{ " + expr + " }}")
    with pytest.raises(TemplateError):
        render(t, EN)


def test_money_filter():
    t = MessageTemplate("f", "sms", text="{{ products[0].price_money|money }}")
    assert render(t, EN).text.startswith("$12.50\n")
    with pytest.raises(TemplateError):
        render(MessageTemplate("f2", "sms", text="{{ 12.5|money }}"), EN)


# --- coupons ----------------------------------------------------------------------------------

def test_coupon_codes_are_unique_over_100k_sends_and_stable():
    codes = {coupon_code(f"snd_{i}", SECRET) for i in range(100_000)}
    assert len(codes) == 100_000
    assert coupon_code("snd_7", SECRET) == coupon_code("snd_7", SECRET)
    assert coupon_code("snd_7", SECRET) != coupon_code("snd_7", b"z" * 32)
    assert coupon_code("snd_7", SECRET, attempt=1) != coupon_code("snd_7", SECRET)


def test_coupon_format():
    code = coupon_code("snd_1", SECRET, prefix="VIP", length=10)
    assert code.startswith("VIP") and len(code) == 13
    assert set(code[3:]) <= set(ALPHABET) and not set(code[3:]) & set("ILOU")
    assert check_coupon_format(code, prefix="VIP")
    assert check_coupon_format(code.lower(), prefix="VIP")
    assert check_coupon_format(f"{code[:6]}-{code[6:]}", prefix="VIP")
    assert not check_coupon_format(code, prefix="VIP", length=11)
    assert not check_coupon_format("VIP!!!!!!!!!!", prefix="VIP")


@settings(max_examples=300)
@given(st.integers(0, 10**9), st.data())
def test_a_single_mistyped_character_fails_the_check(n, data):
    code = coupon_code(f"snd_{n}", SECRET)
    i = data.draw(st.integers(0, len(code) - 1))
    c = data.draw(st.sampled_from(ALPHABET))
    if c != code[i]:
        assert not check_coupon_format(code[:i] + c + code[i + 1:])


def test_lookalikes_are_read_as_the_alphabet_characters():
    assert normalize_coupon("o1-il l") == "01111"
    code = coupon_code("snd_2", SECRET)
    typed = code.replace("0", "O").replace("1", "I")
    assert check_coupon_format(typed) and normalize_coupon(typed) == code
