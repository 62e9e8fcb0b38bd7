"""Human-readable result tables (Markdown) with the protocol stated beside the numbers."""

from __future__ import annotations

from typing import Any

METRIC_ORDER = ("recall", "ndcg", "mrr", "hit", "precision", "coverage")


def format_metrics_table(metrics: dict[str, float], protocol: dict[str, Any], ks: list[int]) -> str:
    """A Markdown table: one row per ``{stage}/{metric}``, one column per K, then the protocol.

    Args:
        metrics: flat ``{"val/ndcg@10": 0.1, ...}``.
        protocol: dataset/split/filtering description (``InteractionData.protocol``).
        ks: cut-offs, in column order.
    """
    stages = sorted({k.split("/", 1)[0] for k in metrics if "@" in k})
    lines = ["| stage | metric | " + " | ".join(f"@{k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]
    for stage in stages:
        for m in METRIC_ORDER:
            row = [metrics.get(f"{stage}/{m}@{k}") for k in ks]
            if all(v is None for v in row):
                continue
            cells = " | ".join("" if v is None else f"{v:.4f}" for v in row)
            lines.append(f"| {stage} | {m} | {cells} |")
    extra = {k: v for k, v in metrics.items() if "@" not in k or k.startswith("test_impressions/")}
    extra = {
        k: v for k, v in extra.items() if not k.startswith(tuple(f"{s}/" for s in stages)) or "impr" in k
    }
    if extra:
        lines += ["", "| other | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in sorted(extra.items())]
    lines += ["", "Protocol:"]
    lines += [f"- {k}: {v}" for k, v in protocol.items() if k != "drops"]
    lines.append(
        "- evaluation: full ranking over all items; training items (and validation items at test) masked; "
        "users without targets skipped"
    )
    return "\n".join(lines) + "\n"
