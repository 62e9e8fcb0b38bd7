"""Test NDCG@10 of a finished `model.cold_scale=auto` run at every scale of its val curve, from its saved tables.

Usage: .venv/bin/python experiments/cold_start/default_recipe/cold_scale_curve.py <run folder> [overrides, e.g. domain=music]
The tables hold the untrained items scaled by calib/cold_scale; they are unscaled, then rescaled per grid value.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from recsys_gnn.eval.ranking import evaluate_full_ranking
from recsys_gnn.job import load_data
from recsys_gnn.tables import load_tables

run = sys.argv[1]
m = json.load(open(f"{run}/metrics.json"))
s_run = m["calib/cold_scale"]
with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[3] / "conf"), version_base="1.3"):
    cfg = compose(config_name="train", overrides=["split=cold_items", "seed=1"] + sys.argv[2:])
data = load_data(cfg)
t = load_tables(run + "/tables")
untrained = torch.from_numpy(np.bincount(data.train[:, 1], minlength=data.n_items) == 0)
base = t.item_emb.clone()
base[untrained] /= s_run
print("untrained norms before unscaling", t.item_emb[untrained].norm(dim=1)[:3].tolist(), "scale", s_run)
grid = sorted({float(k.rsplit("=", 1)[1]) for k in m if k.startswith("calib/val_ndcg@10/scale=")})
val = {
    s: (
        m[f"calib/val_ndcg@10/scale={s:g}"],
        m[f"calib/val_cold_ndcg@10/scale={s:g}"],
        m[f"calib/val_warm_ndcg@10/scale={s:g}"],
    )
    for s in grid
}
choice = {"off": 1.0, "auto": max(grid, key=lambda s: (val[s][0], -s))}
for cap in (0.02, 0.05, 0.10):
    ok = [s for s in grid if val[s][2] >= (1 - cap) * val[1.0][2]]
    choice[f"auto, max_warm_loss={cap}"] = max(ok, key=lambda s: (val[s][0], -s))
cold = np.asarray(data.cold_items)
tg, mk = data.matrix(data.test), data.matrix(data.known_for("test"))
rows = []
for s in grid:
    items = base.clone()
    items[untrained] *= s

    def fn(u: torch.Tensor, items: torch.Tensor = items) -> torch.Tensor:
        return t.user_emb[u] @ items.T  # (B, I)

    def fn_cold(u: torch.Tensor, items: torch.Tensor = items) -> torch.Tensor:
        """Ranking within the cold items only, as test_cold_only does (the others never recommended)."""
        return fn(u, items).masked_fill(torch.from_numpy(~cold)[None], float("-inf"))

    r = [
        evaluate_full_ranking(fn, tg, mk, ks=[10], item_subset=sub)["ndcg@10"] for sub in (None, ~cold, cold)
    ]
    r.append(evaluate_full_ranking(fn_cold, tg, mk, ks=[10], item_subset=cold)["ndcg@10"])
    rows.append((s, *val[s], *r))
print("| scale | val all | val cold | val warm | test all | test_warm | test_cold | test_cold_only |")
for row in rows:
    print("| " + " | ".join(f"{x:.4f}" if i else f"{x:g}" for i, x in enumerate(row)) + " |")
print(json.dumps(choice))
print({k: round(v, 4) for k, v in m.items() if k.startswith("test") and k.endswith("ndcg@10")})
