"""Every combination of the config groups composes, and every `_target_` resolves to an importable object."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class, get_method
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=["paths.output_dir=/tmp/x", *overrides])


def _targets(node, found: list[str]) -> list[str]:
    if isinstance(node, dict):
        if "_target_" in node:
            found.append(node["_target_"])
        for v in node.values():
            _targets(v, found)
    elif isinstance(node, list):
        for v in node:
            _targets(v, found)
    return found


def test_groups_exist() -> None:
    for group in (
        "domain",
        "dataset",
        "graph",
        "gnn",
        "encoder",
        "split",
        "model",
        "compress",
        "trainer",
        "logger",
    ):
        assert options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize("domain", options("domain"))
def test_domain_x_graph_x_gnn_compose(domain: str) -> None:
    for graph, gnn in itertools.product(options("graph"), options("gnn")):
        cfg = _compose([f"domain={domain}", f"graph={graph}", f"gnn={gnn}"])
        assert cfg.dataset.domain == domain
        assert cfg.graph._target_.startswith("recsys_gnn.graph.")
        assert cfg.gnn._target_.startswith(f"recsys_gnn.models.gnn.{gnn}.")


@pytest.mark.parametrize(
    "group",
    ["dataset", "split", "model", "encoder", "compress", "trainer", "logger", "callbacks", "experiment"],
)
def test_every_option_composes_and_targets_import(group: str) -> None:
    for option in options(group):
        overrides = [f"{group}={option}"]
        if group == "dataset":
            # A dataset of another domain needs its domain too; one of no domain (synthetic) fits any.
            ds = OmegaConf.load(CONF / "dataset" / f"{option}.yaml")
            if ds.domain is not None:
                overrides.append(f"domain={ds.domain}")
        cfg = _compose(overrides)
        for target in _targets(OmegaConf.to_container(cfg, resolve=False), []):
            try:
                get_class(target)
            except Exception:
                get_method(target)


def test_domain_sets_its_default_dataset() -> None:
    expected = {
        "video": "ml-latest-small",
        "music": "lastfm",
        "ecommerce": "unisrec-scientific",
        "news": "nemig",
    }
    for domain, dataset in expected.items():
        assert _compose([f"domain={domain}"]).dataset.name == dataset
    assert _compose(["domain=video", "dataset=ml-100k"]).dataset.name == "ml-100k"


def test_unknown_domain_is_a_clear_error() -> None:
    with pytest.raises(ConfigCompositionException, match="domain"):
        _compose(["domain=sports"])


def test_dataset_of_other_domain_is_rejected(tiny_env, make_cfg) -> None:
    from recsys_gnn.data.errors import ConfigError
    from recsys_gnn.pipeline import load_data

    cfg = make_cfg(["domain=music", "dataset=ml-latest-small"])
    with pytest.raises(ConfigError, match="belongs to domain 'video'"):
        load_data(cfg)
