"""Tests for recsys_gnn.data.readers.amazon on a made-up fixture (official 2018 format) and on the real files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsys_gnn.data.errors import ConfigError, DatasetNotFoundError, SchemaError, TruncatedFileError
from recsys_gnn.data.readers.amazon import read_amazon_5core, read_amazon_ratings

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "amazon"
CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"
CAT = "Fixture_Magazines"
REVIEWS = f"{CAT}_5.json.gz"
META = f"meta_{CAT}.json.gz"
CSV = f"{CAT}.csv"


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "amazon"
    shutil.copytree(FIXTURE, root)
    return root


def _lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()


def _write_lines(path: Path, lines: list[str], trailing_newline: bool = True) -> None:
    path.write_bytes(gzip.compress(("\n".join(lines) + ("\n" if trailing_newline else "")).encode("utf-8")))


def _edit_json(path: Path, index: int, **changes: object) -> None:
    """Set (or, with value None, delete) fields of the ``index``-th JSON line of a gzip file."""
    lines = _lines(path)
    rec = json.loads(lines[index])
    for k, v in changes.items():
        if v is None:
            rec.pop(k, None)
        else:
            rec[k] = v
    lines[index] = json.dumps(rec)
    _write_lines(path, lines)


def _real_root() -> Path:
    raw = os.environ.get("RECSYS_GNN_RAW")
    if not raw:
        pytest.skip("RECSYS_GNN_RAW is not set: real Amazon 2018 files unavailable")
    root = Path(raw) / "amazon2018"
    if not (root / "meta_Gift_Cards.json.gz").is_file():
        pytest.skip(f"{root} does not hold the Amazon 2018 files")
    return root


def _report_total(report: dict[str, int], source: str, words: tuple[str, ...] = ("dropped",)) -> int:
    """Interaction rows dropped by the reader and attributed to ``source``."""
    return sum(n for k, n in report.items() if k.startswith(source) and all(w in k for w in words))


# ---- fixture: 5-core reviews ----------------------------------------------------------------------------------


def test_5core_fixture_interactions_and_drops() -> None:
    ds = read_amazon_5core(FIXTURE, CAT)
    it = ds.interactions
    assert ds.name == "amazon-fixture-magazines" and ds.has_ratings and ds.rating_scale == (1.0, 5.0)
    # 9 reviews - 1 exact duplicate - 1 of an item without metadata - 1 of an item without text.
    assert len(it) == 6
    assert set(it["item"]) == {"B0FIX00001", "B0FIX00002", "B0FIX00003", "B0FIX00006"}
    assert it["weight"].eq(1.0).all()
    row = it[(it["user"] == "AFIXUSER01") & (it["item"] == "B0FIX00002")]
    assert len(row) == 1 and row.iloc[0]["rating"] == 2.0 and row.iloc[0]["timestamp"] == 1078531200
    # The same user reviewing an item twice at different times is two events.
    assert len(it[(it["user"] == "AFIXUSER03") & (it["item"] == "B0FIX00003")]) == 2
    assert ds.report.as_dict() == {
        f"{REVIEWS}: exact duplicate interactions (dropped)": 1,
        f"{REVIEWS}: interactions of items without a row in {META} (dropped)": 1,
        f"{REVIEWS}: interactions of items whose metadata has no text (dropped)": 1,
        f"{META}: duplicate metadata rows for an asin (collapsed to the first)": 1,
        f"{META}: junk (markup) titles replaced by description/brand/category": 2,
        f"{META}: rows whose category list held sentences (moved to description)": 1,
    }


def test_item_texts_strip_html_and_handle_junk_titles() -> None:
    items = read_amazon_5core(FIXTURE, CAT).items.set_index("item")
    assert list(items.columns) == ["title", "text"]
    assert items.loc["B0FIX00001", "title"] == "Gadget Monthly"
    assert items.loc["B0FIX00001", "text"] == (
        "Gadget Monthly. Brand: Tech & Co. Category: Fixture Magazines > Technology > Computers & Internet. "
        "Every month, Gadget Monthly reviews the newest devices."
    )
    # Junk title: left out of the text, display title = first sentence of the description.
    assert items.loc["B0FIX00002", "title"] == "Garden Life brings seasonal planting ideas to your door."
    assert items.loc["B0FIX00002", "text"] == (
        "Brand: Green Media. Category: Fixture Magazines > Home & Garden. Garden Life brings seasonal planting "
        "ideas to your door. Each issue has twelve projects. --An Editor"
    )
    # Junk title and no description: the brand is the display title.
    assert items.loc["B0FIX00003", "title"] == "Cook Press"
    assert (
        items.loc["B0FIX00003", "text"]
        == "Brand: Cook Press. Category: Fixture Magazines > Cooking, Food & Wine"
    )
    # Repeated label and markup fragment dropped from categories; the sentence moved to the description.
    assert items.loc["B0FIX00006", "text"] == (
        "Puzzle Digest. Category: Fixture Magazines. Crosswords and logic puzzles. No expiration, no fees."
    )
    assert not items["text"].str.contains("<|&amp;|  ", regex=True).any()


def test_missing_files_name_the_file(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / META).unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"{META}: file not found"):
        read_amazon_5core(root, CAT)
    with pytest.raises(DatasetNotFoundError, match=r"Other_5\.json\.gz: file not found"):
        read_amazon_5core(root, "Other")


def test_bad_category_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="category"):
        read_amazon_5core(FIXTURE, "../Fixture_Magazines")


def test_missing_review_field_is_a_schema_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    lines = _lines(root / REVIEWS)
    rec = json.loads(lines[2])
    rec["rating"] = rec.pop("overall")
    lines[2] = json.dumps(rec)
    _write_lines(root / REVIEWS, lines)
    with pytest.raises(SchemaError, match=rf"{REVIEWS}: line 3: missing field\(s\) \['overall'\]"):
        read_amazon_5core(root, CAT)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("overall", 7.0, r"overall=7\.0 is not a rating; expected a number in \[1, 5\]"),
        ("overall", "five", r"overall='five' is not a rating"),
        ("unixReviewTime", "06 17, 2018", r"unixReviewTime='06 17, 2018' is not a timestamp"),
        ("reviewerID", "", r"reviewerID is empty"),
        ("asin", ["B0FIX00001"], r"asin=\['B0FIX00001'\] is not an id"),
    ],
)
def test_bad_review_values_name_line_field_and_value(
    tmp_path: Path, field: str, value: object, expected: str
) -> None:
    root = _copy(tmp_path)
    _edit_json(root / REVIEWS, 1, **{field: value})
    with pytest.raises(SchemaError, match=rf"{REVIEWS}: line 2: {expected}"):
        read_amazon_5core(root, CAT)


def test_not_utf8_line_is_a_schema_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    raw = gzip.decompress((root / REVIEWS).read_bytes()).replace(
        b"Good read.", "Gööd read.".encode("latin-1"), 1
    )
    (root / REVIEWS).write_bytes(gzip.compress(raw))
    with pytest.raises(SchemaError, match=rf"{REVIEWS}: line 1: byte .* is not valid UTF-8"):
        read_amazon_5core(root, CAT)


def test_truncated_gzip_stream_is_a_schema_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    data = (root / REVIEWS).read_bytes()
    (root / REVIEWS).write_bytes(data[: len(data) // 2])
    with pytest.raises(SchemaError, match=r"corrupt or truncated gzip"):
        read_amazon_5core(root, CAT)
    (root / REVIEWS).write_bytes(b"not a gzip file")
    with pytest.raises(SchemaError, match=r"corrupt or truncated gzip"):
        read_amazon_5core(root, CAT)


def test_cut_off_last_json_line_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    lines = _lines(root / REVIEWS)
    lines[-1] = lines[-1][:40]
    _write_lines(root / REVIEWS, lines, trailing_newline=False)
    with pytest.raises(
        TruncatedFileError, match=rf"{REVIEWS}: line {len(lines)}: the file ends without a line"
    ):
        read_amazon_5core(root, CAT)


def test_broken_json_inside_the_file_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    lines = _lines(root / REVIEWS)
    lines[3] = lines[3][:40]
    _write_lines(root / REVIEWS, lines)
    with pytest.raises(SchemaError, match=rf"{REVIEWS}: line 4: not valid JSON"):
        read_amazon_5core(root, CAT)


def test_meta_in_2023_format_is_a_schema_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    recs = [json.loads(x) for x in _lines(root / META)]
    new = [
        {
            "parent_asin": r["asin"],
            "title": r["title"],
            "store": r["brand"],
            "categories": r["category"],
            "description": r["description"],
        }
        for r in recs
    ]
    _write_lines(root / META, [json.dumps(r) for r in new])
    with pytest.raises(SchemaError, match=rf"{META}: line 1: missing field 'asin'"):
        read_amazon_5core(root, CAT)
    for r in new:
        r["asin"] = r.pop("parent_asin")
    _write_lines(root / META, [json.dumps(r) for r in new])
    with pytest.raises(SchemaError, match=r"field\(s\) \['brand', 'category'\] appear in no row"):
        read_amazon_5core(root, CAT)


def test_meta_field_of_wrong_type_is_a_schema_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit_json(root / META, 0, description={"text": "a dict"})
    with pytest.raises(SchemaError, match=rf"{META}: line 1 \(asin B0FIX00001\): expected text"):
        read_amazon_5core(root, CAT)


def test_conflicting_duplicate_meta_keeps_first_and_counts(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit_json(root / META, 3, title="Gadget Monthly (older row)")
    ds = read_amazon_5core(root, CAT)
    assert ds.items.set_index("item").loc["B0FIX00001", "title"] == "Gadget Monthly"
    assert ds.report.as_dict()[f"{META}: duplicate metadata rows with different text (first kept)"] == 1


# ---- fixture: ratings-only CSV --------------------------------------------------------------------------------


def test_ratings_fixture_interactions_and_drops() -> None:
    ds = read_amazon_ratings(FIXTURE, CAT)
    it = ds.interactions
    assert ds.name == "amazon-fixture-magazines-ratings" and ds.has_ratings
    # 7 rows - 1 exact duplicate - 1 of an item without metadata.
    assert len(it) == 5
    assert list(it.iloc[0][["user", "item", "rating", "timestamp"]]) == [
        "AFIXUSER01",
        "B0FIX00001",
        5.0,
        1529193600,
    ]
    assert set(ds.items["item"]) == {"B0FIX00001", "B0FIX00002", "B0FIX00006", "B0FIX0ZZZZ"}
    rep = ds.report.as_dict()
    assert rep[f"{CSV}: exact duplicate interactions (dropped)"] == 1
    assert rep[f"{CSV}: interactions of items without a row in {META} (dropped)"] == 1


def test_ratings_swapped_columns_are_detected(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    rows = [r.split(",") for r in (root / CSV).read_text().splitlines()]
    (root / CSV).write_text("".join(f"{u},{i},{r},{t}\n" for i, u, r, t in rows))
    with pytest.raises(SchemaError, match=r"expected the official column order item,user,rating,timestamp"):
        read_amazon_ratings(root, CAT)


def test_ratings_header_row_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / CSV).write_text("item,user,rating,timestamp\n" + (root / CSV).read_text())
    with pytest.raises(SchemaError, match=r"line 1: rating='rating' is not a rating.*has no header"):
        read_amazon_ratings(root, CAT)


def test_ratings_cut_off_last_row_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    text = (root / CSV).read_text()
    (root / CSV).write_text(text[: text.rindex("\n", 0, len(text) - 1)] + "\nB0FIX0ZZZZ,AFIXUSER0")
    with pytest.raises(TruncatedFileError, match=rf"{CSV}: line \d+: the file ends without a line ending"):
        read_amazon_ratings(root, CAT)
    (root / CSV).write_text(text[: text.rindex("\n", 0, len(text) - 1)] + "\nB0FIX0ZZZZ,AFIXUSER0\n")
    with pytest.raises(TruncatedFileError, match=rf"{CSV}: line \d+ \(the last\): 2 of 4 fields"):
        read_amazon_ratings(root, CAT)


def test_ratings_bad_row_inside_the_file_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    lines = (root / CSV).read_text().splitlines()
    lines[2] = lines[2] + ",extra"
    (root / CSV).write_text("\n".join(lines) + "\n")
    with pytest.raises(SchemaError, match=rf"{CSV}: line 3: expected 4 comma-separated fields"):
        read_amazon_ratings(root, CAT)
    lines = (root / CSV).read_text().splitlines()
    lines[2] = "B0FIX00002,AFIXUSER04,0.0,1400000100"
    (root / CSV).write_text("\n".join(lines) + "\n")
    with pytest.raises(SchemaError, match=rf"{CSV}: line 3: rating='0.0' is not a rating"):
        read_amazon_ratings(root, CAT)


def test_ratings_not_utf8_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / CSV).write_bytes((root / CSV).read_bytes() + b"B0FIX00001,A\xff,5.0,1\n")
    with pytest.raises(SchemaError, match=r"(?i)not valid UTF-8"):
        read_amazon_ratings(root, CAT)


# ---- configs -----------------------------------------------------------------------------------------------------

CONFIGS = {
    "amazon-gift-cards": (
        "read_amazon_5core",
        "Gift_Cards",
        ["Gift_Cards_5.json.gz", "meta_Gift_Cards.json.gz"],
    ),
    "amazon-magazine": (
        "read_amazon_5core",
        "Magazine_Subscriptions",
        ["Magazine_Subscriptions_5.json.gz", "meta_Magazine_Subscriptions.json.gz"],
    ),
    "amazon-magazine-ratings": (
        "read_amazon_ratings",
        "Magazine_Subscriptions",
        ["Magazine_Subscriptions.csv", "meta_Magazine_Subscriptions.json.gz"],
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_schema(name: str) -> None:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    func, category, files = CONFIGS[name]
    assert list(cfg) == ["name", "source", "files", "domain", "reader", "implicit_threshold", "kcore"]
    assert (cfg.name, cfg.source, cfg.domain) == (name, "amazon2018", "ecommerce")
    assert list(cfg.files) == files
    assert cfg.reader._target_ == f"recsys_gnn.data.readers.amazon.{func}" and cfg.reader._partial_
    assert cfg.reader.category == category and cfg.reader.dataset_name == name
    assert callable(instantiate(cfg.reader))


# ---- real files --------------------------------------------------------------------------------------------------


def test_real_gift_cards_5core_counts_and_texts() -> None:
    ds = instantiate(OmegaConf.load(CONF / "amazon-gift-cards.yaml").reader)(_real_root())
    it, rep = ds.interactions, ds.report.as_dict()
    assert ds.name == "amazon-gift-cards"
    # PROVENANCE.md: 2,972 reviews, 458 users, 148 items, all with metadata; 3 reviews are exact duplicates.
    assert len(it) + _report_total(rep, "Gift_Cards_5.json.gz") == 2_972
    assert rep["Gift_Cards_5.json.gz: exact duplicate interactions (dropped)"] == 3
    assert it["user"].nunique() == 458 and it["item"].nunique() == 148 == len(ds.items)
    assert set(it["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert it["timestamp"].between(1327968000, 1534982400).all()  # 2012-01-31 .. 2018-08-23
    items = ds.items.set_index("item")
    assert items.loc["B004LLIKVU", "text"] == "Amazon eGift Card. Category: Gift Cards"
    assert items.loc["B004Q7CK9M", "text"].startswith(
        "Amazon.com Gift Card in a Greeting Card (Various Designs). Brand: Amazon. Category: Gift Cards. "
    )
    assert not items["text"].str.contains("&amp;|&#39;|<span", regex=True).any()


def test_real_magazine_5core_counts_and_junk_titles() -> None:
    ds = instantiate(OmegaConf.load(CONF / "amazon-magazine.yaml").reader)(_real_root())
    it, rep = ds.interactions, ds.report.as_dict()
    src, meta = "Magazine_Subscriptions_5.json.gz", "meta_Magazine_Subscriptions.json.gz"
    # PROVENANCE.md: 2,375 reviews, 348 users, 157 items of which 151 have metadata.
    assert len(it) + _report_total(rep, src) == 2_375
    assert rep[f"{src}: exact duplicate interactions (dropped)"] == 47
    assert rep[f"{src}: interactions of items without a row in {meta} (dropped)"] == 61
    assert it["user"].nunique() == 348 and it["item"].nunique() == 151 == len(ds.items)
    # Only 3 of the 151 have a usable title; the other 148 titles are the '<span class=...' markup.
    assert rep[f"{meta}: junk (markup) titles replaced by description/brand/category"] == 148
    items = ds.items.set_index("item")
    assert items.loc["B00005N7P0", "title"] == "MAXIMUM PC is the ultimate upgrade for the savvy PC owners."
    assert "tips & techniques" in items.loc["B00005N7P0", "text"]
    assert not items["title"].str.contains("<|/>|class=", regex=True).any()
    assert not items["text"].str.contains("<i>|<span|&amp;", regex=True).any()


def test_real_magazine_ratings_csv_counts() -> None:
    ds = instantiate(OmegaConf.load(CONF / "amazon-magazine-ratings.yaml").reader)(_real_root())
    it, rep = ds.interactions, ds.report.as_dict()
    src = "Magazine_Subscriptions.csv"
    # PROVENANCE.md: 89,689 ratings, 88,468 distinct tuples, 2,428 items of which 2,320 have metadata.
    assert len(it) + _report_total(rep, src) == 89_689
    assert rep[f"{src}: exact duplicate interactions (dropped)"] == 89_689 - 88_468
    assert it["item"].nunique() == 2_320 == len(ds.items)
    assert it["rating"].between(1, 5).all()
    # Every review of the official 5-core is in the ratings file.
    five = read_amazon_5core(_real_root(), "Magazine_Subscriptions").interactions
    key = ["user", "item", "rating", "timestamp"]
    assert len(five.merge(it[key].drop_duplicates(), on=key)) == len(five)
