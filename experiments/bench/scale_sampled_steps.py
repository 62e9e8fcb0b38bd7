"""Where one neighbour-sampled training step's time goes, at 10^5 and 10^6 interactions (one thread).

Run after ``python -m recsys_gnn.bench.scale ... --work-dir W`` (it reuses the pickled synthetic data there):
``python experiments/bench/scale_sampled_steps.py W lightgcn_id 10`` (model, fanout per layer). Prints the
graph size, the batch's distinct seeds, the sampled input nodes and block edges, and median seconds of 5 steps
(after one untimed) for: drawing the batch, sampling the blocks, the input rows, the block propagation, the
model's whole loss + backward (which samples again), and the optimizer step.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

from recsys_gnn.bench.phases import build_module
from recsys_gnn.bench.scale import _compose
from recsys_gnn.graph.sampled import propagate_blocks, sample_blocks


def main(work: Path, model_name: str, fanout: int) -> None:
    torch.set_num_threads(1)
    for n in (10**5, 10**6):
        cfg = _compose(n, model_name, 384, work, 0, fanout)
        data = pickle.loads((work / f"data-{n}-384-0.pkl").read_bytes())
        module, datamodule = build_module(cfg, data)
        datamodule.setup("fit")
        batches = iter(datamodule.train_dataloader())
        model = module.model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        keys = ("batch", "sample", "inputs", "propagate", "loss+backward", "optimizer")
        times: dict[str, list[float]] = {k: [] for k in keys}
        sizes = None
        for step in range(6):
            t0 = time.perf_counter()
            batch = next(batches)
            t1 = time.perf_counter()
            items = torch.cat([batch["pos"], batch["neg"].reshape(-1)]) + model.n_users
            seeds = torch.cat([batch["user"], items])
            sampled = sample_blocks(model.graph, seeds, model.fanout)
            t2 = time.perf_counter()
            feat_of = model.ego_rows if model_name == "lightgcn_id" else model.node_inputs
            coef = model.propagate.coef if model_name == "lightgcn_id" else model.gnn.coef
            feat = feat_of(sampled.input_nodes)
            t3 = time.perf_counter()
            propagate_blocks(sampled, feat, coef)
            t4 = time.perf_counter()
            opt.zero_grad()
            loss, _ = model.loss(batch, module.loss_kind, module.temperature)
            loss.backward()
            t5 = time.perf_counter()
            opt.step()
            t6 = time.perf_counter()
            if step:
                for k, v in zip(keys, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
                    times[k].append(v)
                sizes = sampled.n_seeds, sampled.input_nodes.numel(), [b.num_edges() for b in sampled.blocks]
        g = model.graph
        print(
            f"{model_name} {n:,} interactions, fanout {model.fanout}: graph {g.num_nodes():,} nodes, "
            f"{g.num_edges():,} edges; seeds {sizes[0]:,}, input nodes {sizes[1]:,}, block edges {sizes[2]}"
        )
        print("  median s: " + ", ".join(f"{k} {np.median(v):.3f}" for k, v in times.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
