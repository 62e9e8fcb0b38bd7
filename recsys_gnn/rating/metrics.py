"""Rating-prediction metrics: RMSE/MAE on predicted ratings, accuracy/macro-F1 on the integer rating classes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import classification_report, f1_score

from recsys_gnn.data.errors import ConfigError


def rating_classes(scale: Sequence[float]) -> np.ndarray:
    """The integer classes ``lo..hi`` of a rating scale ``(lo, hi)``, e.g. ``(1, 5) -> [1, 2, 3, 4, 5]``."""
    if len(scale) != 2:
        raise ConfigError(f"rating scale must be (low, high); got {list(scale)}")
    lo, hi = float(scale[0]), float(scale[1])
    if lo != int(lo) or hi != int(hi) or hi <= lo:
        raise ConfigError(f"rating scale must be two integers low < high (classes low..high); got {[lo, hi]}")
    return np.arange(int(lo), int(hi) + 1, dtype=np.int64)


def to_classes(ratings: np.ndarray, scale: Sequence[float]) -> np.ndarray:
    """Round ``(N,)`` ratings half-up to the nearest integer class and clip them into the scale -> ``(N,)``."""
    classes = rating_classes(scale)
    r = np.floor(np.asarray(ratings, dtype=np.float64) + 0.5).astype(np.int64)
    return np.clip(r, classes[0], classes[-1])


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error of ``(N,)`` predictions."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error of ``(N,)`` predictions."""
    return float(np.mean(np.abs(np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64))))


def rating_metrics(
    pred: np.ndarray, true: np.ndarray, scale: Sequence[float], pred_classes: np.ndarray | None = None
) -> dict[str, float]:
    """RMSE, MAE, accuracy and macro-F1 of one evaluation set.

    Args:
        pred: ``(N,)`` predicted ratings (a classifier's expected rating).
        true: ``(N,)`` true ratings.
        scale: ``(lo, hi)`` integer rating scale.
        pred_classes: ``(N,)`` predicted classes (a classifier's argmax); None rounds ``pred`` to classes.

    Returns:
        ``{"rmse", "mae", "accuracy", "macro_f1", "n"}``; macro-F1 averages over every class of the scale
        (a class never predicted nor present scores 0).
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 1 or len(pred) == 0:
        raise ValueError(
            f"pred and true must be equal non-empty (N,) arrays; got {pred.shape} and {true.shape}"
        )
    y_true = to_classes(true, scale)
    y_pred = to_classes(pred, scale) if pred_classes is None else np.asarray(pred_classes, dtype=np.int64)
    labels = rating_classes(scale)
    return {
        "rmse": rmse(pred, true),
        "mae": mae(pred, true),
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "n": float(len(true)),
    }


def save_classification_report(
    true: np.ndarray, pred_classes: np.ndarray, scale: Sequence[float], out_dir: Path | str
) -> dict[str, object]:
    """Write sklearn's per-class precision/recall/F1 table as ``classification_report.txt`` and ``.json``.

    Args:
        true: ``(N,)`` true ratings (rounded to classes here).
        pred_classes: ``(N,)`` predicted integer classes.
        scale: ``(lo, hi)`` integer rating scale.
        out_dir: folder to write into.

    Returns:
        The report as a dict (sklearn's ``output_dict=True`` form).
    """
    labels = rating_classes(scale)
    y_true = to_classes(true, scale)
    names = [str(c) for c in labels]
    kwargs = {"labels": labels, "target_names": names, "zero_division": 0, "digits": 4}
    text = classification_report(y_true, pred_classes, **kwargs)
    report = classification_report(y_true, pred_classes, output_dict=True, **kwargs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classification_report.txt").write_text(text)
    (out / "classification_report.json").write_text(json.dumps(report, indent=2))
    return report
