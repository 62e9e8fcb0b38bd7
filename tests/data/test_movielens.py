"""MovieLens readers: fixtures in the official formats, malformed copies of them, and the real files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsys_gnn.data.errors import ConfigError, DatasetNotFoundError, SchemaError, TruncatedFileError
from recsys_gnn.data.readers.movielens import (
    MAX_TAGS,
    clean_title,
    item_text,
    read_ml_1m,
    read_ml_100k,
    read_ml_latest_small,
)
from recsys_gnn.data.schema import INTERACTION_COLUMNS, ITEM_COLUMNS, RawDataset
from recsys_gnn.data.sources import SOURCES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"
ML1M = FIXTURES / "ml-1m"
LATEST = FIXTURES / "movielens-latest-small"
ML100K = FIXTURES / "movielens-100k"


def copy_fixture(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / src.name
    shutil.copytree(src, dest)
    return dest


def real_folder(name: str) -> Path:
    raw = os.environ.get("RECSYS_GNN_RAW")
    if not raw:
        pytest.skip("RECSYS_GNN_RAW is not set: real MovieLens files unavailable")
    folder = Path(raw) / name
    if not folder.is_dir():
        pytest.skip(f"{folder} does not exist")
    return folder


def item_row(ds: RawDataset, item: str) -> dict:
    rows = ds.items[ds.items["item"] == item]
    assert len(rows) == 1, f"item {item} appears {len(rows)} times"
    return rows.iloc[0].to_dict()


def assert_canonical(ds: RawDataset) -> None:
    assert list(ds.interactions.columns) == list(INTERACTION_COLUMNS)
    assert list(ds.items.columns) == list(ITEM_COLUMNS)
    assert ds.has_ratings
    assert ds.interactions["user"].map(type).eq(str).all()
    assert ds.interactions["item"].map(type).eq(str).all()
    assert ds.interactions["timestamp"].dtype == np.int64
    assert (ds.interactions["weight"] == 1.0).all()
    lo, hi = ds.rating_scale
    assert ds.interactions["rating"].between(lo, hi).all()
    assert ds.items["item"].is_unique
    assert ds.interactions["item"].isin(ds.items["item"]).all()


# ---------------------------------------------------------------------------------------------------------------
# Titles and text
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Toy Story (1995)", "Toy Story (1995)"),
        ("American President, The (1995)", "The American President (1995)"),
        (
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
            "The City of Lost Children (Cité des enfants perdus, La) (1995)",
        ),
        ("Misérables, Les (1995)", "Les Misérables (1995)"),
        ("Appartement, L' (1996)", "L'Appartement (1996)"),
        ("Good, the Bad and the Ugly, The (1966)", "The Good, the Bad and the Ugly (1966)"),
        ("96 Minutes (2011) ", "96 Minutes (2011)"),
        ("Babylon 5", "Babylon 5"),
        ("Bug's Life, A (1998)", "A Bug's Life (1998)"),
        ("Sex, Lies, and Videotape (1989)", "Sex, Lies, and Videotape (1989)"),
    ],
)
def test_clean_title(raw: str, expected: str) -> None:
    assert clean_title(raw) == expected


def test_item_text_skips_empty_parts_and_placeholder_genres() -> None:
    assert (
        item_text("Heat (1995)", ["Action", "Crime"], ["heist"])
        == "Heat (1995). Genres: Action, Crime. Tags: heist"
    )
    assert item_text("Hyena Road", ["(no genres listed)"]) == "Hyena Road"
    assert item_text("unknown", ["unknown"], []) == "unknown"


# ---------------------------------------------------------------------------------------------------------------
# ml-1m (fixture in the official format)
# ---------------------------------------------------------------------------------------------------------------


def test_ml_1m_fixture() -> None:
    ds = read_ml_1m(ML1M)
    assert_canonical(ds)
    assert ds.name == "ml-1m" and ds.rating_scale == (1.0, 5.0) and ds.split is None
    assert len(ds.interactions) == 32
    assert ds.interactions["user"].nunique() == 6
    assert len(ds.items) == 11  # includes Curdled (3000), which nobody rated
    assert "3000" not in set(ds.interactions["item"])
    assert ds.report.as_dict() == {}
    first = ds.interactions.iloc[0].to_dict()
    assert first == {"user": "1", "item": "1193", "rating": 5.0, "weight": 1.0, "timestamp": 978300760}
    assert item_row(ds, "73")["title"] == "Les Misérables (1995)"  # Latin-1 decoded, article moved
    assert item_row(ds, "11")["text"] == "The American President (1995). Genres: Comedy, Drama, Romance"
    assert item_row(ds, "1916")["title"] == '"Great Performances" Cats (1998)'
    assert item_row(ds, "260")["text"].startswith("Star Wars: Episode IV - A New Hope (1977). Genres: Action")


def test_ml_1m_title_with_colons(tmp_path: Path) -> None:
    root = copy_fixture(ML1M, tmp_path)
    with open(root / "movies.dat", "ab") as fh:
        fh.write(
            "3001::Sky Captain: (2004)::Action\n3002::Mission: Impossible: (1996)::Action|Thriller\n".encode(
                "latin-1"
            )
        )
    ds = read_ml_1m(root)
    assert item_row(ds, "3001")["title"] == "Sky Captain: (2004)"
    assert item_row(ds, "3002")["text"] == "Mission: Impossible: (1996). Genres: Action, Thriller"


def test_ml_1m_unparsable_value_names_file_line_and_value(tmp_path: Path) -> None:
    root = copy_fixture(ML1M, tmp_path)
    lines = (root / "ratings.dat").read_text().splitlines(keepends=True)
    lines[6] = "2::11::three::978300174\n"
    (root / "ratings.dat").write_text("".join(lines))
    with pytest.raises(SchemaError) as err:
        read_ml_1m(root)
    msg = str(err.value)
    assert "ratings.dat" in msg and "line 7" in msg and "'three'" in msg and "Rating" in msg


def test_ml_1m_short_line_in_the_middle_raises(tmp_path: Path) -> None:
    root = copy_fixture(ML1M, tmp_path)
    lines = (root / "ratings.dat").read_text().splitlines(keepends=True)
    lines[3] = "1::260::4\n"
    (root / "ratings.dat").write_text("".join(lines))
    with pytest.raises(SchemaError, match=r"ratings\.dat: line 4: expected 4 fields .*got 3"):
        read_ml_1m(root)


def test_ml_1m_truncated_last_line_is_refused(tmp_path: Path) -> None:
    root = copy_fixture(ML1M, tmp_path)
    text = (root / "ratings.dat").read_text()
    (root / "ratings.dat").write_text(text + "6::3000::4")  # an interrupted copy: no timestamp, no newline
    with pytest.raises(
        TruncatedFileError, match=r"ratings\.dat: line 33: the file ends without a line ending"
    ):
        read_ml_1m(root)
    (root / "ratings.dat").write_text(text + "6::3000::4\n")  # too few fields on the last line
    with pytest.raises(TruncatedFileError, match=r"ratings\.dat: line 33 \(the last\): 3 of 4 fields"):
        read_ml_1m(root)


def test_ml_1m_exact_duplicates_collapse_and_unknown_items_drop(tmp_path: Path) -> None:
    root = copy_fixture(ML1M, tmp_path)
    lines = (root / "ratings.dat").read_text().splitlines(keepends=True)
    lines += [lines[0], lines[0], "4::999999::4::978294199\n"]
    (root / "ratings.dat").write_text("".join(lines))
    ds = read_ml_1m(root)
    assert len(ds.interactions) == 32
    report = ds.report.as_dict()
    assert report["ml-1m/ratings.dat: exact duplicate rating lines collapsed"] == 2
    unknown = [k for k in report if "unknown item" in k]
    assert len(unknown) == 1 and "999999" in unknown[0] and "movies.dat" in unknown[0]
    assert report[unknown[0]] == 1


def test_ml_1m_missing_file_names_the_path(tmp_path: Path) -> None:
    root = copy_fixture(ML1M, tmp_path)
    (root / "movies.dat").unlink()
    with pytest.raises(DatasetNotFoundError, match=str(root / "movies.dat").replace(".", r"\.")):
        read_ml_1m(root)


def test_ml_1m_rating_out_of_scale_raises(tmp_path: Path) -> None:
    root = copy_fixture(ML1M, tmp_path)
    with open(root / "ratings.dat", "a") as fh:
        fh.write("6::3000::7::978236809\n")
    with pytest.raises(
        SchemaError, match=r"line 33: column 'Rating': cannot use '7'; expected a rating in \[1.0, 5.0\]"
    ):
        read_ml_1m(root)


def test_ml_1m_blank_line_inside_is_counted(tmp_path: Path) -> None:
    root = copy_fixture(ML1M, tmp_path)
    lines = (root / "ratings.dat").read_text().splitlines(keepends=True)
    (root / "ratings.dat").write_text("".join(lines[:5] + ["\n"] + lines[5:]) + "\n\n")
    ds = read_ml_1m(root)
    assert len(ds.interactions) == 32
    # trailing blank lines are padding; only the one inside the data is reported
    assert ds.report.as_dict() == {"ml-1m/ratings.dat: blank lines skipped": 1}


# ---------------------------------------------------------------------------------------------------------------
# ml-latest-small (fixture in the official format)
# ---------------------------------------------------------------------------------------------------------------


def test_ml_latest_small_fixture() -> None:
    ds = read_ml_latest_small(LATEST)
    assert_canonical(ds)
    assert ds.rating_scale == (0.5, 5.0)
    assert len(ds.interactions) == 20 and ds.interactions["user"].nunique() == 5 and len(ds.items) == 8
    assert ds.report.as_dict() == {}
    assert item_row(ds, "11")["title"] == "The American President (1995)"  # quoted CSV field with a comma
    assert item_row(ds, "4973")["title"] == "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
    assert item_row(ds, "94494")["title"] == "96 Minutes (2011)"
    assert item_row(ds, "143410")["text"] == "Hyena Road"  # "(no genres listed)" and no tags
    # tags: lower-cased, whitespace-normalized, deduplicated, most users first (ties alphabetical)
    assert item_row(ds, "296")["text"] == (
        "Pulp Fiction (1994). Genres: Comedy, Crime, Drama, Thriller. Tags: quentin tarantino, dark comedy, non-linear"
    )
    assert item_row(ds, "4973")["text"].endswith("Tags: paris, quirky, romantic")
    tags29 = item_row(ds, "29")["text"].split("Tags: ")[1].split(", ")
    assert len(tags29) == MAX_TAGS and tags29[0] == "circus" and "underwater" not in tags29


def test_ml_latest_small_without_tags() -> None:
    ds = read_ml_latest_small(LATEST, use_tags=False)
    assert not ds.items["text"].str.contains("Tags:").any()
    assert (
        item_row(ds, "1")["text"]
        == "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy"
    )


def test_ml_latest_small_renamed_column(tmp_path: Path) -> None:
    root = copy_fixture(LATEST, tmp_path)
    text = (root / "ratings.csv").read_text().replace("userId,movieId,rating", "user_id,movieId,stars", 1)
    (root / "ratings.csv").write_text(text)
    with pytest.raises(SchemaError) as err:
        read_ml_latest_small(root)
    msg = str(err.value)
    assert str(root / "ratings.csv") in msg and "'userId'" in msg and "'rating'" in msg and "'stars'" in msg


def test_ml_latest_small_columns_in_another_order_are_fine(tmp_path: Path) -> None:
    root = copy_fixture(LATEST, tmp_path)
    rows = [line.split(",") for line in (root / "ratings.csv").read_text().splitlines()]
    (root / "ratings.csv").write_text("".join(f"{r[2]},{r[3]},{r[0]},{r[1]}\n" for r in rows))
    assert read_ml_latest_small(root).interactions.equals(read_ml_latest_small(LATEST).interactions)


def test_ml_latest_small_unparsable_id(tmp_path: Path) -> None:
    root = copy_fixture(LATEST, tmp_path)
    lines = (root / "ratings.csv").read_text().splitlines(keepends=True)
    lines[4] = "1,tt0110912,3.0,964982967\n"
    (root / "ratings.csv").write_text("".join(lines))
    with pytest.raises(SchemaError, match=r"ratings\.csv: line 5: column 'movieId': cannot use 'tt0110912'"):
        read_ml_latest_small(root)


def test_ml_latest_small_bad_utf8_names_the_line(tmp_path: Path) -> None:
    root = copy_fixture(LATEST, tmp_path)
    data = (root / "movies.csv").read_bytes().replace("Amélie".encode(), "Am\xe9lie".encode("latin-1"))
    (root / "movies.csv").write_bytes(data)
    with pytest.raises(SchemaError, match=r"movies\.csv: line 6: byte b'\\xe9' .* not valid utf-8"):
        read_ml_latest_small(root)


def test_ml_latest_small_tags_of_unknown_movie_and_empty_tags_are_counted(tmp_path: Path) -> None:
    root = copy_fixture(LATEST, tmp_path)
    with open(root / "tags.csv", "a") as fh:
        fh.write('1,999999,no such movie tag,1445716000\n1,1,"  ",1445716001\n')
    ds = read_ml_latest_small(root)
    assert ds.report.as_dict() == {
        "ml-latest-small/tags.csv: empty tags dropped": 1,
        "ml-latest-small/tags.csv: tags of unknown item (movie id not in movies.csv) dropped": 1,
    }
    assert not ds.items["text"].str.contains("no such movie").any()


def test_ml_latest_small_missing_tags_file(tmp_path: Path) -> None:
    root = copy_fixture(LATEST, tmp_path)
    (root / "tags.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match="tags.csv: file not found"):
        read_ml_latest_small(root)
    assert len(read_ml_latest_small(root, use_tags=False).interactions) == 20


def test_ml_latest_small_duplicate_movie_lines(tmp_path: Path) -> None:
    root = copy_fixture(LATEST, tmp_path)
    with open(root / "movies.csv", "a") as fh:
        fh.write(
            "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n1,Toy Story 2 (1999),Comedy\n"
        )
    ds = read_ml_latest_small(root)
    assert item_row(ds, "1")["title"] == "Toy Story (1995)"
    assert ds.report.as_dict() == {
        "ml-latest-small/movies.csv: exact duplicate movie lines collapsed": 1,
        "ml-latest-small/movies.csv: movie lines repeating an id with other title/genres (first kept) dropped": 1,
    }


# ---------------------------------------------------------------------------------------------------------------
# ml-100k (fixture in the official format)
# ---------------------------------------------------------------------------------------------------------------


def test_ml_100k_fixture() -> None:
    ds = read_ml_100k(ML100K)
    assert_canonical(ds)
    assert ds.rating_scale == (1.0, 5.0) and ds.split is None
    assert len(ds.interactions) == 20 and len(ds.items) == 6
    assert ds.report.as_dict() == {}
    assert item_row(ds, "543")["text"] == "Les Misérables (1995). Genres: Drama, Musical"
    assert item_row(ds, "1633")["title"] == "Á köldum klaka (Cold Fever) (1994)"
    assert item_row(ds, "12")["text"] == "The Usual Suspects (1995). Genres: Crime, Thriller"
    assert item_row(ds, "267")["text"] == "unknown"
    assert item_row(ds, "1")["text"] == "Toy Story (1995). Genres: Animation, Children's, Comedy"


@pytest.mark.parametrize("fold", [1, "1"])
def test_ml_100k_official_fold(fold: int | str) -> None:
    ds = read_ml_100k(ML100K, fold=fold)
    assert ds.split is not None and len(ds.split) == len(ds.interactions) == 20
    assert ds.split.value_counts().to_dict() == {"train": 16, "test": 4}
    test_rows = ds.interactions[ds.split.to_numpy() == "test"]
    assert test_rows["user"].tolist() == ["122", "194", "291", "234"]


@pytest.mark.parametrize("fold", [0, 6, "c", True, 1.5])
def test_ml_100k_bad_fold(fold: object) -> None:
    with pytest.raises(ConfigError, match="ml-100k fold"):
        read_ml_100k(ML100K, fold=fold)  # type: ignore[arg-type]


def test_ml_100k_missing_fold_file(tmp_path: Path) -> None:
    root = copy_fixture(ML100K, tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"u2\.base: file not found"):
        read_ml_100k(root, fold=2)


def test_ml_100k_bad_genre_flag(tmp_path: Path) -> None:
    root = copy_fixture(ML100K, tmp_path)
    data = (
        (root / "u.item")
        .read_bytes()
        .replace(b"|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0", b"|0|1|2|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0")
    )
    (root / "u.item").write_bytes(data)
    with pytest.raises(SchemaError, match=r"u\.item: line 2: genre flag 'Adventure' is 2; expected 0 or 1"):
        read_ml_100k(root)


def test_ml_100k_u_item_with_fewer_genre_columns(tmp_path: Path) -> None:
    root = copy_fixture(ML100K, tmp_path)
    lines = (root / "u.item").read_bytes().split(b"\n")
    lines[0] = lines[0].rsplit(b"|", 1)[0]  # first movie lost its last genre flag
    (root / "u.item").write_bytes(b"\n".join(lines))
    with pytest.raises(SchemaError, match=r"u\.item: line 1: expected 24 fields"):
        read_ml_100k(root)


# ---------------------------------------------------------------------------------------------------------------
# Hydra configs
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fixture", "n_ratings"),
    [("ml-latest-small", LATEST, 20), ("ml-100k", ML100K, 20), ("ml-1m", ML1M, 32)],
)
def test_dataset_config(name: str, fixture: Path, n_ratings: int) -> None:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert set(cfg.keys()) == {"name", "source", "files", "domain", "reader", "implicit_threshold", "kcore"}
    assert cfg.name == name and cfg.source in SOURCES and cfg.domain == "video"
    assert cfg.files is None and cfg.kcore == 0 and cfg.implicit_threshold == 4.0
    reader = instantiate(cfg.reader)
    ds = reader(fixture)
    assert ds.name == name and len(ds.interactions) == n_ratings


def test_ml_100k_config_exposes_fold() -> None:
    cfg = OmegaConf.load(CONF / "ml-100k.yaml")
    assert "fold" in cfg.reader and cfg.reader.fold is None
    cfg.reader.fold = 1
    assert instantiate(cfg.reader)(ML100K).split is not None


# ---------------------------------------------------------------------------------------------------------------
# Real files (RECSYS_GNN_RAW)
# ---------------------------------------------------------------------------------------------------------------


def test_real_ml_latest_small() -> None:
    ds = read_ml_latest_small(real_folder("ml-latest-small"))
    assert_canonical(ds)
    assert len(ds.interactions) == 100_836
    assert ds.interactions["user"].nunique() == 610
    assert len(ds.items) == 9_742
    assert ds.interactions["item"].nunique() == 9_724
    assert ds.report.as_dict() == {}
    assert item_row(ds, "50")["title"] == "The Usual Suspects (1995)"
    assert "Tags:" in item_row(ds, "296")["text"]


def test_real_ml_100k() -> None:
    root = real_folder("ml-100k")
    ds = read_ml_100k(root)
    assert_canonical(ds)
    assert len(ds.interactions) == 100_000
    assert ds.interactions["user"].nunique() == 943
    assert len(ds.items) == 1_682 and ds.interactions["item"].nunique() == 1_682
    assert ds.report.as_dict() == {}
    assert item_row(ds, "543")["title"] == "Les Misérables (1995)"
    assert item_row(ds, "1633")["title"].startswith("Á köldum klaka")
    hist = ds.interactions["rating"].value_counts().sort_index().tolist()
    assert hist == [6_110, 11_370, 27_145, 34_174, 21_201]

    fold1 = read_ml_100k(root, fold=1)
    assert fold1.split.value_counts().to_dict() == {"train": 80_000, "test": 20_000}
    pairs = fold1.interactions[["user", "item"]].apply(tuple, axis=1)
    assert set(pairs) == set(ds.interactions[["user", "item"]].apply(tuple, axis=1))
