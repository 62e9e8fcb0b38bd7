"""Which split runs: every split follows the run's ``seed`` (unless ``split.seed`` pins it), and the cold splits
refuse to replace a dataset's official split (UniSRec, NeMig, MIND fixtures) unless asked, the protocol saying
which split ran."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.data.preprocess import preprocess
from recsys_gnn.data.readers.mind import read_mind
from recsys_gnn.data.readers.nemig import read_nemig
from recsys_gnn.data.readers.unisrec import read_unisrec
from recsys_gnn.data.splits import AutoSplit, ColdItemSplit, ColdUserSplit
from recsys_gnn.pipeline import load_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _train_pairs(data: InteractionData) -> set[tuple[str, str]]:
    # as raw ids, so that two runs compare the same interactions whatever their index order
    users, items = np.asarray(data.user_ids), np.asarray(data.item_ids)
    return {(str(users[u]), str(items[i])) for u, i in data.train}


@pytest.mark.parametrize("split", ["random", "cold_items"])
def test_two_seeds_give_two_training_sets_and_split_seed_pins_it(
    tiny_env: Path, make_cfg, split: str
) -> None:
    def train(*overrides: str) -> set[tuple[str, str]]:
        data = load_data(make_cfg([f"split={split}", *overrides]))
        assert data.protocol["split"]["name"] == split
        return _train_pairs(data)

    assert train("seed=1") != train("seed=2")
    assert train("seed=1", "split.seed=5") == train("seed=2", "split.seed=5")
    assert load_data(make_cfg([f"split={split}", "seed=3"])).protocol["split"]["params"]["seed"] == 3


READERS: dict[str, Callable[[], object]] = {
    "unisrec": lambda: read_unisrec(FIXTURES / "unisrec", "Tiny"),
    "nemig": lambda: read_nemig(FIXTURES / "nemig", "en"),
    "mind": lambda: read_mind(FIXTURES / "mind", name="mind-fixture"),
}


@pytest.mark.parametrize("dataset", list(READERS))
@pytest.mark.parametrize("cls", [ColdItemSplit, ColdUserSplit])
def test_cold_split_on_an_official_split_is_refused_unless_asked(dataset: str, cls) -> None:
    raw = READERS[dataset]()
    assert raw.split is not None
    with pytest.raises(ConfigError, match=rf"split={cls.name} would replace .* split.replace_official=true"):
        preprocess(raw, cls(frac=0.3))
    data = preprocess(raw, cls(frac=0.3, replace_official=True))
    split = data.protocol["split"]
    assert split["name"] == cls.name and split["params"]["replace_official"] is True
    assert split["stats"]["official_split_replaced"] == 1


@pytest.mark.parametrize("dataset", list(READERS))
def test_auto_split_keeps_the_official_split_and_says_so(dataset: str) -> None:
    split = preprocess(READERS[dataset](), AutoSplit()).protocol["split"]
    assert split["name"] == "auto:official" and split["stats"]["official_split_replaced"] == 0


def test_composed_cold_split_config_refuses_by_default(make_cfg) -> None:
    from hydra.utils import instantiate

    raw = READERS["unisrec"]()
    for name in ("cold_items", "cold_users"):
        splitter = instantiate(make_cfg([f"split={name}"]).split)
        with pytest.raises(ConfigError, match="split.replace_official=true"):
            preprocess(raw, splitter)
