"""MIND reader on hand-made fixtures in the official format (tests/fixtures/mind/{train,dev})."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from recsys_gnn.data.errors import ConfigError, DatasetNotFoundError, SchemaError
from recsys_gnn.data.readers.mind import read_behaviors, read_mind, read_news
from recsys_gnn.data.schema import IMPRESSION_COLUMNS, INTERACTION_COLUMNS, ITEM_COLUMNS, DropReport

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "mind"


def _ts(text: str) -> int:
    return int(datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=UTC).timestamp())


def _copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "mind"
    shutil.copytree(FIXTURE, root)
    return root


def _edit_line(path: Path, line_no: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[line_no - 1] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def _events(ds) -> set[tuple[str, str, str, int]]:
    df = ds.interactions.assign(split=ds.split)
    return set(zip(df["user"], df["item"], df["split"], df["timestamp"], strict=True))


def test_read_behaviors_parses_every_field() -> None:
    report = DropReport()
    imp, hist = read_behaviors(FIXTURE / "train" / "behaviors.tsv", "train", report)
    assert list(imp.columns) == list(IMPRESSION_COLUMNS)
    assert len(imp) == len(hist) == 6
    first = imp.iloc[0]
    assert first["impression_id"] == "1" and first["user"] == "U1"
    assert first["candidates"] == ["N3", "N4", "N5"] and first["labels"] == [1, 0, 0]
    assert set(imp["split"]) == {"train"}
    assert hist["history"].iloc[0] == ("N1", "N2")
    assert hist["history"].iloc[2] == ()  # U2 has an empty click history
    assert hist["timestamp"].iloc[0] == _ts("11/11/2019 9:05:58 AM")
    # 12 AM is midnight: 00:30 of Nov 14
    assert hist["timestamp"].iloc[4] == int(datetime(2019, 11, 14, 0, 30, tzinfo=UTC).timestamp())
    assert hist["timestamp"].iloc[2] == int(datetime(2019, 11, 11, 15, 28, 58, tzinfo=UTC).timestamp())
    assert list(hist["line"]) == [1, 2, 3, 4, 5, 6]
    assert report.as_dict() == {}


def test_read_news_keeps_text_columns() -> None:
    news = read_news(FIXTURE / "train" / "news.tsv", DropReport())
    assert len(news) == 8
    row = news.set_index("item").loc["N7"]
    assert row["title"] == '"The Crown" season 3 review'  # quotes are text, not CSV quoting
    assert row["category"] == "tv" and row["subcategory"] == "tvnews"
    assert news.set_index("item").loc["N4", "abstract"] == ""


def test_read_mind_whole_path() -> None:
    ds = read_mind(FIXTURE, name="mind-fixture")
    assert ds.name == "mind-fixture" and not ds.has_ratings
    assert list(ds.interactions.columns) == list(INTERACTION_COLUMNS)
    assert list(ds.items.columns) == list(ITEM_COLUMNS)
    assert ds.interactions["rating"].isna().all()
    # U1 clicks N1 in the dev folder although N1 is in U1's history: one interaction of 2 clicks
    weights = ds.interactions.set_index(["user", "item"])["weight"]
    assert weights[("U1", "N1")] == 2.0
    assert (weights.drop(("U1", "N1")) == 1.0).all()

    t = _ts
    expected = {
        # history clicks, once per user, at the first row showing them
        ("U1", "N1", "train", t("11/11/2019 9:05:58 AM")),
        ("U1", "N2", "train", t("11/11/2019 9:05:58 AM")),
        ("U3", "N2", "train", t("11/14/2019 12:30:00 AM")),
        ("U3", "N7", "train", t("11/14/2019 12:30:00 AM")),
        ("U4", "N3", "train", t("11/15/2019 9:00:00 PM")),  # history seen only in the dev folder
        # clicked train-folder impressions
        ("U1", "N3", "train", t("11/11/2019 9:05:58 AM")),
        ("U1", "N6", "train", t("11/12/2019 10:11:02 AM")),
        ("U2", "N5", "train", t("11/11/2019 3:28:58 PM")),
        ("U3", "N8", "train", t("11/14/2019 12:30:00 AM")),  # U3's only impression stays train
        # each user's last train-folder impression (U1: 11/14 1 PM, U2: 11/13) is val
        ("U1", "N7", "val", t("11/14/2019 1:00:00 PM")),
        ("U1", "N5", "val", t("11/14/2019 1:00:00 PM")),
        ("U2", "N7", "val", t("11/13/2019 8:00:00 AM")),
        # dev folder clicks are test; U1's click on N1 is already in its history and is dropped
        ("U1", "N10", "test", t("11/15/2019 8:55:22 AM")),
        ("U4", "N9", "test", t("11/15/2019 9:00:00 PM")),
    }
    assert _events(ds) == expected
    assert len(ds.interactions) == len(expected)
    # U1 history shown on 4 rows (2 news each) = 8 entries -> 2; U3 and U4 histories appear once: 8 - 2 = 6
    assert ds.report.as_dict() == {
        "mind-fixture: click-history entry repeated (same user and news on several impression rows), "
        "collapsed": 6,
        "mind-fixture: repeated click on a news the user already clicked, merged into the earliest "
        "(weight = clicks)": 1,
    }

    imp = ds.impressions.set_index("impression_id")
    assert list(imp.index) == [f"train/{i}" for i in range(1, 7)] + ["dev/1", "dev/2", "dev/3"]
    assert imp["split"].to_dict() == {
        "train/1": "train",
        "train/2": "train",
        "train/3": "train",
        "train/4": "val",
        "train/5": "train",
        "train/6": "val",
        "dev/1": "test",
        "dev/2": "test",
        "dev/3": "test",
    }
    assert imp.loc["dev/1", "candidates"] == ["N9", "N10", "N1"]
    assert imp.loc["dev/1", "labels"] == [0, 1, 1]
    assert imp.loc["dev/3", "labels"] == [0, 0]  # no click: kept, the metrics skip it

    items = ds.items.set_index("item")
    assert len(items) == 11  # N1, N3 repeated in the dev news.tsv are read once
    assert items.loc["N1", "text"] == (
        "PGA Tour winners. A gallery of recent winners on the PGA Tour. Category: sports / golf"
    )
    assert items.loc["N4", "text"] == "Five weeknight pasta recipes. Category: foodanddrink / recipes"
    assert items.loc["N7", "title"] == '"The Crown" season 3 review'
    referenced = set(ds.interactions["item"]) | {c for cs in ds.impressions["candidates"] for c in cs}
    assert referenced <= set(items.index)


def test_missing_file_raises_dataset_not_found(tmp_path: Path) -> None:
    root = _copy_fixture(tmp_path)
    (root / "dev" / "news.tsv").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"dev/news\.tsv"):
        read_mind(root)
    with pytest.raises(DatasetNotFoundError, match="valid/behaviors.tsv"):
        read_mind(root, test_dir="valid")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "2\tU1\t11/12/2019 10:11:02 AM\tN1 N2\tN4-0 N6-2",
            r"behaviors\.tsv:2: .*'N6-2' is not 'newsid-label'",
        ),
        ("2\tU1\t11/12/2019 10:11:02 AM\tN1 N2\tN4 N6", r"behaviors\.tsv:2: .*unlabelled impressions"),
        (
            "2\tU1\t11/12/2019 10:11:02 AM\tN4-0 N6-1",
            r"behaviors\.tsv:2: found 4 tab-separated fields; expected 5",
        ),
        (
            "2\tU1\t2019-11-12 10:11:02\tN1 N2\tN4-0 N6-1",
            r"behaviors\.tsv:2: time '2019-11-12 10:11:02' is not",
        ),
        (
            "1\tU1\t11/12/2019 10:11:02 AM\tN1 N2\tN4-0 N6-1",
            r"behaviors\.tsv:2: impression id '1' already used on line 1",
        ),
        ("2\t\t11/12/2019 10:11:02 AM\tN1 N2\tN4-0 N6-1", r"behaviors\.tsv:2: empty user_id"),
    ],
)
def test_malformed_behaviors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    root = _copy_fixture(tmp_path)
    _edit_line(root / "train" / "behaviors.tsv", 2, line)
    with pytest.raises(SchemaError, match=message):
        read_mind(root)


def test_malformed_news_names_file_and_line(tmp_path: Path) -> None:
    root = _copy_fixture(tmp_path)
    _edit_line(root / "dev" / "news.tsv", 3, "N9\thealth\tmedical\tNew study")
    with pytest.raises(SchemaError, match=r"dev/news\.tsv:3: found 4 tab-separated fields; expected 8"):
        read_mind(root)


def test_news_without_text_and_empty_impressions_are_counted(tmp_path: Path) -> None:
    root = _copy_fixture(tmp_path)
    # dev row 2 gets a candidate N99 that no news.tsv describes; a blank line and an empty impression follow
    _edit_line(root / "dev" / "behaviors.tsv", 2, "2\tU4\t11/15/2019 9:00:00 PM\tN3 N99\tN9-1 N99-1 N11-0")
    with open(root / "dev" / "behaviors.tsv", "a", encoding="utf-8") as f:
        f.write("\n4\tU5\t11/15/2019 9:30:00 PM\tN1\t\n5\tU6\t11/15/2019 9:40:00 PM\t\tN99-1\n")
    ds = read_mind(root)
    drops = ds.report.as_dict()
    assert drops["mind: impression candidate without news text, removed from its impression"] == 2
    assert drops["mind: clicked candidate among those removed for lack of news text"] == 2
    assert drops["mind: impression left without candidates, dropped"] == 1
    assert drops["mind: click-history news without news text, dropped"] == 1
    assert drops[f"{root / 'dev' / 'behaviors.tsv'}: impression without candidates, dropped"] == 1
    assert drops[f"{root / 'dev' / 'behaviors.tsv'}: blank line"] == 1
    assert "N99" not in set(ds.interactions["item"])
    imp = ds.impressions.set_index("impression_id")
    assert imp.loc["dev/2", "candidates"] == ["N9", "N11"] and imp.loc["dev/2", "labels"] == [1, 0]
    assert "dev/4" not in imp.index and "dev/5" not in imp.index


def test_bad_split_argument() -> None:
    with pytest.raises(ConfigError, match=r"split 'dev' is not one of \['train', 'val', 'test'\]"):
        read_behaviors(FIXTURE / "dev" / "behaviors.tsv", "dev", DropReport())


def test_crlf_and_no_time_variant(tmp_path: Path) -> None:
    path = tmp_path / "behaviors.tsv"
    path.write_bytes(b"7\tU1\tN1 N2\tN3-1 N4-0\r\n8\tU2\t\tN4-1\r\n")
    imp, hist = read_behaviors(path, "test", DropReport(), with_time=False)
    assert imp["labels"].tolist() == [[1, 0], [1]]
    assert (hist["timestamp"] == -1).all()
    assert isinstance(imp, pd.DataFrame) and set(imp["split"]) == {"test"}
