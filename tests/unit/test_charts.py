"""The server-drawn charts: valid SVG, a title that summarises the data, a legend, the values
drawn to scale, and a message instead of an empty plot."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from leadwatch.web import charts, charts_time

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> Element:
    # Our own output carries no namespace; give it one so the tags read like any SVG's.
    root: Element = ElementTree.fromstring(svg.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None and title.get("id") == root.get("aria-labelledby")
    return root


def texts(root: Element) -> list[str]:
    return [node.text or "" for node in root.iter(f"{SVG}text")]


def marks(root: Element, tag: str) -> dict[str, Element]:
    """The ``tag`` elements that carry a tooltip (a title of their own), by that tooltip."""
    found = {}
    for node in root.iter(f"{SVG}{tag}"):
        tooltip = node.find(f"{SVG}title")
        if tooltip is not None:
            found[tooltip.text or ""] = node
    return found


def test_stacked_columns_stack_each_bucket_to_scale_with_a_legend() -> None:
    svg = charts_time.stacked_columns(
        "Escalations started per day, by level",
        ["02 Jun", "03 Jun", "04 Jun"],
        {"critical": [2, 0, 1], "high": [1, 3, 0]},
        charts.COLORS,
    )
    root = parse(svg)
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == (
        "Escalations started per day, by level: 7 in all; critical 3, high 4; most in 02 Jun (3)"
    )
    bars = marks(root, "rect")
    assert sorted(bars) == [
        "02 Jun: critical 2",
        "02 Jun: high 1",
        "03 Jun: high 3",
        "04 Jun: critical 1",
    ]
    assert bars["02 Jun: critical 2"].get("fill") == charts.COLORS["critical"]
    # The axis ends at 4 (3 rounded up to 1, 2, 4, 6 or 8): 3 of 4 is three times 1 of 4.
    full = float(bars["03 Jun: high 3"].get("height") or 0)
    assert full == 3 * float(bars["04 Jun: critical 1"].get("height") or 0) > 0
    # The high part of 2 Jun sits on top of its critical part.
    lower, upper = bars["02 Jun: critical 2"], bars["02 Jun: high 1"]
    assert float(upper.get("y") or 0) + float(upper.get("height") or 0) == float(
        lower.get("y") or 0
    )
    labels = texts(root)
    assert {"critical", "high"} <= set(labels)  # the legend
    assert {"0", "2", "4"} <= set(labels)  # the axis
    assert {"02 Jun", "03 Jun", "04 Jun"} <= set(labels)
    assert "width:100%" in (root.get("style") or "") and root.get("viewBox")  # it scales


def test_many_buckets_label_only_some_of_them() -> None:
    labels = [f"day {n}" for n in range(1, 91)]
    root = parse(charts_time.stacked_columns("Per day", labels, {"sms": [1.0] * 90}))
    shown = [text for text in texts(root) if text in labels]
    assert 3 <= len(shown) <= 15 and shown[0] == "day 1"  # readable, not 90 labels on top
    assert len(marks(root, "rect")) == 90


def test_no_data_draws_a_message_not_an_empty_plot() -> None:
    root = parse(
        charts_time.stacked_columns("Escalations started per day", ["02 Jun"], {"high": [0]})
    )
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == "Escalations started per day: no escalations in this window"
    assert "no escalations in this window" in texts(root)
    empty = parse(
        charts_time.stacked_columns("Dead", [], {}, empty="no dead letters in this window")
    )
    assert "no dead letters in this window" in texts(empty)
    line = parse(charts_time.line("Success rate per day", [("02 Jun", None)]))
    assert "no escalations decided in this window" in texts(line)


def test_a_line_breaks_where_a_bucket_has_no_value() -> None:
    points = [("01 Jun", 0.5), ("02 Jun", 1.0), ("03 Jun", None), ("04 Jun", 0.25)]
    root = parse(charts_time.line("Success rate per day", points))
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == (
        "Success rate per day: success rate lowest 25% (04 Jun), highest 100% (02 Jun), "
        "latest 25% (04 Jun); 3 of 4 with data"
    )
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 1 and len((lines[0].get("points") or "").split()) == 2
    assert list(marks(root, "circle")) == [
        "01 Jun: 50%",
        "02 Jun: 100%",
        "04 Jun: 25%",
    ]
    ys = [float(dot.get("cy") or 0) for dot in root.iter(f"{SVG}circle")]
    assert ys[1] < ys[0] < ys[2]  # higher is better, drawn higher up
    assert {"0%", "50%", "100%", "success rate"} <= set(texts(root))


def test_text_from_the_data_is_escaped() -> None:
    root = parse(charts_time.stacked_columns("A <b> & c", ["x<y"], {"<script>": [1]}))
    title = root.find(f"{SVG}title")
    assert title is not None and (title.text or "").startswith("A <b> & c: 1 in all; <script> 1")
