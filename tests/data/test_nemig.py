"""NeMig reader: N-Triples parsing, the per-user holdout, a fixture in the official layout, and the real data."""

from __future__ import annotations

import bz2
import os
import shutil
from pathlib import Path

import pytest

from recsys_gnn.data.errors import ConfigError, DatasetNotFoundError, SchemaError
from recsys_gnn.data.readers.mind import read_behaviors
from recsys_gnn.data.readers.nemig import (
    Triple,
    holdout_last_impressions,
    nemig_files,
    parse_ntriples,
    read_nemig,
)
from recsys_gnn.data.schema import IMPRESSION_COLUMNS, DropReport

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "nemig"
R = "http://nemig_en.org/resource/"


def _real_root() -> Path:
    raw = os.environ.get("RECSYS_GNN_RAW")
    if not raw:
        pytest.skip("RECSYS_GNN_RAW is not set: no real NeMig data to read")
    root = Path(raw) / "nemig"
    if not root.is_dir():
        pytest.skip(f"{root} does not exist")
    return root


def _events(ds) -> set[tuple[str, str, str]]:
    df = ds.interactions.assign(split=ds.split)
    return set(zip(df["user"], df["item"], df["split"], strict=True))


# --- N-Triples --------------------------------------------------------------------------------------------


def test_parse_ntriples_terms_and_escapes() -> None:
    text = (
        "# a comment line\n"
        '<http://a/s> <http://a/p> "tab\\there, quote \\" back\\\\slash \\u00e9 \\U0001F600" .\n'
        "\n"
        '_:b1 <http://a/p> "Flüchtlinge"@de-DE .   # trailing comment\n'
        '<http://a/s> <http://a/n> "42"^^<http://www.w3.org/2001/XMLSchema#integer> .\r\n'
        "  <http://a/s>\t<http://a/q> _:b1 .\n"
        '<http://a/s> <http://a/p> "\\uD83D\\uDE00 surrogates" .'
    )
    triples = list(parse_ntriples(text))
    assert triples == [
        Triple("http://a/s", "http://a/p", 'tab\there, quote " back\\slash é \U0001f600', True),
        Triple("_:b1", "http://a/p", "Flüchtlinge", True, lang="de-DE"),
        Triple("http://a/s", "http://a/n", "42", True, datatype="http://www.w3.org/2001/XMLSchema#integer"),
        Triple("http://a/s", "http://a/q", "_:b1", False),
        Triple("http://a/s", "http://a/p", "\U0001f600 surrogates", True),
    ]


def test_parse_ntriples_literal_spanning_lines() -> None:
    text = (
        '<http://a/x> <https://schema.org/abstract> "The Issue: policy.\n\n\nBy G. \\"Pat\\" O\'Brien \n'
        'Kennesaw State University" .\n'
        '<http://a/y> <https://schema.org/headline> "one line" .\n'
    )
    triples = list(parse_ntriples(text))
    assert [t.object for t in triples] == [
        'The Issue: policy.\n\n\nBy G. "Pat" O\'Brien \nKennesaw State University',
        "one line",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('<http://a/s> <http://a/p> "open literal .\n', r"src:1:27: expected an object"),
        ("<http://a/s> <http://a/p> <http://a/o>\n<http://a/s2> .\n", r"src:1:39: expected ' \.' ending"),
        ('<http://a/s> "p" "o" .\n', r"src:1:14: expected a predicate"),
        ('\n<http://a/s> <http://a/p> "bad \\q escape" .\n', r"src:2: invalid escape '\\\\q'"),
        ('<http://a/s> <http://a/p> "x"@ .\n', r"src:1:30: expected a language tag"),
    ],
)
def test_parse_ntriples_errors_name_line_and_column(text: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        list(parse_ntriples(text, "src"))


# --- reader on the fixture --------------------------------------------------------------------------------


def test_fixture_is_in_official_layout_with_a_multiline_literal() -> None:
    for rel in nemig_files("en").values():
        assert (FIXTURE / rel).is_file(), rel
    literals = bz2.open(FIXTURE / nemig_files("en")["content_literals"]).read().decode()
    assert '"The Issue: the immigration courts\u2019 growing backlog.\n\n\nBy Jane Doe\n' in literals
    assert (FIXTURE / nemig_files("en")["behaviors"]).read_bytes().count(b"\r\n") == 10


def test_read_nemig_fixture() -> None:
    ds = read_nemig(FIXTURE, "en")
    assert ds.name == "nemig"
    assert (ds.interactions["timestamp"] == -1).all()
    # impressions ordered by id per user: U10 100..104 -> 104 test, 103 val; U20 (2 impressions) 201 test
    # and no val; U30 300..302 -> 302 test, 301 val
    imp = ds.impressions.set_index("impression_id")
    assert list(ds.impressions.columns) == [*IMPRESSION_COLUMNS, "history"]
    assert imp["split"].to_dict() == {
        "102": "train",
        "200": "train",
        "104": "test",
        "300": "train",
        "100": "train",
        "302": "test",
        "101": "train",
        "201": "test",
        "103": "val",
        "301": "val",
    }
    assert _events(ds) == {
        ("U10", "news_1", "train"),  # click history
        ("U10", "news_2", "train"),
        ("U20", "news_3", "train"),
        ("U10", "news_5", "train"),  # 100
        ("U10", "news_4", "train"),  # 102
        ("U20", "news_1", "train"),  # 200
        ("U30", "news_5", "train"),  # 300
        ("U10", "news_8", "val"),  # 103
        ("U30", "news_7", "val"),  # 301
        ("U10", "news_6", "test"),  # 104
        ("U20", "news_4", "test"),  # 201 (its click on news_3 repeats U20's history)
        ("U30", "news_8", "test"),  # 302
    }
    assert len(ds.interactions) == 12
    # U10's history (2 news) is on 5 rows: 10 -> 2; U20's (1 news) on 2 rows: 2 -> 1
    assert ds.report.as_dict() == {
        "nemig: news referenced in behaviors.tsv without headline or abstract in the KG": 1,
        "nemig: impression candidate without news text, removed from its impression": 1,
        "nemig: click-history entry repeated (same user and news on several impression rows), collapsed": 9,
        "nemig: repeated click on a news the user already clicked, merged into the earliest (weight = clicks)": 1,
    }
    assert imp.loc["302", "candidates"] == ["news_6", "news_8"]  # news_9 has no text in the KG

    items = ds.items.set_index("item")
    assert sorted(items.index) == sorted(f"news_{i}" for i in range(1, 9))  # news_10 is never shown
    text = items["text"].to_dict()
    # the multi-line abstract becomes one line; topic -1 adds no subtopic
    assert text["news_2"] == (
        "Asylum hearings backlog hits record. "
        "The Issue: the immigration courts\u2019 growing backlog. By Jane Doe Example University"
    )
    assert text["news_1"] == (
        "Texas governor tours southern border. Abbott visited the Rio Grande Valley on Tuesday. "
        "Subtopic: border abbott texas governor"
    )
    assert items.loc["news_3", "title"] == "Caf\u00e9 owners hire refugees"
    assert items.loc["news_4", "title"] == 'Senate debates "border bill" again'
    assert text["news_5"] == "Migrants rescued off Libyan coast. Subtopic: border abbott texas governor"
    assert "Employers and unions react." in text["news_6"]  # the escaped \t is whitespace
    assert text["news_8"] == "Families reunited after five years. A reunion at the airport."  # no subtopic
    weights = ds.interactions.set_index(["user", "item"])["weight"]
    assert weights[("U20", "news_3")] == 2.0  # history click + clicked again in impression 201


def test_holdout_in_file_order() -> None:
    ds = read_nemig(FIXTURE, "en", holdout_order="file")
    split = ds.impressions.set_index("impression_id")["split"]
    # U10's lines hold ids 102, 104, 100, 101, 103: the last line (103) is test, the one before (101) val
    assert split[["102", "104", "100", "101", "103"]].tolist() == ["train", "train", "train", "val", "test"]


def test_bad_arguments_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"language 'fr' is not one of \['en', 'de'\]"):
        read_nemig(FIXTURE, "fr")
    with pytest.raises(ConfigError, match="holdout_order 'time' is not one of"):
        read_nemig(FIXTURE, "en", holdout_order="time")
    with pytest.raises(DatasetNotFoundError, match=r"de/user_data/behaviors\.tsv"):
        read_nemig(FIXTURE, "de")
    root = tmp_path / "nemig"
    shutil.copytree(FIXTURE, root)
    (root / nemig_files("en")["subtopic_mapping"]).unlink()
    with pytest.raises(DatasetNotFoundError, match="subtopic_mapping"):
        read_nemig(root, "en")
    behaviors = root / nemig_files("en")["behaviors"]
    behaviors.write_bytes(behaviors.read_bytes().replace(b"301\tU30", b"A301\tU30"))
    with pytest.raises(SchemaError, match=r"behaviors\.tsv:10: impression id 'A301' is not an integer"):
        holdout_last_impressions(
            *read_behaviors(behaviors, "train", DropReport(), with_time=False), "impression_id"
        )


def test_malformed_kg_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "nemig"
    shutil.copytree(FIXTURE, root)
    path = root / nemig_files("en")["content_literals"]
    with bz2.open(path, "ab") as f:
        f.write(f'<{R}news_title_11> <https://schema.org/headline> "unterminated .\n'.encode())
    with pytest.raises(SchemaError, match=r"content_literals\.nt\.bz2:\d+:\d+: expected an object"):
        read_nemig(root, "en")


# --- real data (RECSYS_GNN_RAW) -----------------------------------------------------------------------------


def test_real_nemig_en_counts_match_provenance() -> None:
    ds = read_nemig(_real_root(), "en")
    imp = ds.impressions
    # PROVENANCE.md: 3,000 users x 5 impressions, 85,218 candidates of which 14,148 clicked, 4,170 news
    assert imp["user"].nunique() == 3000
    assert len(imp) == 15000
    assert sum(map(len, imp["candidates"])) == 85218
    assert sum(map(sum, imp["labels"])) == 14148
    assert imp["split"].value_counts().to_dict() == {"train": 9000, "val": 3000, "test": 3000}
    assert len(ds.items) == 4170
    assert (ds.items["title"] != "").all()
    # every referenced news has text: nothing was dropped for lack of it
    assert not [k for k in ds.report.as_dict() if "text" in k or "headline" in k]
    referenced = set(ds.interactions["item"]) | {c for cs in imp["candidates"] for c in cs}
    assert referenced == set(ds.items["item"])
    assert set(ds.split) == {"train", "val", "test"}


def test_real_nemig_de_counts_match_provenance() -> None:
    ds = read_nemig(_real_root(), "de")
    imp = ds.impressions
    assert ds.name == "nemig-de"
    assert imp["user"].nunique() == 3432
    assert len(imp) == 17160
    assert sum(map(len, imp["candidates"])) == 102931
    assert sum(map(sum, imp["labels"])) == 17153
    assert len(ds.items) == 4933
    assert not [k for k in ds.report.as_dict() if "text" in k or "headline" in k]
