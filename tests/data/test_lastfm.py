"""Tests for recsys_gnn.data.readers.lastfm on a made-up fixture (official format) and on the real files."""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsys_gnn.data.errors import ConfigError, DatasetNotFoundError, SchemaError, TruncatedFileError
from recsys_gnn.data.readers.lastfm import read_lastfm

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lastfm"
CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset" / "lastfm.yaml"
UNKNOWN_ARTIST = "user_taggedartists.dat: tag assignments for artists not in artists.dat (dropped)"


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "lastfm"
    shutil.copytree(FIXTURE, root)
    return root


def _edit(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data, f"fixture changed: {old!r} not in {path.name}"
    path.write_bytes(data.replace(old, new, 1))


def _real_root() -> Path:
    raw = os.environ.get("RECSYS_GNN_RAW")
    if not raw:
        pytest.skip("RECSYS_GNN_RAW is not set: real Last.fm files unavailable")
    root = Path(raw) / "hetrec2011-lastfm-2k"
    if not (root / "user_artists.dat").is_file():
        pytest.skip(f"{root} does not hold the Last.fm files")
    return root


# ---- fixture: content ---------------------------------------------------------------------------------------


def test_fixture_interactions_are_play_counts_without_ratings_or_time() -> None:
    ds = read_lastfm(FIXTURE)
    it = ds.interactions
    assert ds.name == "lastfm" and not ds.has_ratings and ds.rating_scale is None and ds.split is None
    assert len(it) == 7 and it["user"].nunique() == 3
    row = it[(it["user"] == "2") & (it["item"] == "1")].iloc[0]
    assert row["weight"] == 13883.0 and math.isnan(row["rating"]) and row["timestamp"] == -1
    assert it["user"].map(type).eq(str).all() and it["item"].map(type).eq(str).all()


def test_fixture_artist_texts_use_most_frequent_tags_and_skip_the_name_tag() -> None:
    items = read_lastfm(FIXTURE).items.set_index("item")
    # Never-played artist 6 is not an item; tags.dat is Latin-1 (tropicália), "new  wave" is collapsed.
    assert sorted(items.index) == ["1", "2", "3", "4"]
    assert items.loc["1", "text"] == "Café Sonore. Tags: tropicália, rock, 80s, new wave"
    assert items.loc["1", "title"] == "Café Sonore"
    # Quotes in names are data (the files are unquoted); equal counts are ordered by tag id.
    assert items.loc["2", "text"] == '"Loud" Quiet. Tags: 80s, new wave'
    assert items.loc["3", "text"] == "Band & Co. Tags: rock"
    assert items.loc["4", "text"] == "Tagless"


def test_fixture_counts_tag_assignments_of_unknown_artists() -> None:
    assert read_lastfm(FIXTURE).report.as_dict() == {UNKNOWN_ARTIST: 1}


def test_max_tags_limits_tags_and_zero_needs_no_tag_files(tmp_path: Path) -> None:
    assert (
        read_lastfm(FIXTURE, max_tags=1).items.set_index("item").loc["1", "text"]
        == "Café Sonore. Tags: tropicália"
    )
    root = _copy(tmp_path)
    (root / "tags.dat").unlink()
    (root / "user_taggedartists.dat").unlink()
    items = read_lastfm(root, max_tags=0).items.set_index("item")
    assert items.loc["1", "text"] == "Café Sonore"
    with pytest.raises(ConfigError, match="max_tags"):
        read_lastfm(FIXTURE, max_tags=-1)


# ---- fixture: malformed input -------------------------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "user_artists.dat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"user_artists\.dat: file not found"):
        read_lastfm(root)
    root2 = _copy(tmp_path / "b")
    (root2 / "tags.dat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"tags\.dat"):
        read_lastfm(root2)


def test_renamed_column_is_a_schema_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"\tweight\r\n", b"\tplays\r\n")
    with pytest.raises(SchemaError, match=r"user_artists\.dat.*missing column\(s\) \['weight'\]"):
        read_lastfm(root)


def test_artists_not_utf8_is_a_schema_error_with_line(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "artists.dat"
    path.write_bytes(path.read_bytes().decode("utf-8").encode("latin-1"))
    with pytest.raises(SchemaError, match=r"artists\.dat: line 2: .*not valid utf-8"):
        read_lastfm(root)


def test_utf8_tags_file_is_accepted_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _copy(tmp_path)
    path = root / "tags.dat"
    path.write_bytes(path.read_bytes().decode("latin-1").encode("utf-8"))
    with caplog.at_level(logging.WARNING):
        ds = read_lastfm(root)
    assert "tropicália" in ds.items.set_index("item").loc["1", "text"]
    assert "decoded as utf-8, not the official latin-1" in caplog.text


def test_byte_order_mark_does_not_break_the_header(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "artists.dat"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(read_lastfm(root).items) == 4


def test_truncated_last_line_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"5\t3\t3\r\n", b"5\t3")
    with pytest.raises(TruncatedFileError, match=r"user_artists\.dat: line 8: the file ends without a line"):
        read_lastfm(root)
    _edit(root / "user_artists.dat", b"5\t3", b"5\t3\r\n")
    with pytest.raises(TruncatedFileError, match=r"user_artists\.dat: line 8 \(the last\): 2 of 3 fields"):
        read_lastfm(root)


def test_cut_value_on_last_line_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"5\t3\t3\r\n", b"5\t3\t")
    with pytest.raises(TruncatedFileError, match=r"user_artists\.dat: line 8: the file ends without a line"):
        read_lastfm(root)


def test_short_line_inside_the_file_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"2\t2\t512\r\n", b"2\t2\r\n")
    with pytest.raises(SchemaError, match=r"user_artists\.dat: line 3: expected 3 TAB-separated fields"):
        read_lastfm(root)


def test_non_integer_value_names_line_column_and_value(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"2\t2\t512\r\n", b"2\t2\t5x2\r\n")
    with pytest.raises(SchemaError, match=r"line 3 column weight='5x2'"):
        read_lastfm(root)


def test_negative_play_count_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"2\t2\t512\r\n", b"2\t2\t-512\r\n")
    with pytest.raises(SchemaError, match=r"line 3 column weight='-512'"):
        read_lastfm(root)


def test_exact_duplicate_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"2\t2\t512\r\n", b"2\t2\t512\r\n2\t2\t512\r\n")
    _edit(root / "artists.dat", b"4\tTagless\t", b"4\tTagless\thttp://x\t\n4\tTagless\t")
    ds = read_lastfm(root)
    assert len(ds.interactions) == 7
    assert ds.report.as_dict()["user_artists.dat: exact duplicate rows (dropped)"] == 1
    assert ds.report.as_dict()["artists.dat: exact duplicate rows (dropped)"] == 1


def test_conflicting_duplicate_play_counts_are_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"2\t2\t512\r\n", b"2\t2\t512\r\n2\t2\t600\r\n")
    with pytest.raises(SchemaError, match=r"\['userID', 'artistID'\] must be unique.*line 3.*line 4"):
        read_lastfm(root)


def test_interaction_with_unknown_artist_is_dropped_and_counted(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "user_artists.dat", b"5\t3\t3\r\n", b"5\t3\t3\r\n5\t77\t4\r\n")
    ds = read_lastfm(root)
    assert "77" not in set(ds.interactions["item"]) and len(ds.interactions) == 7
    assert (
        ds.report.as_dict()["user_artists.dat: interactions with an artist not in artists.dat (dropped)"] == 1
    )


def test_artist_without_name_or_tags_is_dropped_and_counted(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "artists.dat", b"4\tTagless\t", b"4\t  \t")
    ds = read_lastfm(root)
    assert "4" not in set(ds.items["item"]) and "4" not in set(ds.interactions["item"])
    assert ds.report.as_dict()["artists.dat: interactions of artists with no name and no tags (dropped)"] == 1


# ---- config ----------------------------------------------------------------------------------------------------


def test_config_schema_and_reader_partial() -> None:
    cfg = OmegaConf.load(CONF)
    assert list(cfg) == ["name", "source", "files", "domain", "reader", "implicit_threshold", "kcore"]
    assert (cfg.name, cfg.source, cfg.domain) == ("lastfm", "hetrec2011-lastfm-2k", "music")
    reader = instantiate(cfg.reader)
    ds = reader(FIXTURE)
    assert ds.name == cfg.name and len(ds.interactions) == 7


# ---- real files --------------------------------------------------------------------------------------------------


def test_real_files_official_counts_and_texts() -> None:
    ds = read_lastfm(_real_root())
    it = ds.interactions
    assert len(it) == 92_834
    assert it["user"].nunique() == 1_892
    assert it["item"].nunique() == 17_632 == len(ds.items)
    assert it["weight"].min() >= 1 and it["rating"].isna().all() and (it["timestamp"] == -1).all()
    items = ds.items.set_index("item")
    # Duran Duran (id 51): most applied tags 80s (41 users), new wave (38), pop (17); "duran duran" is skipped.
    assert items.loc["51", "text"].startswith("Duran Duran. Tags: 80s, new wave, pop, new romantic, synthpop")
    assert "duran duran" not in items.loc["51", "text"].lower().split("tags:")[1]
    # UTF-8 names and Latin-1 tags both decode: no "tropicÃ¡lia" (Last.fm's own mojibake in a few names stays).
    assert items.loc["18", "title"] == "The Crüxshadows"
    assert items["text"].str.contains("tropicália").any()
    assert not items["text"].str.contains("tropicÃ").any()
    # 390 artists in user_taggedartists.dat are not in artists.dat (1,538 assignments).
    assert ds.report.as_dict() == {UNKNOWN_ARTIST: 1_538}
