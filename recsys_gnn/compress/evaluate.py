"""Full-ranking evaluation of quantised serving tables (same evaluator, same protocol as training)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import Tensor

from recsys_gnn.compress.quantize import Quantizer
from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.eval.ranking import evaluate_full_ranking

log = logging.getLogger(__name__)


def evaluate_quantized(
    user_emb: Tensor,
    item_emb: Tensor,
    data: InteractionData,
    schemes: Sequence[str] = ("fp16", "int8", "binary"),
    stage: str = "test",
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 256,
) -> dict[str, float]:
    """Quantise ``user_emb (U, D)`` / ``item_emb (I, D)`` with each scheme and rank with the quantised scores.

    int8 tables are scored by integer dot products rescaled, binary codes by Hamming similarity, fp16 upcast,
    PQ codes (learned on this item table) by asymmetric distance to the exact users.
    Masking and targets are exactly those of ``stage`` in training (train, + val at test, masked).

    Returns:
        ``{"{stage}_{scheme}/{metric}@{k}": value}`` for every scheme.
    """
    targets = data.matrix(getattr(data, stage))
    mask = data.matrix(data.known_for(stage))
    out: dict[str, float] = {}
    for name in schemes:
        q = Quantizer(name)
        users, items = q.encode(user_emb.detach().cpu()), q.encode_items(item_emb.detach().cpu())
        res = evaluate_full_ranking(
            lambda u, q=q, users=users, items=items: q.scores(users.rows(u), items),
            targets,
            mask,
            ks=ks,
            batch_size=batch_size,
        )
        out.update({f"{stage}_{name}/{k}": float(v) for k, v in res.items()})
        log.info("%s tables: %s/ndcg@10 = %.4f", name, stage, res.get("ndcg@10", float("nan")))
    return out
