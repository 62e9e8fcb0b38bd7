"""Tests for recsys_gnn.data.readers.unisrec on a made-up fixture (RecBole atomic files) and the real benchmark."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsys_gnn.data.errors import ConfigError, DatasetNotFoundError, SchemaError, TruncatedFileError
from recsys_gnn.data.readers.unisrec import read_unisrec

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "unisrec"
CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset" / "unisrec-scientific.yaml"
HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
ITEMS = ["B0TOOLGLOV", "B0TOOLBEAK", "B0TOOLTAPE", "B0TOOLCAST", "B0TOOLFILA", "B0TOOLCALI", "B0TOOLGLAS"]
SEQS = {
    "AUNIUSER0001": [0, 1, 2, 3, 4],
    "AUNIUSER0002": [5, 1, 5, 6],
    "AUNIUSER0003": [2, 6, 0],
    "AUNIUSER0004": [i % 7 for i in range(54)],
}


def write_benchmark(folder: Path, name: str, seqs: dict[str, list[str]], texts: dict[str, str]) -> None:
    """Write RecBole atomic files as RUCAIBox/UniSRec ``process_amazon.py`` does (history cap 50).

    Args:
        folder: output folder.
        name: file prefix.
        seqs: ``{user id: chronological item ids}``, each at least 3 long.
        texts: ``{item id: text}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    users = list(seqs)
    items: dict[str, int] = {}
    for u in users:
        for i in seqs[u]:
            items.setdefault(i, len(items))
    train, valid, test = [HEADER], [HEADER], [HEADER]
    for uid, u in enumerate(users):
        s = [str(items[i]) for i in seqs[u]]
        tr, va, te = s[:-2], s[-2], s[-1]
        for t in range(1, len(tr)):
            train.append(f"{uid}\t{' '.join(tr[:-t][-50:])}\t{tr[-t]}\n")
        valid.append(f"{uid}\t{' '.join(tr[-50:])}\t{va}\n")
        test.append(f"{uid}\t{' '.join((tr + [va])[-50:])}\t{te}\n")
    (folder / f"{name}.train.inter").write_text("".join(train))
    (folder / f"{name}.valid.inter").write_text("".join(valid))
    (folder / f"{name}.test.inter").write_text("".join(test))
    (folder / f"{name}.text").write_text(
        "item_id:token\ttext:token_seq\n" + "".join(f"{i}\t{texts[i]}\n" for i in sorted(texts))
    )
    (folder / f"{name}.item2index").write_text("".join(f"{i}\t{k}\n" for i, k in items.items()))
    (folder / f"{name}.user2index").write_text("".join(f"{u}\t{k}\n" for k, u in enumerate(users)))


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "unisrec"
    shutil.copytree(FIXTURE, root)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture changed: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _sequences(ds) -> dict[str, list[tuple[str, int, str]]]:
    """``{user: [(item, position, split), ...]}`` in position order."""
    df = ds.interactions.assign(split=ds.split.to_numpy()).sort_values(["user", "timestamp"], kind="stable")
    return {u: list(zip(g["item"], g["timestamp"], g["split"], strict=True)) for u, g in df.groupby("user")}


def _real_root() -> Path:
    raw = os.environ.get("RECSYS_GNN_RAW")
    if not raw:
        pytest.skip("RECSYS_GNN_RAW is not set: real UniSRec Scientific files unavailable")
    root = Path(raw) / "unisrec-scientific"
    if not (root / "Scientific.train.inter").is_file():
        pytest.skip(f"{root} does not hold the UniSRec Scientific files")
    return root


# ---- fixture: content ---------------------------------------------------------------------------------------


def test_fixture_rebuilds_each_sequence_once_with_the_official_split() -> None:
    ds = read_unisrec(FIXTURE, "Tiny")
    assert ds.name == "unisrec-tiny" and not ds.has_ratings and ds.split is not None
    assert len(ds.interactions) == sum(len(s) for s in SEQS.values()) == 66
    assert ds.report.as_dict() == {}
    seqs = _sequences(ds)
    for user, seq in SEQS.items():
        n = len(seq)
        expected = [
            (ITEMS[i], k, "train" if k < n - 2 else ("val" if k == n - 2 else "test"))
            for k, i in enumerate(seq)
        ]
        assert seqs[user] == expected, user
    it = ds.interactions
    assert it["rating"].isna().all() and it["weight"].eq(1.0).all()


def test_fixture_keeps_the_history_beyond_the_cap_and_repeat_purchases() -> None:
    seqs = _sequences(read_unisrec(FIXTURE, "Tiny"))
    # 54 events although valid/test histories hold only the last 50.
    assert len(seqs["AUNIUSER0004"]) == 54 and seqs["AUNIUSER0004"][0][:2] == ("B0TOOLGLOV", 0)
    assert [x[0] for x in seqs["AUNIUSER0002"]] == ["B0TOOLCALI", "B0TOOLBEAK", "B0TOOLCALI", "B0TOOLGLAS"]
    # No train.inter row: the single train event comes from the valid history.
    assert seqs["AUNIUSER0003"][0] == ("B0TOOLTAPE", 0, "train")


def test_fixture_item_texts_and_titles() -> None:
    items = read_unisrec(FIXTURE, "Tiny").items.set_index("item")
    assert sorted(items.index) == sorted(ITEMS)
    assert items.loc["B0TOOLBEAK", "text"] == (
        "Borosilicate Beaker 250 mL. Industrial & Scientific Lab & Scientific Products Glassware & Labware "
        "Beakers. LabCo."
    )
    assert items.loc["B0TOOLBEAK", "title"] == "Borosilicate Beaker 250 mL"
    # ". " inside the title and the brand: the title ends where the root category starts.
    assert items.loc["B0TOOLTAPE", "title"] == "Duct Tape 2 in. x 30 yd"
    # No category: the title ends at ". . ".
    assert items.loc["B0TOOLCAST", "title"] == "Caster Wheel Kit (Pack of 4)"


@pytest.mark.parametrize("seed", [0, 1])
def test_reader_inverts_the_official_conversion(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    items = [f"B0RND{k:05d}" for k in range(40)]
    seqs = {f"AU{u:04d}": list(rng.choice(items, size=int(rng.integers(3, 70)))) for u in range(30)}
    texts = {i: f"Item {i}. Industrial & Scientific Things. Brand {i[-2:]}. " for i in items}
    write_benchmark(tmp_path, "Rnd", seqs, texts)
    ds = read_unisrec(tmp_path, "Rnd")
    got = _sequences(ds)
    used = {i for s in seqs.values() for i in s}
    assert len(ds.items) == len(used)
    for user, seq in seqs.items():
        assert [x[0] for x in got[user]] == seq
        assert [x[2] for x in got[user]] == ["train"] * (len(seq) - 2) + ["val", "test"]


# ---- fixture: malformed input -------------------------------------------------------------------------------


def test_missing_file_and_bad_name(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "Tiny.valid.inter").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"Tiny\.valid\.inter: file not found"):
        read_unisrec(root, "Tiny")
    with pytest.raises(ConfigError, match="benchmark name"):
        read_unisrec(root, "../Tiny")


def test_renamed_header_column_is_a_schema_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "Tiny.test.inter", "item_id:token\n", "target:token\n")
    with pytest.raises(SchemaError, match=r"Tiny\.test\.inter: missing column\(s\) \['item_id:token'\]"):
        read_unisrec(root, "Tiny")
    root2 = _copy(tmp_path / "b")
    _edit(root2 / "Tiny.text", "text:token_seq", "title:token_seq")
    with pytest.raises(SchemaError, match=r"Tiny\.text: missing column\(s\) \['text:token_seq'\]"):
        read_unisrec(root2, "Tiny")


def test_non_integer_token_names_line_and_value(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "Tiny.valid.inter", "0\t0 1 2\t3", "0\t0 x 2\t3")
    with pytest.raises(
        SchemaError, match=r"Tiny\.valid\.inter: line 2: item_id_list:token_seq='x' is not an index"
    ):
        read_unisrec(root, "Tiny")


def test_history_that_contradicts_the_sequence_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "Tiny.test.inter", "0\t0 1 2 3\t4", "0\t0 1 3 2\t4")
    with pytest.raises(
        SchemaError, match=r"Tiny\.test\.inter: line 2: history of user 0 \(0 1 3 2\) does not match"
    ):
        read_unisrec(root, "Tiny")


def test_two_different_valid_rows_for_a_user_are_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "Tiny.valid.inter", "0\t0 1 2\t3\n", "0\t0 1 2\t3\n0\t0 1 2\t5\n")
    with pytest.raises(SchemaError, match=r"user 0 has 2 valid and 1 test rows"):
        read_unisrec(root, "Tiny")


def test_exact_duplicate_lines_are_dropped_and_counted(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "Tiny.train.inter", "0\t0 1\t2\n", "0\t0 1\t2\n0\t0 1\t2\n")
    _edit(root / "Tiny.item2index", "B0TOOLBEAK\t1\n", "B0TOOLBEAK\t1\nB0TOOLBEAK\t1\n")
    ds = read_unisrec(root, "Tiny")
    assert len(ds.interactions) == 66
    assert ds.report.as_dict() == {
        "Tiny.train.inter: exact duplicate lines (dropped)": 1,
        "Tiny.item2index: exact duplicate lines (dropped)": 1,
    }


def test_truncated_last_line_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "Tiny.test.inter"
    text = path.read_text()
    path.write_text(text[: text.rindex("\t")])  # the last row loses its target (and its line ending)
    with pytest.raises(TruncatedFileError, match=r"Tiny\.test\.inter: line 5: the file ends without a line"):
        read_unisrec(root, "Tiny")
    path.write_text(text[: text.rindex("\t")] + "\n")
    with pytest.raises(TruncatedFileError, match=r"Tiny\.test\.inter: line 5 \(the last\): 2 of 3 fields"):
        read_unisrec(root, "Tiny")


def test_users_without_a_test_row_are_dropped_and_counted(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "Tiny.test.inter"
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rindex("\n") + 1])  # the last user's test row removed whole
    ds = read_unisrec(root, "Tiny")
    assert "AUNIUSER0004" not in set(ds.interactions["user"])
    assert len(ds.interactions) == 66 - 54
    # User 3's 51 train rows and its valid row.
    rep = ds.report.as_dict()
    assert rep["Tiny.inter: lines of users without a valid.inter or test.inter row (dropped)"] == 52


def test_unknown_item_index_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "Tiny.item2index", "B0TOOLCAST\t3\n", "")  # index 3 (user 0's val target, user 3) unknown
    with pytest.raises(
        SchemaError, match=r"Tiny\.train\.inter: line \d+: item index 3 is not in the item2index"
    ):
        read_unisrec(root, "Tiny")


def test_item_without_text_is_dropped_and_counted(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    text = root / "Tiny.text"
    lines = [
        ("B0TOOLFILA\t   " if ln.startswith("B0TOOLFILA") else ln) for ln in text.read_text().splitlines()
    ]
    text.write_text("\n".join(lines) + "\n")  # index 4 has no text
    ds = read_unisrec(root, "Tiny")
    assert "B0TOOLFILA" not in set(ds.interactions["item"])
    n4 = sum(s.count(4) for s in SEQS.values())
    assert len(ds.interactions) == 66 - n4
    rep = ds.report.as_dict()
    assert rep["Tiny.inter: events of items without text in .text (dropped)"] == n4
    # Positions of the remaining events are the original ones (a gap where the dropped event was).
    assert [x[1] for x in _sequences(ds)["AUNIUSER0001"]] == [0, 1, 2, 3]


def test_conflicting_index_map_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "Tiny.item2index", "B0TOOLBEAK\t1\n", "B0TOOLBEAK\t1\nB0TOOLOTHER\t1\n")
    with pytest.raises(
        SchemaError, match=r"Tiny\.item2index: line 3: 'B0TOOLOTHER' -> 1 conflicts with line 2"
    ):
        read_unisrec(root, "Tiny")


def test_not_utf8_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "Tiny.text"
    path.write_bytes(path.read_bytes().replace(b"LabCo", "LäbCo".encode("latin-1")))
    with pytest.raises(SchemaError, match=r"(?i)Tiny\.text: line 2: .*not valid UTF-8"):
        read_unisrec(root, "Tiny")


# ---- config and real files ---------------------------------------------------------------------------------------


def test_config_schema() -> None:
    cfg = OmegaConf.load(CONF)
    assert list(cfg) == ["name", "source", "files", "domain", "reader", "implicit_threshold", "kcore"]
    assert (cfg.name, cfg.source, cfg.domain) == ("unisrec-scientific", "unisrec-scientific", "ecommerce")
    assert (
        cfg.reader._target_ == "recsys_gnn.data.readers.unisrec.read_unisrec"
        and cfg.reader.name == "Scientific"
    )
    assert callable(instantiate(cfg.reader))


def test_real_scientific_counts_and_split() -> None:
    ds = instantiate(OmegaConf.load(CONF).reader)(_real_root())
    it = ds.interactions
    assert ds.name == "unisrec-scientific"
    # UniSRec paper Table 1: 8,442 users, 4,385 items, 59,427 interactions (PROVENANCE.md counts 59,384 from the
    # test histories alone, which are capped at 50; the train rows hold the 43 older events).
    assert len(it) == 59_427
    assert it["user"].nunique() == 8_442
    assert it["item"].nunique() == 4_385 == len(ds.items)
    assert ds.split.value_counts().to_dict() == {"train": 59_427 - 2 * 8_442, "val": 8_442, "test": 8_442}
    assert ds.report.as_dict() == {}
    seq = _sequences(ds)["ABW8NXS7SV55K"]  # user index 0: test.inter "0  0 1 ... 12  13"
    assert [x[0] for x in seq[:3]] == ["B00TNNWMXI", "B00IBZE2EQ", "B010Y25PQC"]
    assert len(seq) == 14 and [x[2] for x in seq[-3:]] == ["train", "val", "test"]
    items = ds.items.set_index("item")
    assert items.loc["B00TNNWMXI", "title"].startswith("eSUN Bronze filament 1.75mm")
    assert items["text"].str.len().median() > 150
