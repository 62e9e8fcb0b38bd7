"""Control for learned.md: the same fine-tuning as recsys_gnn.compress.learned, but on the exact fp32 tables.

Usage: python experiments/compression/learned_control.py <run folder> <user_lr> [<item_lr>]
Trains the user table (and, with item_lr > 0, the fp32 item table itself) with the same loss (full softmax +
listwise KL from the run's own scores), batch size, seed, temperature and val/ndcg@10 early stopping (patience
20) as the learned codes, and prints val/test NDCG@10 at the kept epoch. It separates what the extra training
stage gives an uncompressed table from what training the codebooks recovers.
"""

import sys
import time

import numpy as np
import torch
from omegaconf import OmegaConf

from recsys_gnn.compress.learned import StageRanker, ranking_loss
from recsys_gnn.compress.quantize import Quantizer
from recsys_gnn.models.base import scored_rows
from recsys_gnn.pipeline import load_data
from recsys_gnn.tables import load_tables

torch.set_num_threads(1)
run, user_lr = sys.argv[1], float(sys.argv[2])
item_lr = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
cfg = OmegaConf.load(f"{run}/config.yaml")
data = load_data(cfg)
tables = load_tables(f"{run}/tables")
sim, temp = cfg.model.similarity, float(cfg.module.temperature)
u0, i0 = tables.user_emb.float(), tables.item_emb.float()
users, items = torch.nn.Parameter(u0.clone()), torch.nn.Parameter(i0.clone())
opt = torch.optim.Adam([{"params": [users], "lr": user_lr}, {"params": [items], "lr": item_lr}])
train = data.matrix(data.train)
train_users = torch.from_numpy(np.flatnonzero(np.diff(train.indptr) > 0))
val, test, fp32 = StageRanker(data, "val"), StageRanker(data, "test"), Quantizer("fp32")


def served():
    return fp32.encode(scored_rows(sim, users.detach())), fp32.encode(items.detach())


def snapshot():
    return users.detach().clone(), items.detach().clone()


best, best_epoch, state = val("fp32", *served())["ndcg@10"], 0, snapshot()
gen = torch.Generator().manual_seed(1)
t0 = time.time()
for epoch in range(1, 201):
    for b in train_users[torch.randperm(len(train_users), generator=gen)].split(128):
        positives = torch.from_numpy(train[b.numpy()].toarray())
        logits = scored_rows(sim, users[b]) @ items.T / temp
        teacher = scored_rows(sim, u0[b]) @ i0.T / temp
        loss = ranking_loss(logits, positives, teacher, "softmax+distill")
        opt.zero_grad()
        loss.backward()
        opt.step()
    score = val("fp32", *served())["ndcg@10"]
    if score > best:
        best, best_epoch, state = score, epoch, snapshot()
    if epoch - best_epoch >= 20:
        break
users.data.copy_(state[0])
items.data.copy_(state[1])
print(
    f"fp32 tables fine-tuned (user_lr {user_lr}, item_lr {item_lr}): best epoch {best_epoch}, "
    f"val/ndcg@10 {best:.4f}, test/ndcg@10 {test('fp32', *served())['ndcg@10']:.4f}, {time.time() - t0:.0f}s"
)
