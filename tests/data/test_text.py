"""Tests for recsys_gnn.data.readers.text: HTML stripping, cleaning, junk titles, joining."""

from __future__ import annotations

import math

import pytest

from recsys_gnn.data.readers.text import (
    clean_text,
    first_sentence,
    is_junk_title,
    join_fields,
    strip_html,
    truncate_words,
    unique_texts,
)


def test_strip_html_removes_tags_scripts_comments_and_decodes_entities() -> None:
    s = 'Fun<br/>Times <i>weekly</i><script type="x">var a = "<b>";</script><!-- c --> &amp; more &#39;x&#39;'
    out = clean_text(strip_html(s))
    assert out == "Fun Times weekly & more 'x'"


def test_strip_html_keeps_text_that_only_looks_like_markup() -> None:
    assert strip_html("a < b and c > d") == "a < b and c > d"
    assert strip_html("I <3 tea") == "I <3 tea"


def test_strip_html_decodes_double_escaped_entities_and_escaped_markup() -> None:
    assert strip_html("Tom &amp;amp; Jerry") == "Tom & Jerry"
    assert clean_text("&lt;b&gt;Bold&lt;/b&gt; name") == "Bold name"


def test_clean_text_collapses_whitespace_and_removes_invisible_characters() -> None:
    s = "  Caf\u0065\u0301\u00a0 Sonore\t\r\n\u200bX\x00Y  "
    # NFC joins e + combining acute into é; NBSP/tab/newline collapse; zero-width vanishes; NUL becomes a space.
    assert clean_text(s) == "Café Sonore X Y"


def test_clean_text_accepts_lists_and_missing_values() -> None:
    assert clean_text(["One.", "", None, " Two "]) == "One. Two"
    assert clean_text(None) == ""
    assert clean_text(math.nan) == ""


def test_clean_text_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="expected text.*dict"):
        clean_text({"a": 1})
    with pytest.raises(TypeError, match="int"):
        clean_text(5)


@pytest.mark.parametrize(
    "title",
    [
        '<span class="a-size-medium a-color-secondary"',  # 3,153 rows of the real Magazine_Subscriptions meta
        ' Magazines" />',  # 10 rows of the same file
        '<div id="x">',
        "var x = 1; function(a) { return a; }",
        '{"title": "x"}',
        "https://www.amazon.com/dp/B000",
        "<br/><br/>",
        "&nbsp;&nbsp;",
    ],
)
def test_is_junk_title_detects_scraped_markup(title: str) -> None:
    assert is_junk_title(title)


@pytest.mark.parametrize(
    "title",
    [
        "Bop",
        "Tom &amp; Jerry",
        "<i>Time</i> Magazine",
        "Papa John&#39;s Pizza Gift Cards - E-mail Delivery",
        "Entertainment Weekly September 5 2014 {The Walking Dead Exclusive}",
        "Amazon.com Gift Cards",
        "R&B = Rhythm",
        "Size < 5 mm",
        "",
        "   ",
    ],
)
def test_is_junk_title_accepts_real_titles_and_treats_empty_as_missing(title: str) -> None:
    assert not is_junk_title(title)


def test_join_fields_skips_empty_fields_and_avoids_double_punctuation() -> None:
    assert join_fields("Duran Duran", None, "", "Tags: new wave, 80s") == "Duran Duran. Tags: new wave, 80s"
    assert join_fields("Sold out!", "Next") == "Sold out! Next"
    assert join_fields("Ends.", " <b>bold</b> ") == "Ends. bold"
    assert join_fields("a", "b", sep=" | ") == "a | b"
    assert join_fields(None, "  ") == ""


def test_unique_texts_cleans_and_deduplicates_in_order() -> None:
    values = ["Gift Cards", "Gift Cards", "</span></span></span>", "Home &amp; Garden", "", "Home & Garden"]
    assert unique_texts(values) == ["Gift Cards", "Home & Garden"]


def test_truncate_words_cuts_at_a_word_boundary() -> None:
    assert truncate_words("short", 10) == "short"
    assert truncate_words("alpha beta gamma", 12) == "alpha beta…"
    assert len(truncate_words("x" * 50, 10)) == 10
    with pytest.raises(ValueError, match="max_chars"):
        truncate_words("abc", 1)


def test_first_sentence_does_not_split_inside_words_like_domains() -> None:
    s = "Amazon.com Gift Cards never expire. They are redeemable storewide."
    assert first_sentence(s) == "Amazon.com Gift Cards never expire."
    assert first_sentence("No full stop here") == "No full stop here"
    long = "word " * 40 + "end."
    out = first_sentence(long, max_chars=30)
    assert out.endswith("…") and len(out) <= 30
