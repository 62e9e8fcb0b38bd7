"""Rank a finished run's saved tables with extra quantisation schemes (same data, split and evaluator as the run).

Usage: python experiments/compression/posthoc.py <run folder> fp32,pq8,opq8,rq8
(Used for the OPQ/RQ rows of pq.md; it reproduces the run's own fp32/pq numbers. Cold test users, if the split
has them, are folded in as the pipeline does for cosine tables.)
"""

import sys
import time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from recsys_gnn.compress.evaluate import evaluate_quantized
from recsys_gnn.pipeline import load_data
from recsys_gnn.tables import load_tables

torch.set_num_threads(1)
run = sys.argv[1]
schemes = sys.argv[2].split(",")
cfg = OmegaConf.load(f"{run}/config.yaml")
data = load_data(cfg)
t = load_tables(f"{run}/tables")
u, i = t.user_emb.float(), t.item_emb.float()
th = getattr(data, "test_history", None)
print("test_history", None if th is None else len(th))
if th is not None and len(th):
    h = torch.as_tensor(th, dtype=torch.long)
    summed = torch.zeros_like(u).index_add_(0, h[:, 0], i[h[:, 1]])
    has = torch.bincount(h[:, 0], minlength=len(u)) > 0
    u = u.clone()
    u[has] = F.normalize(summed[has], dim=-1)
for s in schemes:
    t0 = time.time()
    r = evaluate_quantized(u, i, data, schemes=[s], ks=[10])
    print(s, round(r[f"test_{s}/ndcg@10"], 4), f"{time.time() - t0:.0f}s", flush=True)
