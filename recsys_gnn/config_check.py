"""Hyper-parameter checks run on the composed config before any data is read.

Each rule names a config key (as written on the command line) and the values it accepts. :func:`check_config`
applies every rule whose key is present and raises one :class:`ConfigError` listing all violations, e.g.
``optimizer.lr=-0.01: must be a number > 0``. Keys that are absent or null where null is allowed are skipped:
models and groups differ in which keys they have. Checks that need the data (a split fraction leaving no cold
item, ``dim`` not divisible by ``num_heads``) stay with the classes that raise them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from recsys_gnn.data.errors import ConfigError

_ABSENT = object()
Rule = Callable[[Any], str | None]  # value -> what is wrong with it, or None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def int_at_least(low: int, *, nullable: bool = False, also: tuple[int, ...] = ()) -> Rule:
    """An integer >= ``low`` (or one of ``also``, or null when ``nullable``)."""

    def rule(v: Any) -> str | None:
        if (v is None and nullable) or (_is_int(v) and (v >= low or v in also)):
            return None
        extra = "".join(f" or {a}" for a in also) + (" or null" if nullable else "")
        return f"must be an integer >= {low}{extra}"

    return rule


def number_in(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True) -> Rule:
    """A finite number in the interval from ``low`` to ``high`` (open or closed ends)."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    bound = f"> {low:g}" if low_open else f">= {low:g}"
    what = f"a number {bound}" if high == math.inf else f"a number in {left}{low:g}, {high:g}{right}"

    def rule(v: Any) -> str | None:
        if not _is_number(v):
            return f"must be {what}"
        ok_low = v > low if low_open else v >= low
        ok_high = v < high if high_open else v <= high
        return None if ok_low and ok_high else f"must be {what}"

    return rule


def one_of(*allowed: str) -> Rule:
    """One of the listed strings."""

    def rule(v: Any) -> str | None:
        return None if v in allowed else f"must be one of {list(allowed)}"

    return rule


def ks_rule(v: Any) -> str | None:
    """A non-empty list of distinct integers >= 1 (metric cut-offs)."""
    ok = isinstance(v, list | tuple) and v and all(_is_int(k) and k >= 1 for k in v) and len(set(v)) == len(v)
    return None if ok else "must be a non-empty list of distinct integers >= 1, e.g. [5,10,20]"


def ratios_rule(v: Any) -> str | None:
    """Three non-negative fractions (train, val, test) with train > 0 summing to 1."""
    ok = (
        isinstance(v, list | tuple)
        and len(v) == 3
        and all(_is_number(r) and r >= 0 for r in v)
        and v[0] > 0
        and abs(sum(v) - 1.0) <= 1e-6
    )
    return None if ok else "must be 3 numbers >= 0 (train, val, test) with train > 0 summing to 1"


def scale_rule(v: Any) -> str | None:
    """Two integers ``[lo, hi]`` with ``lo < hi`` (a rating scale)."""
    ok = isinstance(v, list | tuple) and len(v) == 2 and all(_is_int(x) for x in v) and v[0] < v[1]
    return None if ok else "must be two integers [lo, hi] with lo < hi"


FRACTION_OPEN = number_in(0.0, 1.0, low_open=True)  # (0, 1)
FRACTION_CLOSED = number_in(0.0, 1.0, high_open=False)  # [0, 1]
DROPOUT = number_in(0.0, 1.0)  # [0, 1)
POSITIVE = number_in(0.0, low_open=True)
NON_NEGATIVE = number_in(0.0)

COMMON_RULES: dict[str, Rule] = {
    "seed": lambda v: None if _is_int(v) and 0 <= v < 2**32 else "must be an integer in [0, 2**32)",
    "dataset.kcore": int_at_least(0, nullable=True),
    "dataset.implicit_threshold": lambda v: (
        None if v is None or _is_number(v) else "must be a number or null"
    ),
    "split.ratios": ratios_rule,
    "split.seed": int_at_least(0),
    "split.min_train": int_at_least(1),
    "split.frac": FRACTION_OPEN,
    "split.cold_val_frac": FRACTION_CLOSED,
    "split.history": FRACTION_OPEN,
    "split.n_history": int_at_least(1, nullable=True),
    "split.val_from_train": FRACTION_OPEN,
    "split.mode": one_of("leave_last_out", "ratio"),
    "split.replace_official": lambda v: None if isinstance(v, bool) else "must be true or false",
    "skip_finished": lambda v: None if isinstance(v, bool) else "must be true or false",
    "data.num_workers": int_at_least(0),
    "trainer.max_epochs": int_at_least(1, nullable=True, also=(-1,)),
    "compress.dim": int_at_least(1),
    "model.dropout": DROPOUT,
    "model.cold_dropout": DROPOUT,
    "model.cold_scale": lambda v: (
        None if v == "auto" or POSITIVE(v) is None else "must be a number > 0 or auto"
    ),
    "model.cold_scale_max_warm_loss": lambda v: None if v is None else DROPOUT(v),
    "model.weight_decay_emb": NON_NEGATIVE,
    "model.num_layers": int_at_least(1),
    "model.temperature": POSITIVE,
    "gnn.num_layers": int_at_least(1),
    "gnn.dropout": DROPOUT,
    "gnn.attn_dropout": DROPOUT,
    "gnn.num_heads": int_at_least(1),
    "gnn.temperature": POSITIVE,
}

RANKING_RULES: dict[str, Rule] = {
    "optimizer.lr": POSITIVE,
    "optimizer.weight_decay": NON_NEGATIVE,
    "data.batch_size": int_at_least(1),
    "data.eval_batch_size": int_at_least(1),
    "data.num_negatives": int_at_least(1),
    "module.loss": one_of("bpr", "bce", "softmax"),
    "module.temperature": POSITIVE,
    "module.ks": ks_rule,
    "callbacks.early_stopping.patience": int_at_least(0),
}

RATING_RULES: dict[str, Rule] = {
    "rating.objective": one_of("classification", "regression"),
    "rating.scale": scale_rule,
    "rating.head.hidden": int_at_least(1),
    "rating.head.dropout": DROPOUT,
    "rating.mf.dim": int_at_least(1),
    "rating.optimizer": one_of("adam", "sgd"),
    "rating.lr": POSITIVE,
    "rating.weight_decay": NON_NEGATIVE,
    "rating.momentum": NON_NEGATIVE,
    "rating.epochs": int_at_least(1),
    "rating.patience": int_at_least(0),
    "rating.batch_size": int_at_least(1),
    "rating.eval_batch_size": int_at_least(1),
}


def config_problems(cfg: DictConfig) -> list[str]:
    """Every violated rule as ``"key=value: must be ..."`` (empty when the config passes)."""
    rules = dict(COMMON_RULES)
    rules.update(RATING_RULES if cfg.get("task") == "rating" else RANKING_RULES)
    problems = []
    for key, rule in rules.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        message = rule(value)
        if message:
            problems.append(f"{key}={value}: {message}")
    return problems


def check_config(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` naming every key whose value is out of range (see the module docstring).

    Raises:
        ConfigError: ``"invalid config: optimizer.lr=-0.01: must be a number > 0; ..."``.
    """
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))
