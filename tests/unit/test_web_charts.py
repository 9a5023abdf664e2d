"""The SVG chart helpers: pure functions, so checked as strings and parsed XML."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from engine.web.charts import column_chart, hbar_chart, nice_ticks

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML or it raises


def test_nice_ticks_start_at_zero_and_cover_the_maximum():
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(1000) == [0, 250, 500, 750, 1000]
    assert nice_ticks(933) == [0, 250, 500, 750, 1000]
    ticks = nice_ticks(7)
    assert ticks[0] == 0 and ticks[-1] >= 7 and len(ticks) <= 6
    for top in (3, 42, 99_999, 1_234_567):
        t = nice_ticks(top)
        assert t[-1] >= top and t[0] == 0 and all(b > a for a, b in zip(t, t[1:]))


def test_hbar_widths_are_proportional_and_labels_escaped():
    svg = hbar_chart([("sent <b>", 100), ("failed & co", 50), ("zero", 0)], label="Sends \"by\" status", width=520)
    root = _parse(svg)
    bars = [r for r in root.iter(f"{NS}rect")]
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] == 520 - 150 - 90 and widths[1] == widths[0] / 2 and widths[2] == 0
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "sent <b>" in texts and "failed & co" in texts     # escaped in the markup, intact as text
    assert "<b>" not in svg.replace("&lt;b&gt;", "")
    assert root.get("aria-label") == 'Sends "by" status'


def test_hbar_formats_values_with_the_given_function():
    svg = hbar_chart([("a", 1234)], label="x", value_text=lambda v: f"{v:,}")
    assert "1,234" in svg


def test_empty_charts_still_render():
    for svg in (hbar_chart([], label="none"), column_chart([], label="none")):
        assert _parse(svg).tag == f"{NS}svg" and "—" in svg


def test_columns_share_a_zero_based_axis():
    svg = column_chart([("11-01", 0), ("11-02", 50), ("11-03", 100)], label="per day", height=200)
    root = _parse(svg)
    bars = [r for r in root.iter(f"{NS}rect")]
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == 0 and abs(heights[2] - 2 * heights[1]) < 0.2
    # every bar ends on the baseline
    bottoms = {round(float(b.get("y")) + float(b.get("height")), 1) for b in bars}
    assert len(bottoms) == 1


def test_columns_thin_out_their_labels():
    points = [(f"d{i}", i) for i in range(30)]
    svg = column_chart(points, label="30 days", max_labels=8)
    labels = [t.text for t in _parse(svg).iter(f"{NS}text") if t.text and t.text.startswith("d")]
    assert 1 < len(labels) <= 8 and labels[0] == "d0"
